"""Files in a sandbox, and artifacts copied out of it.

Every path goes through `SandboxFolder.resolve`, which keeps it inside the
sandbox's `/home/user` and `/tmp` (400 `invalid_path` otherwise). Uploads
and downloads stream in chunks; nothing holds a whole file in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import mimetypes
import os
import shutil
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, Response

from crownest._generated.models import Artifact, FileInfo, FileType

from ._errors import ApiProblem, not_found
from ._isolation import SandboxFolder, SandboxPath
from ._limits import MIB
from ._service import Call, Service, json_response, new_id, now
from ._spec import digits

MAX_FILE_BYTES = 1 << 30
DEFAULT_ARTIFACT_TTL_MS = 7 * 24 * 3600 * 1000
COPY_CHUNK = 1 << 20


def file_info(path: str, host: Path) -> dict[str, Any]:
    st = host.lstat()
    kind = (
        FileType.SYMLINK
        if stat.S_ISLNK(st.st_mode)
        else FileType.DIRECTORY
        if stat.S_ISDIR(st.st_mode)
        else FileType.FILE
    )
    return FileInfo(
        path=path,
        name=path.rsplit("/", 1)[-1],
        type_=kind,
        size_bytes=st.st_size,
        mode=stat.S_IMODE(st.st_mode),
        modified_at=datetime.datetime.fromtimestamp(st.st_mtime, datetime.UTC),
    ).to_dict()


def file_not_found(path: str) -> ApiProblem:
    return ApiProblem(404, "file_not_found", f"No file at {path}.", {"path": path})


def conflict(code: str, path: str, message: str) -> ApiProblem:
    return ApiProblem(409, code, message, {"path": path})


class Files:
    def __init__(self, service: Service) -> None:
        self.service = service

    def _resolve(self, call: Call, path: str, *, follow: bool = True) -> tuple[SandboxFolder, SandboxPath]:
        sandbox_id = call.path["sandboxId"]
        self.service.running_sandbox(sandbox_id, reads=call.request.method == "GET")
        folder = self.service.folder(sandbox_id)
        return folder, folder.resolve(path, follow=follow)

    async def write_file(self, call: Call) -> dict[str, Any]:
        content_type = call.request.headers.get("content-type", "application/octet-stream").split(";")[0].strip()
        if content_type != "application/octet-stream":
            raise ApiProblem(
                415,
                "unsupported_media_type",
                "File content must be sent as application/octet-stream.",
                {"contentType": content_type},
            )
        _, target = self._resolve(call, call.query["path"])
        if target.host.is_dir():
            raise conflict("is_a_directory", target.virtual, f"{target.virtual} is a directory.")
        room = await self._disk_room(call.path["sandboxId"], call.request.headers.get("content-length"))
        for parent in reversed(target.host.parents):
            if parent.exists() and not parent.is_dir():
                raise conflict("not_a_directory", target.virtual, f"A parent of {target.virtual} is not a directory.")
        target.host.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.host.parent, prefix=".upload-")
        try:
            written = 0
            with os.fdopen(fd, "wb") as f:
                async for chunk in call.request.stream():
                    written += len(chunk)
                    if written > MAX_FILE_BYTES:
                        raise too_large()
                    if written > room:
                        raise self._over_quota(call.path["sandboxId"])
                    f.write(chunk)
            os.chmod(temp, 0o644)
            os.replace(temp, target.host)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
        used = self.service.disk_used
        used[call.path["sandboxId"]] = used.get(call.path["sandboxId"], 0) + written  # until the next measurement
        return file_info(target.virtual, target.host)

    async def _disk_room(self, sandbox_id: str, content_length: str | None) -> int:
        """The bytes a write may add to the sandbox; 413 at once if its `Content-Length` says more."""
        used = self.service.disk_used.get(sandbox_id)
        if used is None:
            used = await self.service.measure_disk(sandbox_id)
        room = self.service.limits(sandbox_id).disk_bytes - used
        declared = digits(content_length) if content_length is not None else None
        if declared is not None and declared > MAX_FILE_BYTES:
            raise too_large()
        if declared is not None and declared > room:
            raise self._over_quota(sandbox_id)
        return room

    def _over_quota(self, sandbox_id: str) -> ApiProblem:
        limit = self.service.limits(sandbox_id).disk_bytes
        return ApiProblem(
            413,
            "disk_quota_exceeded",
            f"The write would take sandbox {sandbox_id} past its disk limit of {limit // MIB} MiB.",
            {"limitBytes": limit, "usedBytes": self.service.disk_used.get(sandbox_id, 0)},
        )

    async def read_file(self, call: Call) -> Response:
        _, target = self._resolve(call, call.query["path"])
        if not target.host.exists():
            raise file_not_found(target.virtual)
        if target.host.is_dir():
            raise conflict("is_a_directory", target.virtual, f"{target.virtual} is a directory.")
        return FileResponse(target.host, media_type="application/octet-stream", content_disposition_type="attachment")

    async def list_files(self, call: Call) -> Response:
        folder, target = self._resolve(call, call.query["path"])
        if not target.host.exists():
            raise file_not_found(target.virtual)
        if not target.host.is_dir():
            raise conflict("not_a_directory", target.virtual, f"{target.virtual} is not a directory.")
        return Response(await asyncio.to_thread(_listing, folder, target.host), media_type="application/json")

    async def get_file_info(self, call: Call) -> dict[str, Any]:
        _, target = self._resolve(call, call.query["path"], follow=False)
        if not target.host.exists() and not target.host.is_symlink():
            raise file_not_found(target.virtual)
        return file_info(target.virtual, target.host)

    async def delete_file(self, call: Call) -> None:
        _, target = self._resolve(call, call.query["path"], follow=False)
        if target.host == target.root:
            raise ApiProblem(
                400, "invalid_path", f"{target.virtual} is a root of the sandbox.", {"path": target.virtual}
            )
        if target.host.is_symlink() or target.host.is_file():
            target.host.unlink()
        elif target.host.is_dir():
            if any(target.host.iterdir()) and not call.query.get("recursive", False):
                raise conflict("directory_not_empty", target.virtual, f"{target.virtual} is not empty; pass recursive.")
            await asyncio.to_thread(shutil.rmtree, target.host)
        else:
            raise file_not_found(target.virtual)

    async def make_directory(self, call: Call) -> Response:
        _, target = self._resolve(call, call.body["path"])
        if target.host.exists() and not target.host.is_dir():
            raise conflict("file_exists", target.virtual, f"{target.virtual} exists and is not a directory.")
        parents = call.body.get("parents", True)
        if not parents and not target.host.parent.is_dir():
            raise file_not_found(str(Path(target.virtual).parent))
        try:
            target.host.mkdir(parents=parents, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise conflict(
                "not_a_directory", target.virtual, f"A parent of {target.virtual} is not a directory."
            ) from exc
        return json_response(file_info(target.virtual, target.host), 201)

    async def move_file(self, call: Call) -> dict[str, Any]:
        _, source = self._resolve(call, call.body["source"], follow=False)
        _, destination = self._resolve(call, call.body["destination"], follow=False)
        if not source.host.exists() and not source.host.is_symlink():
            raise file_not_found(source.virtual)
        if source.host == source.root or destination.host == destination.root:
            raise ApiProblem(
                400, "invalid_path", "A root of the sandbox cannot be moved or replaced.", {"path": source.virtual}
            )
        if destination.host.exists() or destination.host.is_symlink():
            if not call.body.get("overwrite", False):
                raise conflict("file_exists", destination.virtual, f"{destination.virtual} exists; pass overwrite.")
            if destination.host.is_dir() and not destination.host.is_symlink():
                await asyncio.to_thread(shutil.rmtree, destination.host)
        if destination.host == source.host or source.host in destination.host.parents:
            raise ApiProblem(
                400, "invalid_path", "A directory cannot be moved into itself.", {"path": destination.virtual}
            )
        destination.host.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source.host, destination.host)
        return file_info(destination.virtual, destination.host)

    # Artifacts

    async def create_artifact(self, call: Call) -> Response:
        sandbox_id = call.path["sandboxId"]
        _, source = self._resolve(call, call.body["path"])
        if not source.host.exists():
            raise file_not_found(source.virtual)
        artifact_id = new_id("art")
        stored = self.service.artifact_file(artifact_id)
        is_dir = source.host.is_dir()
        base = source.virtual.rsplit("/", 1)[-1] or "artifact"
        name = call.body.get("name") or (f"{base}.tar.gz" if is_dir else base)
        if is_dir:
            await asyncio.to_thread(_tar, source.host, stored, base)
        else:
            await asyncio.to_thread(shutil.copyfile, source.host, stored)
        digest = await asyncio.to_thread(_sha256, stored)
        created = now()
        artifact = Artifact(
            id=artifact_id,
            sandbox_id=sandbox_id,
            path=source.virtual,
            name=name,
            size_bytes=stored.stat().st_size,
            sha256=digest,
            content_type="application/gzip" if is_dir else mimetypes.guess_type(name)[0] or "application/octet-stream",
            created_at=created,
            expires_at=created + datetime.timedelta(milliseconds=call.body.get("ttlMs", DEFAULT_ARTIFACT_TTL_MS)),
        )
        wire = artifact.to_dict()
        self.service.store.insert("artifact", wire)
        return json_response(wire, 201)

    async def list_sandbox_artifacts(self, call: Call) -> dict[str, Any]:
        self.service.sandbox(call.path["sandboxId"])  # also after it ended, within the retention period
        return self._page(call, call.path["sandboxId"])

    async def list_artifacts(self, call: Call) -> dict[str, Any]:
        return self._page(call, call.query.get("sandboxId"))

    def _page(self, call: Call, sandbox_id: str | None) -> dict[str, Any]:
        return self.service.store.page(
            "artifact", limit=call.query.get("limit", 20), cursor=call.query.get("cursor"), sandbox_id=sandbox_id
        )

    def _artifact(self, call: Call) -> dict[str, Any]:
        artifact_id = call.path["artifactId"]
        body = self.service.store.get("artifact", artifact_id)
        if body is None or datetime.datetime.fromisoformat(body["expiresAt"]) <= now():
            raise not_found("artifact", "artifactId", artifact_id)
        return body

    async def get_artifact(self, call: Call) -> dict[str, Any]:
        return self._artifact(call)

    async def download_artifact(self, call: Call) -> Response:
        body = self._artifact(call)
        return FileResponse(
            self.service.artifact_file(body["id"]),
            media_type="application/octet-stream",
            headers={"ETag": f'"{body["sha256"]}"'},
        )

    async def delete_artifact(self, call: Call) -> None:
        body = self._artifact(call)
        self.service.forget_artifact(body["id"])


def too_large() -> ApiProblem:
    return ApiProblem(413, "payload_too_large", "A file may be at most 1 GiB.", {"limitBytes": MAX_FILE_BYTES})


def _listing(folder: SandboxFolder, directory: Path) -> bytes:
    """A directory's entries as the listFiles body (run in a thread: a folder may have a million entries)."""
    entries = sorted(directory.iterdir(), key=lambda p: p.name)
    data = [file_info(folder.virtual_path(entry), entry) for entry in entries]
    # Encoded a thousand entries at a time: one json.dumps of them all would hold the GIL, and with it
    # the event loop, for hundreds of milliseconds.
    parts = [json.dumps(data[i : i + 1000], ensure_ascii=False)[1:-1] for i in range(0, len(data), 1000)]
    return ('{"data": [' + ", ".join(parts) + "]}").encode()


def _tar(source: Path, target: Path, base: str) -> None:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(source, arcname=base)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
