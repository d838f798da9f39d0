"""Snapshots: copies of a sandbox's writable folders that outlive it, and sandboxes started from one.

A snapshot is `data/snapshots/<id>/` holding a copy of the sandbox's `home/`
and `tmp/` (`copy_tree`: symlinks copied as links, never followed, so a link
that points out of the sandbox stays as harmless in the copy as it was; modes
and times kept; file contents copied by the kernel with sendfile). The sandbox's processes are frozen during the copy, so that the files
are consistent, and thawed after unless it was paused. A sandbox started from
a snapshot gets a copy of it the same way, before its first command.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from starlette.responses import Response

from crownest.models import Snapshot

from . import _pause as pause
from ._beneath import remove_path
from ._errors import ApiProblem, not_found
from ._limits import folder_usage
from ._service import Call, Service, json_response, now


def copy_tree(source: Path, target: Path) -> None:
    """Copy the folder `source` to the new folder `target`, links as links (blocking: run it in a thread).

    Regular files (with their modes and times), folders and symlinks are copied; anything else (a
    FIFO, a socket) is left out, so that the copy never blocks on a FIFO.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copytree(source, target, symlinks=True, ignore=_special, copy_function=shutil.copy2)
    except (OSError, shutil.Error) as exc:
        remove_path(target)
        raise ApiProblem(500, "internal_error", "The sandbox's files could not be copied.") from exc


def _special(folder: str, names: list[str]) -> set[str]:
    """The entries of `folder` that are neither regular files, folders nor symlinks."""
    skipped = set()
    for name in names:
        try:
            mode = os.lstat(os.path.join(folder, name)).st_mode
        except OSError:
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            skipped.add(name)
    return skipped


async def fill(source: Path, sandbox_folder: Path) -> None:
    """Fill a new sandbox's folder with a copy of `source` (a snapshot's or a built template's files)."""
    await asyncio.to_thread(remove_path, sandbox_folder)
    await asyncio.to_thread(copy_tree, source, sandbox_folder)


class Snapshots:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.folder = service.config.data_dir / "snapshots"
        self.folder.mkdir(exist_ok=True)

    def path(self, snapshot_id: str) -> Path:
        return self.folder / snapshot_id

    def get_body(self, snapshot_id: str) -> dict[str, Any]:
        body = self.service.store.get("snapshot", snapshot_id)
        if body is None:
            raise not_found("snapshot", "snapshotId", snapshot_id)
        return body

    async def take(self, sandbox_id: str, name: str | None) -> dict[str, Any]:
        """Copy a running or paused sandbox's files into a new snapshot, its processes frozen meanwhile."""
        service = self.service
        body = service.running_sandbox(sandbox_id, reads=True)
        snapshot_id = f"snp_{secrets.token_hex(8)}"
        target = self.path(snapshot_id)
        cgroup, sessions = service.cgroups.get(sandbox_id), service._sessions(sandbox_id)
        frozen = body["status"] == "running"
        if frozen:
            await asyncio.to_thread(pause.freeze, cgroup, sessions)
        try:
            await asyncio.to_thread(copy_tree, service.folder(sandbox_id).folder, target)
        finally:
            if frozen and service.store.get("sandbox", sandbox_id) is not None:
                await asyncio.to_thread(pause.thaw, cgroup, sessions)
        snapshot = Snapshot(
            id=snapshot_id,
            name=name,
            sandbox_id=sandbox_id,
            template=body["template"],
            size_bytes=await asyncio.to_thread(folder_usage, target),
            created_at=now(),
        )
        wire = snapshot.to_dict()
        service.store.insert("snapshot", wire)
        return wire

    async def restore(self, snapshot_id: str, sandbox_folder: Path) -> None:
        """Fill a new sandbox's folder with a snapshot's files."""
        await fill(self.path(snapshot_id), sandbox_folder)

    # Handlers

    async def create_sandbox(self, call: Call) -> Response:
        """`createSandbox`: with `snapshot`, the sandbox starts with that snapshot's files and template."""
        snapshot_id = call.body.get("snapshot")
        if snapshot_id is None:
            return json_response(await self.service.new_sandbox(call.body), 201)
        snapshot = self.get_body(snapshot_id)
        if call.body.get("template", snapshot["template"]) != snapshot["template"]:
            raise ApiProblem(
                400,
                "invalid_request",
                f"Snapshot {snapshot_id} is of template {snapshot['template']}, not {call.body['template']}.",
                {"field": "template", "reason": "differs from the snapshot's"},
            )
        body = {**call.body, "template": snapshot["template"]}
        return json_response(
            await self.service.new_sandbox(body, lambda folder: self.restore(snapshot_id, folder)), 201
        )

    async def snapshot_sandbox(self, call: Call) -> Response:
        return json_response(await self.take(call.path["sandboxId"], (call.body or {}).get("name")), 201)

    async def fork_sandbox(self, call: Call) -> Response:
        service = self.service
        sandbox_id = call.path["sandboxId"]
        snapshot = await self.take(sandbox_id, f"fork of {sandbox_id}")
        body = service.sandbox(sandbox_id)
        request = {
            "template": body["template"],
            "ttlMs": body["ttlMs"],
            "metadata": body["metadata"],
            "env": service.store.extra(sandbox_id).get("env", {}),
            "onTimeout": body.get("onTimeout", "kill"),
            "snapshot": snapshot["id"],
            **{k: v for k, v in body["limits"].items() if k != "enforcedBy"},
        }
        return json_response(
            await service.new_sandbox(request, lambda folder: self.restore(snapshot["id"], folder)), 201
        )

    async def list_snapshots(self, call: Call) -> dict[str, Any]:
        sandbox_id = call.query.get("sandboxId")
        return self.service.store.page(
            "snapshot",
            limit=call.query.get("limit", 20),
            cursor=call.query.get("cursor"),
            keep=lambda body: sandbox_id is None or body["sandboxId"] == sandbox_id,
        )

    async def get_snapshot(self, call: Call) -> dict[str, Any]:
        return self.get_body(call.path["snapshotId"])

    async def delete_snapshot(self, call: Call) -> None:
        body = self.get_body(call.path["snapshotId"])
        self.service.store.delete(body["id"])
        trash = self.folder / f".trash-{body['id']}-{secrets.token_hex(4)}"
        with contextlib.suppress(FileNotFoundError):
            os.rename(self.path(body["id"]), trash)
            self.service.spawn(asyncio.to_thread(remove_path, trash))
