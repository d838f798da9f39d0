"""Paths beneath a sandbox's folders, opened one component at a time, never through a link out.

A sandbox's commands can swap any folder of theirs for a link to a host folder
at any moment (`renameat2(RENAME_EXCHANGE)` does it atomically), so a path
checked and then used is a path the command chooses. `walk` therefore opens
each component with `O_PATH | O_NOFOLLOW` relative to the folder opened before
it, starting from the sandbox's own `home/` or `tmp/`; an operation then works
relative to the opened parent (`dir_fd=`), on what was opened, and whatever is
swapped in afterwards is never followed.

Links are followed by this walk, not by the kernel: a target goes on from the
link's folder, and `..` goes back up the folders walked so far, never above the
root the path started in. An absolute target is not followed: what `/tmp/x`
names depends on where the command that made the link ran (its own `/tmp` in
bubblewrap, the host's without it). `..` above a root, an absolute target or
more than 40 links is 400 `invalid_path`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import stat
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ._errors import ApiProblem
from ._listing import FOLDER, in_order, subfolder

logger = logging.getLogger("crownest_local")

ENTRY = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
MAX_LINKS = 40
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

Owner = tuple[int, int]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


def invalid_path(path: str, reason: str) -> ApiProblem:
    return ApiProblem(400, "invalid_path", f"The path {path!r} {reason}.", {"path": path, "reason": reason})


def file_not_found(path: str) -> ApiProblem:
    return ApiProblem(404, "file_not_found", f"No file at {path}.", {"path": path})


def conflict(code: str, path: str, message: str) -> ApiProblem:
    return ApiProblem(409, code, message, {"path": path})


def not_a_directory(path: str) -> ApiProblem:
    return conflict("not_a_directory", path, f"A parent of {path} is not a directory.")


@dataclass
class Location:
    """Where a sandbox path leads: its parent folder (open), its name there and its entry.

    `name` is None when the path is a folder reached without a name of its own
    (a root, or a link to one); `fd` and `stat` are then that folder's. `fd` is
    an `O_PATH` descriptor of the entry itself (a link stays a link unless the
    walk followed it), None if nothing is there. `trail` is the (device, inode)
    of each folder from the root to `parent`. `missing` names the folders
    between `parent` and `name` that do not exist yet (see `make_parents`).
    """

    parent: int
    trail: list[tuple[int, int]]
    name: str | None
    fd: int | None
    stat: os.stat_result | None
    missing: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)

    @property
    def is_folder(self) -> bool:
        return self.stat is not None and stat.S_ISDIR(self.stat.st_mode)

    def same_entry(self, other: Location) -> bool:
        return self.name == other.name and self.trail[-1] == other.trail[-1]

    def make_parents(self, owner: Owner | None) -> None:
        """Create the missing folders (mode 755, given to `owner`); `undo` removes them again."""
        while self.missing:
            name = self.missing.pop(0)
            os.mkdir(name, 0o755, dir_fd=self.parent)
            try:
                made = os.open(name, FOLDER, dir_fd=self.parent)
            except OSError:
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=self.parent)
                raise
            os.close(self.parent)
            self.parent = made
            self.trail.append(_identity(made))
            self.created.append(name)
            give(made, owner)

    def undo(self) -> None:
        """Remove the folders `make_parents` created (those still empty), deepest first, climbing `..`."""
        here = os.dup(self.parent)
        try:
            for depth, name in zip(range(len(self.trail) - 2, -1, -1), reversed(self.created), strict=False):
                up = _climb(here, self.trail[depth])
                os.close(here)
                here = up
                os.rmdir(name, dir_fd=here)
        except OSError:
            pass
        finally:
            os.close(here)
        self.created.clear()

    def close(self) -> None:
        for fd in (self.parent, self.fd):
            if fd is not None:
                os.close(fd)
        self.fd = None

    def __enter__(self) -> Location:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def give(fd: int, owner: Owner | None) -> None:
    """Make what `fd` refers to belong to `owner` (uid, gid), when there is one."""
    if owner is not None:
        os.fchown(fd, *owner)


def walk(roots: Mapping[str, Path], path: str, *, follow: bool, missing_ok: bool = False) -> Location:
    """Open the way to `path` (absolute and normalized) beneath `roots` (sandbox path prefix: host folder).

    `follow`: a link at the end is followed too (else the location is the link).
    `missing_ok`: folders missing on the way are listed in `missing` (else 404).
    Two descriptors are open at a time: `..` climbs back, and must lead to the
    folder the walk came from (404 if the tree moved meanwhile).
    Raises 400 `invalid_path`, 404 `file_not_found`, 409 `not_a_directory`.
    """
    here, parts = _enter(roots, path)
    trail, pending, links = [_identity(here)], deque(parts), 0
    try:
        while pending:
            name = pending.popleft()
            if name == "..":
                if len(trail) == 1:
                    raise invalid_path(path, "goes through a symlink that leaves the sandbox")
                trail.pop()
                up = _climb(here, trail[-1], ENTRY | os.O_DIRECTORY)
                os.close(here)
                here = up
                continue
            try:
                fd = os.open(name, ENTRY, dir_fd=here)
            except FileNotFoundError:
                rest = list(pending)
                if not rest:
                    return Location(here, trail, name, None, None)
                if missing_ok and ".." not in rest:
                    return Location(here, trail, rest[-1], None, None, [name, *rest[:-1]])
                raise file_not_found(path) from None
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and (pending or follow):
                links += 1
                try:
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                if links > MAX_LINKS:
                    raise invalid_path(path, "goes through too many symlinks")
                if target.startswith("/"):
                    raise invalid_path(path, "goes through an absolute symlink, which the file API does not follow")
                pending.extendleft(reversed(_parts(target)))
                continue
            if not pending:
                return Location(here, trail, name, fd, st)
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise not_a_directory(path)
            os.close(here)
            here = fd
            trail.append((st.st_dev, st.st_ino))
        return Location(here, trail, None, os.dup(here), os.fstat(here))
    except BaseException:
        os.close(here)
        raise


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _enter(roots: Mapping[str, Path], path: str) -> tuple[int, list[str]]:
    """The open root that `path` starts in and the components after it, or 400."""
    parts = _parts(path)
    for prefix, folder in roots.items():
        head = _parts(prefix)
        if parts[: len(head)] == head:
            return os.open(folder, FOLDER | os.O_PATH), parts[len(head) :]
    raise invalid_path(path, "is outside the sandbox")


def open_file(location: Location) -> int:
    """A readable descriptor of the regular file found at `location`, the very one the walk opened.

    Reopening the `O_PATH` descriptor through /proc opens that inode and nothing
    else; a FIFO or device is never opened (the caller checks the type first).
    """
    assert location.fd is not None and location.stat is not None and stat.S_ISREG(location.stat.st_mode)
    return os.open(f"/proc/self/fd/{location.fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)


def rename(src_dir: int, src: str, dst_dir: int, dst: str, flags: int = 0) -> None:
    """renameat2(2): NOREPLACE fails with EEXIST instead of replacing; EXCHANGE swaps both atomically."""
    if _libc.renameat2(src_dir, os.fsencode(src), dst_dir, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def entries(fd: int, ordered: bool = True) -> tuple[list[str], list[str]]:
    """The names of the folders and of everything else in the folder open at `fd`, in name order
    (or as the folder gives them, when not `ordered`)."""
    folders: list[str] = []
    others: list[str] = []
    with os.scandir(fd) as scan:
        for entry in scan:
            (folders if entry.is_dir(follow_symlinks=False) else others).append(entry.name)
    return (in_order(folders), in_order(others)) if ordered else (folders, others)


def remove_path(path: Path) -> None:
    """Delete `path` and everything in it, following no link (`shutil.rmtree` opens what a command
    swaps in, a FIFO included, and recurses past Python's limit in a deep tree); errors are logged."""
    try:
        parent = os.open(path.parent, FOLDER)
    except FileNotFoundError:
        return
    try:
        remove_tree(parent, path.name)
    except OSError as exc:
        logger.warning("could not delete all of %s: %s", path, exc)
    finally:
        os.close(parent)


def remove_tree(parent: int, name: str) -> None:
    """Delete `name` in `parent` and everything in it, depth first, following no link.

    Two descriptors are open at a time, however deep the tree: a finished folder
    is left through `..`, which must lead back to the folder it was entered from
    (else the tree moved meanwhile, and this stops with ENOENT). An entry that
    turns into a folder, or out of one, is handled as what it is when opened.
    """
    here = subfolder(parent, name)
    if here is None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=parent)
        return
    trail: list[tuple[str, tuple[int, int], list[str]]] = [(name, _identity(parent), [])]
    try:
        trail[-1][2].extend(_unlink_files(here))
        while trail:
            folder, above, pending = trail[-1]
            if pending:
                child = pending.pop()
                opened = subfolder(here, child)
                if opened is None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(child, dir_fd=here)
                    continue
                trail.append((child, _identity(here), []))
                os.close(here)
                here = opened
                trail[-1][2].extend(_unlink_files(here))
                continue
            trail.pop()
            up = _climb(here, above)
            os.close(here)
            here = up
            os.rmdir(folder, dir_fd=here)
    finally:
        os.close(here)


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _climb(fd: int, expected: tuple[int, int], flags: int = FOLDER) -> int:
    """The folder above `fd`, opened with `flags`, if it is still the one `expected`; ENOENT if not."""
    up = os.open("..", flags, dir_fd=fd)
    if _identity(up) != expected:
        os.close(up)
        raise OSError(errno.ENOENT, "a folder moved away while it was being walked")
    return up


def _unlink_files(fd: int) -> list[str]:
    """Unlink every entry of the folder at `fd` that is not a folder; the folders' names."""
    folders, others = entries(fd, ordered=False)
    for other in others:
        try:
            os.unlink(other, dir_fd=fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            folders.append(other)
    return folders


def tree(fd: int, name: str) -> Iterator[tuple[str, int | None, os.stat_result, str]]:
    """Everything in the folder open at `fd`, as (path under `name`, readable fd or None, stat, link target).

    Top-down, in name order, the folder itself first; following no link. Files
    come with a descriptor opened from the walk (the caller closes it), links
    with their target, folders with neither; FIFOs, devices and sockets are
    left out. Two descriptors are open at a time, as in `remove_tree`.
    """
    yield name, None, os.fstat(fd), ""
    here = os.dup(fd)
    trail: list[tuple[str, tuple[int, int] | None, list[str], list[str]]] = [(name, None, [], [])]
    try:
        trail[-1] = (name, None, *entries(here))
        while True:
            path, above, folders, others = trail[-1]
            if others:
                item = _tree_entry(here, others.pop(0))
                if item is not None:
                    yield f"{path}/{item[0]}", *item[1:]
            elif folders:
                child = folders.pop(0)
                opened = subfolder(here, child)
                if opened is not None:
                    trail.append((f"{path}/{child}", _identity(here), [], []))
                    os.close(here)
                    here = opened
                    yield f"{path}/{child}", None, os.fstat(here), ""
                    trail[-1] = (f"{path}/{child}", trail[-1][1], *entries(here))
            elif above is None:
                return
            else:
                trail.pop()
                up = _climb(here, above)
                os.close(here)
                here = up
    finally:
        os.close(here)


def _tree_entry(folder: int, name: str) -> tuple[str, int | None, os.stat_result, str] | None:
    try:
        fd = os.open(name, ENTRY, dir_fd=folder)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISLNK(st.st_mode):
            return name, None, st, os.readlink("", dir_fd=fd)
        if stat.S_ISREG(st.st_mode):
            return name, os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC), st, ""
        return None
    finally:
        os.close(fd)
