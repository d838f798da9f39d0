"""Watches: what changes in a sandbox's folder, as resumable Server-Sent Events.

One inotify instance serves the whole server (`Hub`; the kernel allows few
instances per user, 128 by default, and the server runs as one user), read on
the event loop. Each `LiveWatch` owns some of its watch descriptors, turns the
raw events of its folders into `FileEvent`s (moves paired by their cookie),
numbers them and keeps the last `MAX_KEPT_EVENTS`, so that a client that
reconnects with `Last-Event-ID` gets exactly the events after that id.

Nothing is watched through a link: a folder is opened one component at a time
with `O_NOFOLLOW` (`_beneath`), and the watch is added on that very folder
through `/proc/self/fd/<fd>` with `IN_ONLYDIR`. (`IN_DONT_FOLLOW` cannot be used
on that magic link, which it would refuse to follow; the `O_NOFOLLOW` open gives
the same guarantee without the race of a path checked and then used.) Paths in
events are sandbox paths built from the names inotify reports, never host paths.

Bounds: `MAX_WATCHES_PER_SANDBOX` active watches per sandbox (409
`too_many_watches`); `MAX_FOLDERS_PER_WATCH` folders per watch (a folder past
it is not watched: one `overflow` event names it); the newest
`MAX_KEPT_EVENTS` events per watch, `MAX_KEPT_BYTES` at most (a client asking
for older ones gets one `overflow` event in their place); the kernel's queue
(on its overflow every watch gets an `overflow` event for its folder); and
`MAX_ENDED_PER_SANDBOX` ended watches kept for their readers, until the
sandbox's retention period after it ended. A watch ends when it is deleted,
when its folder is removed or moved, and when its sandbox ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import posixpath
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from inotify_simple import INotify
from inotify_simple import flags as F
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from crownest.models import FileEvent, FileEventType, Watch, WatchStatus

from ._beneath import conflict, file_not_found
from ._errors import ApiProblem, not_found
from ._isolation import SandboxFolder
from ._listing import FOLDER, as_text, open_folder
from ._service import Call, Service, json_response, new_id, now
from ._spec import digits

logger = logging.getLogger("crownest_local")

MAX_WATCHES_PER_SANDBOX = 16
MAX_ENDED_PER_SANDBOX = 16
MAX_FOLDERS_PER_WATCH = 1_000
MAX_KEPT_EVENTS = 10_000
MAX_KEPT_BYTES = 4 << 20  # of kept events' JSON: a path may be 4 KiB long
KEEP_ALIVE_S = 10.0

MASK = F.CREATE | F.MODIFY | F.DELETE | F.MOVED_FROM | F.MOVED_TO | F.DELETE_SELF | F.MOVE_SELF | F.ONLYDIR


class Hub:
    """The server's one inotify instance: watch descriptors, the watches that own each, and the reader."""

    def __init__(self) -> None:
        self._inotify: INotify | None = None
        self._owners: dict[int, set[LiveWatch]] = {}
        self._unpaired: set[LiveWatch] = set()  # watches holding a move's first half
        self._settling = False

    def add(self, watch: LiveWatch, fd: int) -> int:
        """Watch the folder open at `fd` (any descriptor of it, `O_PATH` included) for `watch`."""
        if self._inotify is None:
            self._inotify = INotify(nonblocking=True)
            asyncio.get_running_loop().add_reader(self._inotify.fd, self._read)
        wd: int = self._inotify.add_watch(f"/proc/self/fd/{fd}", MASK)
        self._owners.setdefault(wd, set()).add(watch)
        return wd

    def remove(self, watch: LiveWatch, wd: int) -> None:
        """`watch` no longer needs `wd`; the kernel's watch goes when no watch needs it."""
        owners = self._owners.get(wd)
        if owners is None:
            return
        owners.discard(watch)
        if not owners:
            del self._owners[wd]
            if self._inotify is not None:
                with contextlib.suppress(OSError):  # the folder is gone already (IN_IGNORED is on its way)
                    self._inotify.rm_watch(wd)

    def descriptors(self) -> dict[str, int]:
        """How many kernel watches each watch (by ID) holds now."""
        counts: dict[str, int] = {}
        for owners in self._owners.values():
            for watch in owners:
                counts[watch.body["id"]] = counts.get(watch.body["id"], 0) + 1
        return counts

    def _read(self) -> None:
        self._dispatch()
        if self._unpaired and not self._settling:
            self._settling = True
            asyncio.get_running_loop().call_soon(self._settle)

    def _settle(self) -> None:
        """Read once more before calling a move without its other half a move out (or in).

        The kernel queues a rename's MOVED_FROM and MOVED_TO one after the other, and a read can
        fall between them; one turn of the event loop later the second half is there to read.
        """
        self._settling = False
        waiting = {watch: set(watch.moved_from) for watch in self._unpaired}
        self._dispatch()
        for watch, cookies in waiting.items():
            watch.flush_moves(cookies)
        self._unpaired = {watch for watch in self._unpaired if watch.moved_from and not watch.ended}
        if self._unpaired:
            self._settling = True
            asyncio.get_running_loop().call_soon(self._settle)

    def _dispatch(self) -> None:
        """Read what the kernel has queued and hand each watch its events."""
        if self._inotify is None:
            return
        try:
            raw = self._inotify.read(timeout=0)
        except BlockingIOError:
            return
        batches: dict[LiveWatch, list[Any]] = {}
        for event in raw:
            if event.mask & F.Q_OVERFLOW:
                for owners in self._owners.values():
                    for watch in owners:
                        batches.setdefault(watch, []).append(event)
                continue
            for watch in self._owners.get(event.wd, ()):
                batches.setdefault(watch, []).append(event)
            if event.mask & F.IGNORED:
                self._owners.pop(event.wd, None)
        for watch, batch in batches.items():
            try:
                watch.feed(batch)
            except Exception:  # one watch's fault must not stop the others
                logger.exception("watch %s failed on its events; it ends", watch.body["id"])
                watch.end("folder_gone")
            if watch.moved_from and not watch.ended:
                self._unpaired.add(watch)

    def close(self) -> None:
        if self._inotify is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._inotify.fd)
            self._inotify.close()
            self._inotify = None
        self._owners.clear()
        self._unpaired.clear()


class LiveWatch:
    """One watch: its folders (by watch descriptor), its numbered events, and its readers' wake-up."""

    def __init__(self, body: dict[str, Any], folder: SandboxFolder, hub: Hub) -> None:
        self.body = body
        self.folder = folder
        self.hub = hub
        self.recursive: bool = body["recursive"]
        self.folders: dict[int, str] = {}  # watch descriptor -> the folder's sandbox path
        self.root_wd: int | None = None
        self.kept: deque[tuple[int, str]] = deque()  # (id, FileEvent JSON), the newest MAX_KEPT_* of them
        self.kept_bytes = 0
        self.last_id = 0
        self._scanned: set[str] = set()  # entries announced by a scan, whose IN_CREATE may still come
        self.moved_from: dict[int, tuple[str, bool]] = {}  # by cookie: moves whose MOVED_TO is not read yet
        self._changed = asyncio.Event()

    @property
    def ended(self) -> bool:
        return bool(self.body["status"] == "ended")

    @property
    def first_kept(self) -> int:
        return self.kept[0][0] if self.kept else self.last_id + 1

    # Folders

    def start(self, fd: int) -> None:
        """Watch the folder open at `fd` (and, if recursive, the folders beneath it), announcing nothing."""
        self.root_wd = self._add_tree(fd, self.body["path"], announce=False)

    def _add_tree(self, fd: int, path: str, *, announce: bool) -> int | None:
        """Watch the folder at `fd` as `path`, then (recursive) its subfolders; `announce` its entries as created."""
        if len(self.folders) >= MAX_FOLDERS_PER_WATCH:
            self._emit(FileEventType.OVERFLOW, path, is_dir=True)
            return None
        try:
            wd = self.hub.add(self, fd)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.ENOENT, errno.ENOTDIR):
                raise
            self._emit(FileEventType.OVERFLOW, path, is_dir=True)  # ENOSPC: the kernel's max_user_watches
            return None
        self.folders[wd] = path
        if not (announce or self.recursive):
            return wd
        listing = open_folder(fd)
        try:
            with os.scandir(listing) as scan:
                found = sorted((entry.name, entry.is_dir(follow_symlinks=False)) for entry in scan)
            for name, is_dir in found:
                child = posixpath.join(path, name)
                if announce:
                    self._scanned.add(child)
                    self._emit(FileEventType.CREATED, child, is_dir=is_dir)
                if is_dir and self.recursive:
                    self._add_child(listing, name, child, announce=announce)
        finally:
            os.close(listing)
        return wd

    def _add_child(self, parent: int, name: str, path: str, *, announce: bool) -> None:
        try:
            fd = os.open(name, FOLDER, dir_fd=parent)  # O_NOFOLLOW | O_DIRECTORY: never a link
        except OSError:
            return  # replaced by a file or a link, or gone: its own events say so
        try:
            self._add_tree(fd, path, announce=announce)
        finally:
            os.close(fd)

    def _add_new_folder(self, path: str) -> None:
        """A folder appeared at `path` after the watch began: walk to it from the sandbox's root and watch it."""
        try:
            location = self.folder.open(path, follow=False)
        except ApiProblem:
            return  # gone again, or its way changed: later events tell
        except OSError:
            self._emit(FileEventType.OVERFLOW, path, is_dir=True)  # it cannot be watched: say so
            return
        with location:
            if location.fd is not None and location.is_folder:
                self._add_tree(location.fd, path, announce=True)

    def _forget_under(self, path: str, *, rename_to: str | None = None) -> None:
        """Folders at or under `path` moved to `rename_to` (still watched), or out of the watch (forgotten)."""
        prefix = path + "/"
        for wd, folder in list(self.folders.items()):
            if folder == path or folder.startswith(prefix):
                if rename_to is None:
                    del self.folders[wd]
                    self.hub.remove(self, wd)
                else:
                    self.folders[wd] = rename_to + folder[len(path) :]

    # Events

    def feed(self, batch: list[Any]) -> None:
        """Turn one read's raw events for this watch into FileEvents (a move's two halves paired by cookie)."""
        moved_from = self.moved_from
        for event in batch:
            if self.ended:
                return
            mask = event.mask
            if moved_from and not (mask & F.MOVED_TO and event.cookie in moved_from):
                self.flush_moves(set(moved_from))  # the kernel queues a move's halves together: it went out
            if mask & F.Q_OVERFLOW:
                self._emit(FileEventType.OVERFLOW, self.body["path"], is_dir=True)
                continue
            if mask & F.IGNORED:
                self.folders.pop(event.wd, None)
                if event.wd == self.root_wd:
                    self.end("folder_gone")
                continue
            if mask & (F.DELETE_SELF | F.MOVE_SELF):
                if event.wd == self.root_wd:
                    self.end("folder_gone")
                continue
            folder = self.folders.get(event.wd)
            if folder is None:
                continue
            path = posixpath.join(folder, event.name)
            is_dir = bool(mask & F.ISDIR)
            if mask & F.CREATE:
                if path in self._scanned:
                    self._scanned.discard(path)  # a scan announced it already
                    continue
                self._emit(FileEventType.CREATED, path, is_dir=is_dir)
                if is_dir and self.recursive:
                    self._add_new_folder(path)
            elif mask & F.MODIFY:
                self._emit(FileEventType.MODIFIED, path, is_dir=is_dir)
            elif mask & F.DELETE:
                self._scanned.discard(path)
                self._emit(FileEventType.DELETED, path, is_dir=is_dir)
            elif mask & F.MOVED_FROM:
                self._scanned.discard(path)
                moved_from[event.cookie] = (path, is_dir)
            elif mask & F.MOVED_TO:
                source = moved_from.pop(event.cookie, None)
                if source is None:  # moved in from outside the watched folder
                    self._emit(FileEventType.CREATED, path, is_dir=is_dir)
                    if is_dir and self.recursive:
                        self._add_new_folder(path)
                    continue
                self._emit(FileEventType.MOVED, source[0], is_dir=is_dir, new_path=path)
                if is_dir:
                    self._forget_under(source[0], rename_to=path)
        if len(self._scanned) > MAX_KEPT_EVENTS:
            self._scanned.clear()

    def flush_moves(self, cookies: set[int]) -> None:
        """The moves among `cookies` still without their MOVED_TO went out of the watched folder."""
        for cookie in cookies:
            source = self.moved_from.pop(cookie, None)
            if source is not None and not self.ended:
                self._emit(FileEventType.DELETED, source[0], is_dir=source[1])
                if source[1]:
                    self._forget_under(source[0])

    def _emit(self, kind: FileEventType, path: str, *, is_dir: bool, new_path: str | None = None) -> None:
        new_path = None if new_path is None else as_text(new_path)
        change = FileEvent(type_=kind, path=as_text(path), new_path=new_path, is_dir=is_dir)
        self.last_id += 1
        data = json.dumps(change.to_dict(), ensure_ascii=False)
        self.kept.append((self.last_id, data))
        self.kept_bytes += len(data)
        while len(self.kept) > MAX_KEPT_EVENTS or self.kept_bytes > MAX_KEPT_BYTES:
            self.kept_bytes -= len(self.kept.popleft()[1])
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def end(self, reason: str) -> None:
        """Stop watching; readers get what is kept, then the `end` event."""
        if self.ended:
            return
        for wd in list(self.folders):
            self.hub.remove(self, wd)
        self.folders.clear()
        self.body.update(status=WatchStatus.ENDED.value, endedAt=now().isoformat(), endReason=reason)
        self.body = Watch.from_dict(self.body).to_dict()  # the wire form of the time
        self._wake()

    async def changed(self, timeout_s: float) -> None:
        """Return when an event is added or the watch ends, or after `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)


class Watches:
    """The watch endpoints, and every sandbox's watches (ended with their sandbox)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.hub = Hub()
        self._by_sandbox: dict[str, dict[str, LiveWatch]] = {}
        service.on_sandbox_end.append(self._sandbox_ended)

    def close(self) -> None:
        for watches in self._by_sandbox.values():
            for watch in watches.values():
                watch.end("sandbox_ended")
        self.hub.close()

    def _sandbox_ended(self, sandbox_id: str) -> None:
        """End the sandbox's watches; their events stay readable for the sandbox's retention period."""
        for watch in self._by_sandbox.get(sandbox_id, {}).values():
            watch.end("sandbox_ended")
        asyncio.get_running_loop().call_later(self.service.config.retention_s, self._by_sandbox.pop, sandbox_id, None)

    async def create_watch(self, call: Call) -> Response:
        sandbox_id = call.path["sandboxId"]
        self.service.running_sandbox(sandbox_id)
        folder = self.service.folder(sandbox_id)
        path = folder.virtual(call.body["path"])
        watches = self._by_sandbox.setdefault(sandbox_id, {})
        if sum(not w.ended for w in watches.values()) >= MAX_WATCHES_PER_SANDBOX:
            raise ApiProblem(
                409,
                "too_many_watches",
                f"Sandbox {sandbox_id} already has {MAX_WATCHES_PER_SANDBOX} active watches; stop one first.",
                {"limit": MAX_WATCHES_PER_SANDBOX},
            )
        with folder.open(path, follow=True) as target:
            if target.fd is None:
                raise file_not_found(path)
            if not target.is_folder:
                raise conflict("not_a_directory", path, f"{path} is not a directory.")
            body = Watch(
                id=new_id("wch"),
                sandbox_id=sandbox_id,
                path=path,
                recursive=call.body.get("recursive", True),
                status=WatchStatus.ACTIVE,
                created_at=now(),
                ended_at=None,
                end_reason=None,
            ).to_dict()
            watch = LiveWatch(body, folder, self.hub)
            try:
                watch.start(target.fd)
            except BaseException:
                watch.end("folder_gone")
                raise
        self._forget_ended(watches)
        watches[body["id"]] = watch
        return json_response(body, 201)

    def _forget_ended(self, watches: dict[str, LiveWatch]) -> None:
        """Keep the newest `MAX_ENDED_PER_SANDBOX - 1` ended watches (dicts keep creation order)."""
        ended = [watch_id for watch_id, watch in watches.items() if watch.ended]
        for watch_id in ended[: max(0, len(ended) - MAX_ENDED_PER_SANDBOX + 1)]:
            del watches[watch_id]

    def _watch(self, call: Call) -> LiveWatch:
        sandbox_id = call.path["sandboxId"]
        self.service.sandbox(sandbox_id)  # 404 for an unknown sandbox, also after it ended
        watch = self._by_sandbox.get(sandbox_id, {}).get(call.path["watchId"])
        if watch is None:
            raise not_found("watch", "watchId", call.path["watchId"])
        return watch

    async def delete_watch(self, call: Call) -> None:
        self._watch(call).end("deleted")

    async def stream_watch_events(self, call: Call) -> Response:
        watch = self._watch(call)
        after = digits(call.headers.get("last-event-id", "0").strip() or "0")
        if after is None or after > watch.last_id:
            raise ApiProblem(
                400,
                "invalid_request",
                "Last-Event-ID is not an id this watch sent.",
                {"field": "Last-Event-ID", "reason": "is not an id this watch sent"},
            )
        return StreamingResponse(
            _events(watch, after, call.request), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )


async def _events(watch: LiveWatch, after: int, request: Request) -> AsyncIterator[bytes]:
    while True:
        if after < watch.first_kept - 1:  # asked for events no longer kept: say so, once, in their place
            after = watch.first_kept - 1
            lost = FileEvent(type_=FileEventType.OVERFLOW, path=watch.body["path"], new_path=None, is_dir=True)
            yield _sse(after, "change", json.dumps(lost.to_dict()))
        for event_id, data in list(watch.kept)[after - watch.first_kept + 1 :]:
            if await request.is_disconnected():  # uvicorn takes writes to a closed connection silently
                return
            after = event_id
            yield _sse(event_id, "change", data)
        if watch.ended:
            yield _sse(after, "end", json.dumps(watch.body, ensure_ascii=False))
            return
        if watch.last_id > after:
            continue  # added while the last event was written
        await watch.changed(KEEP_ALIVE_S)
        if watch.last_id == after and not watch.ended:
            if await request.is_disconnected():
                return
            yield b": keep-alive\n\n"


def _sse(event_id: int, kind: str, data: str) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()
