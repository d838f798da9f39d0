"""Trees of files in and out of a sandbox as tar streams (`writeArchive`, `readArchive`).

Writing: the request body is read as a tar stream (`tarfile` mode `r|`) in a
worker thread, which takes the body's chunks from the event loop one at a
time, so neither the loop nor memory holds more than a chunk. Each member is
checked by the rules the SDK applies too (`crownest._archives.member_problem`),
then placed relative to the destination folder, opened once by the walk in
`_beneath`: its parent folders are entered one at a time with `O_NOFOLLOW`
(a member through a symlink, or through a file, is refused, so no member can
land outside the folder, whatever the sandbox's commands do meanwhile); a file
is written under a temporary name in its folder and renamed over its name (a
symlink there is replaced, never followed), a symlink likewise. Members apply
in order: when one fails, those before it stay, it leaves nothing, and the
error names it, with the number written before it.

Reading: a lazy walk beneath the folder (`_beneath.tree`, which follows no
link) in a worker thread, sent as the tar stream chunk by chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import posixpath
import secrets
import stat
import tarfile
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from crownest._archives import END, content, header, member_kind, member_problem
from crownest._uploads import CHUNK

from ._beneath import Owner, give, tree
from ._content import DescriptorResponse
from ._errors import ApiProblem
from ._listing import FOLDER, subfolder

MAX_MEMBERS = 200_000
# The longest wait for a chunk of the body: the server's guard ends a body slower than 1 KiB per
# 30 s long before; this only ends a thread whose event loop has stopped.
BODY_WAIT_S = 300


@dataclass
class Written:
    """What an archive write has extracted so far."""

    files: int = 0
    directories: int = 0
    symlinks: int = 0
    bytes_written: int = 0

    members: int = 0
    """Members of the archive written (or found in place) so far, in archive order."""


class _Body:
    """The request body as a blocking file object for `tarfile`, read in a worker thread: each read
    waits for the event loop to hand over the next chunk."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._buffer = memoryview(b"")
        self.received = 0

    async def _next(self) -> bytes:
        return await anext(self._chunks)

    def read(self, size: int = -1) -> bytes:
        while not self._buffer:
            try:
                chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result(BODY_WAIT_S)
            except StopAsyncIteration:
                return b""
            self._buffer = memoryview(chunk)
            self.received += len(chunk)
        size = len(self._buffer) if size < 0 else size
        piece, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(piece)


class Extraction:
    """One archive extracted into a folder, its files given to `owner`.

    `room` is what the sandbox's disk limit leaves; `over_quota` is raised past it, `too_large` for a
    file over `max_file` bytes.
    """

    def __init__(
        self,
        owner: Owner | None,
        room: int,
        max_file: int,
        over_quota: ApiProblem,
        too_large: ApiProblem,
    ) -> None:
        self.folder = -1  # the destination, open in the extracting thread
        self.owner = owner
        self.room = room
        self.max_file = max_file
        self.over_quota = over_quota
        self.too_large = too_large
        self.written = Written()
        self._cached: tuple[str, int] | None = None  # the last parent folder entered, open

    async def run(self, request: Request, folder: int) -> Written:
        """Extract the request's body into the folder open at `folder`, in a worker thread; `written`
        counts what landed even on failure.

        The thread works on its own copy of `folder`: it may outlive the request.
        """
        loop = asyncio.get_running_loop()
        body = _Body(request.stream(), loop)
        await asyncio.to_thread(self._extract, body, os.dup(folder))
        return self.written

    def _extract(self, body: _Body, folder: int) -> None:
        self.folder = folder
        member = ""
        try:
            with tarfile.open(fileobj=body, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:  # type: ignore[call-overload]
                for info in tar:
                    member = info.name
                    if self.written.members >= MAX_MEMBERS:
                        raise self.refused(member, f"is past the limit of {MAX_MEMBERS} members")
                    self._member(tar, info)
                    self.written.members += 1
                    tar.members.clear()  # a streamed archive keeps every TarInfo otherwise
        except (tarfile.TarError, EOFError) as exc:
            if body.received == 0:  # no bytes at all: an archive of nothing, as GNU tar reads it
                return
            raise self.refused(member, f"could not be read: {exc}") from None
        except ApiProblem as problem:
            problem.details.setdefault("member", member)
            problem.details.setdefault("membersWritten", self.written.members)
            raise
        finally:
            if self._cached is not None:
                os.close(self._cached[1])
            os.close(folder)

    def refused(self, member: str, reason: str) -> ApiProblem:
        where = f"Archive member {member!r}" if member else "The archive"
        return ApiProblem(
            400,
            "invalid_archive",
            f"{where} {reason}; {self.written.members} members were written before it.",
            {"member": member, "reason": reason, "membersWritten": self.written.members},
        )

    def conflict(self, member: str, reason: str) -> ApiProblem:
        return ApiProblem(
            409,
            "archive_member_conflict",
            f"Archive member {member!r}: {reason}; {self.written.members} members were written before it.",
            {"member": member, "reason": reason, "membersWritten": self.written.members},
        )

    def _member(self, tar: tarfile.TarFile, info: tarfile.TarInfo) -> None:
        kind = member_kind(info)
        problem = member_problem(info.name, kind, info.linkname)
        if problem is not None:
            raise self.refused(info.name, problem)
        parts = [part for part in info.name.split("/") if part not in ("", ".")]
        if not parts:  # the folder itself ("./"): it exists already
            return
        parent = self._parent(info.name, parts[:-1])
        name = parts[-1]
        if kind == "directory":
            self._directory(info.name, parent, name, info.mode)
        elif kind == "symlink":
            self._replace(info.name, parent, name, lambda temp: self._symlink(parent, temp, info.linkname, info.mtime))
            self.written.symlinks += 1
        else:
            if info.size > self.max_file:
                raise self.too_large
            if self.written.bytes_written + info.size > self.room:
                raise self.over_quota
            source = tar.extractfile(info)
            assert source is not None
            self._replace(info.name, parent, name, lambda temp: self._write(parent, temp, source, info))
            self.written.files += 1
            self.written.bytes_written += info.size

    def _parent(self, member: str, folders: list[str]) -> int:
        """The folder a member goes in, entered from the destination one name at a time (made if missing)."""
        key = "/".join(folders)
        if self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None
        here = os.dup(self.folder)
        try:
            for name in folders:
                inner = subfolder(here, name)
                if inner is None:
                    inner = self._enter_new(member, here, name)
                os.close(here)
                here = inner
        except BaseException:
            os.close(here)
            raise
        self._cached = (key, here)
        return here

    def _enter_new(self, member: str, parent: int, name: str) -> int:
        """`name` in `parent`, which is no folder: made if missing (and opened); refused if a link or a file."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            made = make_folder(parent, name, 0o755, self.owner)
            self.written.directories += 1
            return made
        if stat.S_ISLNK(st.st_mode):
            raise self.refused(member, f"goes through the symlink {name!r}")
        raise self.conflict(member, f"{name!r} on its way is not a directory")

    def _directory(self, member: str, parent: int, name: str, mode: int) -> None:
        inner = subfolder(parent, name)
        if inner is None:
            inner = self._enter_new(member, parent, name)
            os.fchmod(inner, (mode & 0o777) | 0o700)
        else:
            self.written.directories += 1
        os.close(inner)

    def _replace(self, member: str, parent: int, name: str, make: Any) -> None:
        """`make(temp)` a new entry under a temporary name in `parent`, then rename it over `name`."""
        temp = f".upload-{secrets.token_hex(8)}"
        try:
            make(temp)
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=parent)
            if isinstance(exc, OSError) and _is_folder(parent, name):
                raise self.conflict(member, "a directory is in the way") from None
            raise

    def _symlink(self, parent: int, temp: str, target: str, mtime: float) -> None:
        os.symlink(target, temp, dir_fd=parent)
        if self.owner is not None:
            os.chown(temp, *self.owner, dir_fd=parent, follow_symlinks=False)
        os.utime(temp, (mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def _write(self, parent: int, temp: str, source: Any, info: tarfile.TarInfo) -> None:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        with os.fdopen(fd, "wb") as f:
            give(fd, self.owner)
            while chunk := source.read(CHUNK):
                f.write(chunk)
            f.flush()
            os.fchmod(fd, info.mode & 0o777)
            os.utime(fd, (info.mtime, info.mtime))  # as tar does: make-style builds go by it


def _is_folder(parent: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except OSError:
        return False


def make_folder(parent: int, name: str, mode: int, owner: Owner | None) -> int:
    os.mkdir(name, mode, dir_fd=parent)
    made = os.open(name, FOLDER, dir_fd=parent)
    give(made, owner)
    return made


class ArchiveResponse(DescriptorResponse):
    """Everything beneath the folder open at `fd` (closed once the answer is done) as a tar stream."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        super().__init__(_chunks(fd), media_type="application/x-tar")


async def _chunks(fd: int) -> AsyncIterator[bytes]:
    """The archive's chunks, each made in a worker thread; the walk ends (and its files close) if the
    client goes away. The walk has its own copy of `fd`: a thread may outlive the answer."""
    parts = _archive(os.dup(fd))
    done = object()
    try:
        while (chunk := await asyncio.to_thread(next, parts, done)) is not done:
            yield chunk  # type: ignore[misc]
    finally:
        with contextlib.suppress(ValueError):  # still running in a thread: closed when collected
            await asyncio.to_thread(parts.close)


def _archive(folder: int) -> Generator[bytes, None, None]:
    """The tar stream of the folder's contents (the descriptor `folder`, which it closes), names
    relative to it, gathered into ~`CHUNK` pieces."""
    try:
        yield from _members(folder)
    finally:
        os.close(folder)


def _members(folder: int) -> Generator[bytes, None, None]:
    batch = bytearray()
    entries = tree(folder, ".")
    next(entries)  # the folder itself
    for path, fd, st, link in entries:
        name = posixpath.relpath(path, ".")
        if fd is None:
            batch += header(name, st.st_mode, 0, st.st_mtime, link)
        else:
            try:
                batch += header(name, st.st_mode, st.st_size, st.st_mtime)
                with os.fdopen(fd, "rb") as f:
                    fd = None
                    for piece in content(f.read, st.st_size):
                        batch += piece
                        if len(batch) >= CHUNK:
                            yield bytes(batch)
                            batch.clear()
            finally:
                if fd is not None:
                    os.close(fd)
        if len(batch) >= CHUNK:
            yield bytes(batch)
            batch.clear()
    batch += END
    yield bytes(batch)
