"""Files in a sandbox, and artifacts copied out of it.

Every path is walked by `SandboxFolder.open` (see `_beneath`): one component at
a time from the sandbox's own folder, never through a link that leads out, and
each operation then works relative to the folders it opened, so a command that
swaps a folder for a link meanwhile changes nothing for it. Everything is
checked before the first change, so a failed operation changes nothing: writes
land under a temporary name in the target's folder and are renamed over it,
moves that replace go through a temporary name and `RENAME_EXCHANGE`, and
folders created on the way are removed again. Uploads and downloads stream in
chunks; deleting a tree and archiving one run in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import errno
import hashlib
import logging
import mimetypes
import os
import posixpath
import secrets
import shutil
import stat
import sys
import tarfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

from starlette.requests import Request
from starlette.responses import Response

from crownest.models import Artifact

from ._archives import ArchiveResponse, Extraction, make_folder
from ._beneath import (
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    Location,
    Owner,
    conflict,
    file_not_found,
    give,
    invalid_path,
    open_file,
    remove_tree,
    rename,
    tree,
)
from ._content import ContentResponse, DescriptorResponse
from ._errors import ApiProblem, not_found
from ._isolation import SandboxFolder
from ._limits import MIB
from ._listing import FOLDER, file_info, open_folder
from ._listing import body as listing_body
from ._service import Call, Service, json_response, new_id, now
from ._spec import digits

logger = logging.getLogger("crownest_local")

MAX_FILE_BYTES = 1 << 30
DEFAULT_ARTIFACT_TTL_MS = 7 * 24 * 3600 * 1000
COPY_CHUNK = 1 << 20
# A folder's size on disk above which it is listed in a process of its own (`_listing`): about
# 3,000 entries on ext4 and tmpfs (some 20 bytes an entry), some 40 ms of listing in a thread.
# Listings more than one level deep always are (what is below is not known in advance).
LISTED_APART_BYTES = 64 * 1024
MAX_LISTERS = 4  # listing processes at a time; more listings wait for one
MAX_LISTER_ERROR = 64 * 1024
LISTING_SCRIPT = str(Path(__file__).with_name("_listing.py"))


def require_media_type(call: Call, expected: str, what: str, default: str = "") -> None:
    """415 unless the body is sent as `expected` (a missing Content-Type counts as `default`)."""
    content_type = call.request.headers.get("content-type", default).split(";")[0].strip()
    if content_type != expected:
        raise ApiProblem(
            415, "unsupported_media_type", f"{what} must be sent as {expected}.", {"contentType": content_type}
        )


def is_a_directory(path: str) -> ApiProblem:
    return conflict("is_a_directory", path, f"{path} is a directory.")


def a_root(path: str) -> ApiProblem:
    return invalid_path(path, "is a root of the sandbox")


def readable(path: str, location: Location) -> os.stat_result:
    """The stat of what `location` holds, if the file API may read it: 404, 409 otherwise."""
    if location.stat is None:
        raise file_not_found(path)
    if stat.S_ISDIR(location.stat.st_mode) or stat.S_ISREG(location.stat.st_mode):
        return location.stat
    raise conflict(
        "unsupported_file_type", path, f"{path} is a FIFO, socket or device node, which the file API does not read."
    )


async def in_thread(work: Callable[..., Any], fd: int, *args: Any) -> Any:
    """`work(fd, *args)` in a thread, on its own copy of `fd`: the request may end before the thread does."""
    own = os.dup(fd)

    def run() -> Any:
        try:
            return work(own, *args)
        finally:
            os.close(own)

    return await asyncio.to_thread(run)


class Files:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.listers = asyncio.Semaphore(MAX_LISTERS)

    def running_folder(self, call: Call) -> SandboxFolder:
        """The folder of the call's sandbox; 404 or 409 unless it exists and runs."""
        sandbox_id = call.path["sandboxId"]
        self.service.running_sandbox(sandbox_id, reads=call.request.method == "GET")
        return self.service.folder(sandbox_id)

    async def write_file(self, call: Call) -> dict[str, Any]:
        require_media_type(call, "application/octet-stream", "File content", default="application/octet-stream")
        folder = self.running_folder(call)
        path = folder.virtual(call.query["path"])
        sandbox_id = call.path["sandboxId"]
        with folder.open(path, follow=True, missing_ok=True) as target:
            if target.name is None or target.is_folder:
                raise is_a_directory(path)
            room = await self._disk_room(sandbox_id, call.request.headers.get("content-length"))
            target.make_parents(folder.owner)
            try:
                written = await _upload(
                    call.request, target.parent, target.name, folder.owner, room, self._over_quota(sandbox_id)
                )
            except BaseException:
                target.undo()
                raise
        used = self.service.disk_used
        used[sandbox_id] = used.get(sandbox_id, 0) + written.st_size  # until the next measurement
        return file_info(path, written)

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
        folder = self.running_folder(call)
        path = folder.virtual(call.query["path"])
        with folder.open(path, follow=True) as target:
            if stat.S_ISDIR(readable(path, target).st_mode):
                raise is_a_directory(path)
            fd = open_file(target)
        return ContentResponse(fd, call.request)

    async def list_files(self, call: Call) -> Response:
        folder = self.running_folder(call)
        path = folder.virtual(call.query["path"])
        with folder.open(path, follow=True) as target:
            if target.fd is None:
                raise file_not_found(path)
            if not target.is_folder:
                raise conflict("not_a_directory", path, f"{path} is not a directory.")
            depth = call.query.get("depth", 1)
            listing = open_folder(target.fd)
        if depth > 1 or os.fstat(listing).st_size > LISTED_APART_BYTES:
            return ListingResponse(listing, path, depth, self.listers)
        try:
            body = await in_thread(lambda fd: b"".join(listing_body(fd, path, depth)), listing)
        finally:
            os.close(listing)
        return Response(body, media_type="application/json")

    async def file_exists(self, call: Call) -> dict[str, Any]:
        folder = self.running_folder(call)
        path = folder.virtual(call.query["path"])
        try:
            with folder.open(path, follow=False) as target:
                return {"exists": target.stat is not None}
        except ApiProblem as problem:
            if problem.code in ("file_not_found", "not_a_directory"):
                return {"exists": False}
            raise

    async def get_file_info(self, call: Call) -> dict[str, Any]:
        folder = self.running_folder(call)
        path = folder.virtual(call.query["path"])
        with folder.open(path, follow=False) as target:
            if target.stat is None:
                raise file_not_found(path)
            return file_info(path, target.stat)

    async def delete_file(self, call: Call) -> None:
        folder = self.running_folder(call)
        path = folder.virtual(call.query["path"])
        with folder.open(path, follow=False) as target:
            if target.name is None:
                raise a_root(path)
            if target.stat is None:
                raise file_not_found(path)
            if not target.is_folder:
                os.unlink(target.name, dir_fd=target.parent)
            elif call.query.get("recursive", False):
                await in_thread(remove_tree, target.parent, target.name)
            else:
                try:
                    os.rmdir(target.name, dir_fd=target.parent)
                except OSError as exc:
                    if exc.errno != errno.ENOTEMPTY:
                        raise
                    raise conflict("directory_not_empty", path, f"{path} is not empty; pass recursive.") from None
        self.service.disk_used.pop(call.path["sandboxId"], None)  # space freed: the next write measures again

    async def make_directory(self, call: Call) -> Response:
        folder = self.running_folder(call)
        path = folder.virtual(call.body["path"])
        with folder.open(path, follow=True, missing_ok=True) as target:
            if target.missing and not call.body.get("parents", True):
                raise file_not_found(posixpath.dirname(path))
            if target.stat is not None:
                if not target.is_folder:
                    raise conflict("file_exists", path, f"{path} exists and is not a directory.")
                return json_response(file_info(path, target.stat), 201)
            assert target.name is not None
            target.make_parents(folder.owner)
            try:
                made = _make_folder(target.parent, target.name, folder.owner)
            except BaseException:
                target.undo()
                raise
        return json_response(file_info(path, made), 201)

    async def move_file(self, call: Call) -> dict[str, Any]:
        folder = self.running_folder(call)
        source_path = folder.virtual(call.body["source"])
        target_path = folder.virtual(call.body["destination"])
        overwrite = call.body.get("overwrite", False)
        with folder.open(source_path, follow=False) as source:
            if source.name is None:
                raise a_root(source_path)
            if source.stat is None:
                raise file_not_found(source_path)
            with folder.open(target_path, follow=False, missing_ok=True) as target:
                if target.name is None:
                    raise a_root(target_path)
                if target.stat is not None and target.same_entry(source):
                    if not overwrite:
                        raise conflict("file_exists", target_path, f"{target_path} exists; pass overwrite.")
                    return file_info(target_path, source.stat)
                if source.is_folder and (source.stat.st_dev, source.stat.st_ino) in target.trail:
                    raise invalid_path(target_path, "is inside the directory being moved")
                if target.stat is not None and not overwrite:
                    raise conflict("file_exists", target_path, f"{target_path} exists; pass overwrite.")
                target.make_parents(folder.owner)
                try:
                    replaced = _move(source, target)
                except BaseException:
                    target.undo()
                    raise
                if replaced is not None:
                    await _remove_replaced(target.parent, replaced)
                    self.service.disk_used.pop(call.path["sandboxId"], None)  # as after a delete
            assert source.fd is not None
            return file_info(target_path, os.fstat(source.fd))

    async def write_archive(self, call: Call) -> dict[str, Any]:
        require_media_type(call, "application/x-tar", "An archive")
        folder = self.running_folder(call)
        path = folder.virtual(call.query["path"])
        sandbox_id = call.path["sandboxId"]
        with folder.open(path, follow=True, missing_ok=True) as target:
            if target.stat is not None and not target.is_folder:
                raise conflict("not_a_directory", path, f"{path} is not a directory.")
            room = await self._disk_room(sandbox_id, None)
            if target.fd is not None:
                destination = open_folder(target.fd)
            else:
                assert target.name is not None
                target.make_parents(folder.owner)
                try:
                    destination = make_folder(target.parent, target.name, 0o755, folder.owner)
                except BaseException:
                    target.undo()
                    raise
        extraction = Extraction(folder.owner, room, MAX_FILE_BYTES, self._over_quota(sandbox_id), too_large())
        try:
            written = await extraction.run(call.request, destination)
        finally:
            os.close(destination)
            used = self.service.disk_used
            used[sandbox_id] = used.get(sandbox_id, 0) + extraction.written.bytes_written  # until the next measurement
        return {
            "path": path,
            "files": written.files,
            "directories": written.directories,
            "symlinks": written.symlinks,
            "bytesWritten": written.bytes_written,
        }

    async def read_archive(self, call: Call) -> Response:
        folder = self.running_folder(call)
        path = folder.virtual(call.query["path"])
        with folder.open(path, follow=True) as target:
            if target.fd is None:
                raise file_not_found(path)
            if not target.is_folder:
                raise conflict("not_a_directory", path, f"{path} is not a directory.")
            return ArchiveResponse(open_folder(target.fd))

    # Artifacts

    async def create_artifact(self, call: Call) -> Response:
        sandbox_id = call.path["sandboxId"]
        folder = self.running_folder(call)
        path = folder.virtual(call.body["path"])
        with folder.open(path, follow=True) as source:
            is_dir = stat.S_ISDIR(readable(path, source).st_mode)
            assert source.fd is not None
            content = open_folder(source.fd) if is_dir else open_file(source)
        artifact_id = new_id("art")
        stored = self.service.artifact_file(artifact_id)
        base = posixpath.basename(path) or "artifact"
        name = call.body.get("name") or (f"{base}.tar.gz" if is_dir else base)
        try:
            await (in_thread(_tar, content, stored, base) if is_dir else in_thread(_copy, content, stored))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                stored.unlink()
            raise
        finally:
            os.close(content)
        digest = await asyncio.to_thread(_sha256, stored)
        created = now()
        artifact = Artifact(
            id=artifact_id,
            sandbox_id=sandbox_id,
            path=path,
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

    def live_artifact(self, call: Call) -> dict[str, Any]:
        """The call's artifact; 404 if it does not exist or has expired."""
        artifact_id = call.path["artifactId"]
        body = self.service.store.get("artifact", artifact_id)
        if body is None or datetime.datetime.fromisoformat(body["expiresAt"]) <= now():
            raise not_found("artifact", "artifactId", artifact_id)
        return body

    async def get_artifact(self, call: Call) -> dict[str, Any]:
        return self.live_artifact(call)

    async def download_artifact(self, call: Call) -> Response:
        body = self.live_artifact(call)
        fd = os.open(self.service.artifact_file(body["id"]), os.O_RDONLY | os.O_CLOEXEC)
        return ContentResponse(fd, call.request, etag=f'"{body["sha256"]}"')

    async def delete_artifact(self, call: Call) -> None:
        body = self.live_artifact(call)
        self.service.forget_artifact(body["id"])


def too_large() -> ApiProblem:
    return ApiProblem(413, "payload_too_large", "A file may be at most 1 GiB.", {"limitBytes": MAX_FILE_BYTES})


async def _upload(
    request: Request, parent: int, name: str, owner: Owner | None, room: int, over_quota: ApiProblem
) -> os.stat_result:
    """Stream the body into a new file in `parent`, then rename it over `name`; its stat.

    `room` is what the sandbox's disk limit leaves; `over_quota` is raised past it.
    """
    temp = f".upload-{secrets.token_hex(8)}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
    try:
        with os.fdopen(fd, "wb") as f:
            give(fd, owner)
            written = 0
            async for chunk in request.stream():
                written += len(chunk)
                if written > MAX_FILE_BYTES:
                    raise too_large()
                if written > room:
                    raise over_quota
                f.write(chunk)
            f.flush()
            os.fchmod(fd, 0o644)
            st = os.fstat(fd)
        os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=parent)
        raise
    return st


def _make_folder(parent: int, name: str, owner: Owner | None) -> os.stat_result:
    os.mkdir(name, 0o755, dir_fd=parent)
    made = os.open(name, FOLDER, dir_fd=parent)
    try:
        give(made, owner)
        return os.fstat(made)
    finally:
        os.close(made)


def _move(source: Location, target: Location) -> str | None:
    """Move `source` to `target`; the temporary name in `target.parent` that now holds what it replaced.

    With nothing at the target, one rename that never replaces. Otherwise the
    source first leaves for a temporary name beside the target (which takes it
    out of the target when the target is its ancestor), then swaps places with
    the target in one step; if that fails, it goes back.
    """
    assert source.name is not None and target.name is not None
    if target.stat is None:
        rename(source.parent, source.name, target.parent, target.name, RENAME_NOREPLACE)
        return None
    temp = f".move-{secrets.token_hex(8)}"
    rename(source.parent, source.name, target.parent, temp, RENAME_NOREPLACE)
    try:
        rename(target.parent, temp, target.parent, target.name, RENAME_EXCHANGE)
    except BaseException:
        try:
            rename(target.parent, temp, source.parent, source.name, RENAME_NOREPLACE)
        except OSError as exc:
            logger.error("a failed move could not put its source back; it is at %s: %s", temp, exc)
        raise
    return temp


async def _remove_replaced(parent: int, name: str) -> None:
    """Delete what a move replaced; the move has happened, so a failure here is logged, not answered."""
    try:
        await in_thread(remove_tree, parent, name)
    except OSError as exc:
        logger.warning("could not delete what a move replaced (%s): %s", name, exc)


class _Padded:
    """A file read for a tar member (tarfile only calls `read`): zeros after its end if it shrank, as GNU tar does."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f

    def read(self, size: int) -> bytes:
        data = self.f.read(size)
        return data + bytes(size - len(data))


def _tar(folder: int, target: Path, base: str) -> None:
    with tarfile.open(target, "w:gz") as tar:
        for name, fd, st, link in tree(folder, base):
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uid, info.gid = stat.S_IMODE(st.st_mode), st.st_mtime, st.st_uid, st.st_gid
            if fd is None:
                info.type, info.linkname = (tarfile.SYMTYPE, link) if link else (tarfile.DIRTYPE, "")
                tar.addfile(info)
                continue
            with os.fdopen(fd, "rb") as f:
                info.size = st.st_size
                tar.addfile(info, _Padded(f))  # type: ignore[arg-type]  # read() is all tarfile uses


class ListingResponse(DescriptorResponse):
    """The listing of the folder open at `fd` (closed once the answer is done), made by a process of
    its own (`_listing`) and sent as it comes, at most `listers.value` such processes at a time.

    A lister that fails breaks the answer off, so a client sees a cut body, never a short listing;
    one whose client has gone is killed.
    """

    def __init__(self, fd: int, path: str, depth: int, listers: asyncio.Semaphore) -> None:
        self.fd = fd
        super().__init__(self._listed(path, depth, listers), media_type="application/json")

    async def _listed(self, path: str, depth: int, listers: asyncio.Semaphore) -> AsyncIterator[bytes]:
        async with listers:
            lister = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                LISTING_SCRIPT,
                str(self.fd),
                path,
                str(depth),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(self.fd,),
            )
            assert lister.stdout is not None and lister.stderr is not None
            try:
                while chunk := await lister.stdout.read(COPY_CHUNK):
                    yield chunk
                problem = await lister.stderr.read(MAX_LISTER_ERROR)
                if await lister.wait() != 0:
                    raise RuntimeError(f"listing {path} failed: {problem.decode(errors='replace').strip()[-500:]}")
            finally:
                if lister.returncode is None:
                    lister.kill()
                    await lister.wait()


def _copy(fd: int, target: Path) -> None:
    with os.fdopen(os.dup(fd), "rb") as source, target.open("wb") as copy:
        shutil.copyfileobj(source, copy, COPY_CHUNK)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
