"""Trees of files as tar streams: `upload_dir`, `write_many` and `download_dir`.

One tar dialect serves both ends (CrowNest Local imports this module): PAX
headers, UTF-8 names, regular files, directories and symlinks only.

Upload: `directory_archive` lists the local folder once (names and sizes, not
contents, so memory grows with the number of entries, about 300 bytes each,
never with their size) and gives an `Upload` whose content is the tar stream,
made as it is sent and made again for a retry. A file that changes size while
it is read is sent at its listed size (cut, or padded with zeros, as GNU tar
does), so the announced `Content-Length` always holds. Symlinks are sent as
symlinks; FIFOs, sockets and devices are left out. A symlink that the server
would refuse (`member_problem`) raises `ValueError` before any request.

Download: the archive streams into a temporary file beside `local_dir` (resumed
or restarted after a break by the client's download loop), then is extracted
member by member with `tarfile`'s `data` filter (no absolute names, no `..`,
no links leading out of `local_dir`, no devices) plus `member_problem`.
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import secrets
import stat
import tarfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from ._exceptions import ResponseValidationError
from ._uploads import CHUNK, Progress, Upload

BLOCK = 512
END = bytes(2 * BLOCK)
MAX_MANY_BYTES = 64 * 1024 * 1024
"""What `write_many` takes in all: its archive is built in memory."""


def member_problem(name: str, kind: str, link: str = "") -> str | None:
    """Why an archive member may not be extracted (None if it may), by the rules both ends apply.

    `kind` is `file`, `directory`, `symlink`, `hardlink` or `other`. A name must be relative and
    free of `..`; a symlink's target must be relative and, read from the link's own folder, stay
    inside the folder extracted into (`.` included).
    """
    if not name or "\x00" in name:
        return "has an empty name or a NUL in it"
    if name.startswith("/"):
        return "has an absolute name"
    if ".." in name.split("/"):
        return "has '..' in its name"
    if kind != "directory" and not [part for part in name.split("/") if part not in ("", ".")]:
        return "names the directory itself"
    if kind == "hardlink":
        return "is a hard link, which archives here may not contain"
    if kind == "other":
        return "is a device, FIFO or other special file"
    if kind == "symlink":
        if not link or "\x00" in link:
            return "is a symlink with an empty target"
        if link.startswith("/"):
            return "is a symlink with an absolute target"
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name.rstrip("/")), link))
        if resolved == ".." or resolved.startswith("../"):
            return "is a symlink that points outside the directory"
    return None


def member_kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "directory"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    return "other"


def header(name: str, mode: int, size: int, mtime: float, link: str = "") -> bytes:
    """The tar header of one member: a directory, a symlink (`link` given) or a regular file of `size` bytes."""
    info = tarfile.TarInfo(name)
    info.mode, info.mtime = stat.S_IMODE(mode) & 0o777, int(mtime)
    if stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif link:
        info.type, info.linkname = tarfile.SYMTYPE, link
    else:
        info.size = size
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def content(read: Callable[[int], bytes], size: int) -> Iterator[bytes]:
    """Exactly `size` bytes from `read` (zeros after an early end), then the padding to a whole block."""
    left = size
    while left:
        chunk = read(min(CHUNK, left))
        if not chunk:
            yield bytes(left)
            break
        left -= len(chunk)
        yield chunk
    if size % BLOCK:
        yield bytes(BLOCK - size % BLOCK)


def padded(size: int) -> int:
    return -(-size // BLOCK) * BLOCK


@dataclass(frozen=True)
class _Entry:
    name: str
    mode: int
    size: int
    mtime: float
    link: str


def directory_archive(name: str, local_dir: str | os.PathLike[str], progress: Progress | None) -> Upload:
    """The tar stream of everything in `local_dir`, as a replayable `Upload` of known size."""
    root = os.fspath(local_dir)
    if not isinstance(root, str):
        raise TypeError(f"{name} must be a str path or os.PathLike[str], got bytes")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{name}: no directory at {root!r}")
    entries = list(_listing(root, name))
    size = sum(len(header(e.name, e.mode, e.size, e.mtime, e.link)) + padded(e.size) for e in entries) + len(END)
    return Upload(make=lambda: _stream(root, entries), size=size, progress=progress)


def _listing(root: str, name: str) -> Iterator[_Entry]:
    """The entries beneath `root`, top-down in name order, following no link."""
    pending = [""]
    while pending:
        folder = pending.pop()
        with os.scandir(os.path.join(root, folder) if folder else root) as scan:
            found = sorted(scan, key=lambda entry: entry.name)
        subfolders = []
        for entry in found:
            member = f"{folder}/{entry.name}" if folder else entry.name
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                link = os.readlink(entry.path)
                problem = member_problem(member, "symlink", link)
                if problem is not None:
                    raise ValueError(f"{name}: {entry.path} {problem} ({link!r}); the server would refuse it")
                yield _Entry(member, st.st_mode, 0, st.st_mtime, link)
            elif stat.S_ISDIR(st.st_mode):
                yield _Entry(member, st.st_mode, 0, st.st_mtime, "")
                subfolders.append(member)
            elif stat.S_ISREG(st.st_mode):
                yield _Entry(member, st.st_mode, st.st_size, st.st_mtime, "")
        pending.extend(reversed(subfolders))


def _stream(root: str, entries: list[_Entry]) -> Iterator[bytes]:
    """The archive, in chunks of about `CHUNK` bytes (small members are gathered into one chunk)."""
    batch = bytearray()
    for entry in entries:
        batch += header(entry.name, entry.mode, entry.size, entry.mtime, entry.link)
        if entry.link or stat.S_ISDIR(entry.mode):
            continue
        f = _open_regular(os.path.join(root, entry.name))
        try:
            for piece in content(f.read if f is not None else lambda n: b"", entry.size):
                batch += piece
                if len(batch) >= CHUNK:
                    yield bytes(batch)
                    batch.clear()
        finally:
            if f is not None:
                f.close()
    batch += END
    yield bytes(batch)


def _open_regular(path: str) -> BinaryIO | None:
    """The regular file at `path`, opened to read; None if it is gone or is something else now (a
    FIFO swapped in is never waited on, a link never followed): its entry is then sent as zeros."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def many_archive(name: str, files: Mapping[str, str | bytes], progress: Progress | None) -> tuple[str, Upload]:
    """(the folder to extract into, the in-memory archive) for `write_many(files)`.

    Paths are all absolute or all relative (to `/home/user`); the archive's members are
    relative to their deepest common folder. Text is sent as UTF-8.
    """
    if not isinstance(files, Mapping) or not files:
        raise TypeError(f"{name} must be a non-empty mapping of paths to str or bytes")
    paths: dict[str, bytes] = {}
    for path, data in files.items():
        if not isinstance(path, str) or not path.strip("/") or "\x00" in path:
            raise TypeError(f"{name}: every key must be a file path, got {path!r}")
        if not isinstance(data, str | bytes | bytearray | memoryview):
            raise TypeError(f"{name}[{path!r}] must be str or bytes, got {type(data).__name__}")
        paths[posixpath.normpath(path)] = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len({p.startswith("/") for p in paths}) > 1:
        raise ValueError(f"{name}: give every path absolute, or every path relative to /home/user, not both")
    total = sum(len(d) for d in paths.values())
    if total > MAX_MANY_BYTES:
        raise ValueError(f"{name}: {total} bytes in all; write_many takes at most {MAX_MANY_BYTES} (use upload_dir)")
    base = posixpath.commonpath([posixpath.dirname(p) or "." for p in paths]) or "."
    body = bytearray()
    for path, data in paths.items():
        member = posixpath.relpath(path, base)
        problem = member_problem(member, "file")
        if problem is not None:
            raise ValueError(f"{name}: {path!r} {problem}")
        body += header(member, 0o644, len(data), 0)
        body += b"".join(content(io.BytesIO(data).read, len(data)))
    body += END
    return base, Upload(data=bytes(body), progress=progress)


def extract(archive: str, local_dir: str) -> int:
    """Extract the tar file `archive` into `local_dir` (created if missing); the number of entries made.

    Read as a stream (one member's metadata in memory at a time). A symlink that points outside
    `local_dir` (absolute, or leading out) is left out, with a warning naming it: a sandbox may
    hold such links (a virtualenv's `python -> /usr/bin/python3`), and they cannot be made here
    safely. Any other member the rules refuse raises `tarfile.FilterError` naming it, after the
    members before it were written.
    """
    os.makedirs(local_dir, exist_ok=True)
    if os.path.getsize(archive) == 0:  # no bytes at all: an archive of nothing, as GNU tar reads it
        return 0
    count = 0
    left_out: list[str] = []
    with tarfile.open(archive, "r|") as tar:
        for info in tar:
            kind = member_kind(info)
            problem = member_problem(info.name, kind, info.linkname)
            if problem is not None and kind == "symlink" and member_problem(info.name, "file") is None:
                left_out.append(info.name)
            elif problem is not None:
                raise tarfile.FilterError(f"archive member {info.name!r} {problem}")
            else:
                try:
                    tar.extract(info, local_dir, filter="data")
                    count += 1
                except (tarfile.AbsoluteLinkError, tarfile.LinkOutsideDestinationError):
                    left_out.append(info.name)  # leads out through links made before it
            tar.members.clear()  # type: ignore[attr-defined]  # a streamed archive keeps every TarInfo otherwise
    if left_out:
        names = ", ".join(repr(name) for name in left_out[:5]) + (", ..." if len(left_out) > 5 else "")
        warnings.warn(
            f"download_dir left out {len(left_out)} symlinks that point outside {local_dir}: {names}",
            UserWarning,
            stacklevel=2,
        )
    return count


class ArchiveFile:
    """The temporary file a directory download streams into, beside `local_dir`; removed on exit.

    `extract` unpacks it into `local_dir`; an archive that is malformed or holds a member that
    would land outside `local_dir` raises `ResponseValidationError` (a bad answer), after the
    members before it were written.
    """

    def __init__(self, local_dir: str | os.PathLike[str]) -> None:
        self.local_dir = os.path.abspath(os.fspath(local_dir))
        if os.path.exists(self.local_dir) and not os.path.isdir(self.local_dir):
            raise NotADirectoryError(f"local_dir: {self.local_dir!r} exists and is not a directory")
        parent, name = os.path.split(self.local_dir)
        os.makedirs(parent, exist_ok=True)
        self.path = os.path.join(parent, f".{name}.{secrets.token_hex(4)}.tar")

    def extract(self) -> int:
        try:
            return extract(self.path, self.local_dir)
        except (tarfile.TarError, EOFError) as exc:
            raise ResponseValidationError(
                f"The directory archive could not be extracted: {exc}", response=None
            ) from exc

    def __enter__(self) -> ArchiveFile:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
