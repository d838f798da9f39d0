"""The body of `files.list`: a folder's entries, in name order, read beneath it without following a link.

Standard library only, so that it also runs as a script, in a process of its own:

    python -I -S _listing.py FD PATH DEPTH

lists the folder open at descriptor FD (inherited) as PATH, DEPTH levels down, and writes the
body to its standard output. A big folder is listed that way (`Files.list_files`): 200,000
entries are seconds of Python, and a thread doing them competes with the server's event loop for
the GIL, which held other sandboxes' calls up by 160-310 ms. A small one is listed in a thread,
as starting a process costs about 20 ms.
"""

from __future__ import annotations

import datetime
import errno
import heapq
import itertools
import json
import os
import posixpath
import stat
import sys
from collections.abc import Iterator
from typing import Any

FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Names sorted at once (in C, holding the GIL, and with it a server's event loop): a few ms at most.
SORT_RUN = 4096
# Entries encoded at once: a few ms of the GIL, and the body goes out in chunks of about 150 KB.
BATCH = 1000
KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "directory", stat.S_IFLNK: "symlink"}


def as_text(path: str) -> str:
    """`path` as JSON (UTF-8) can carry it. A file name may hold any bytes, which `os` functions give
    as lone surrogates; bytes that are not UTF-8 become U+FFFD: a name that cannot be used to reach
    the file, but a listing or an event that does not fail on it."""
    if path.isascii():
        return path
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def file_info(path: str, st: os.stat_result) -> dict[str, Any]:
    """The API's `FileInfo` of what `st` describes at `path`."""
    path = as_text(path)
    return {
        "path": path,
        "name": posixpath.basename(path) or path,
        "type": KINDS.get(stat.S_IFMT(st.st_mode), "other"),
        "sizeBytes": st.st_size,
        "mode": stat.S_IMODE(st.st_mode),
        "modifiedAt": datetime.datetime.fromtimestamp(st.st_mtime, datetime.UTC).isoformat(),
    }


def in_order(names: list[str]) -> list[str]:
    """`sorted(names)`, sorted in runs and merged in Python: one sort of 200k names held the GIL for
    100-700 ms (here, loaded or not), the merge lets other threads run every few ms."""
    return list(heapq.merge(*(sorted(names[i : i + SORT_RUN]) for i in range(0, len(names), SORT_RUN))))


def open_folder(fd: int) -> int:
    """A readable descriptor (for listing) of the folder open as `O_PATH` at `fd`."""
    return os.open(".", FOLDER, dir_fd=fd)


def subfolder(parent: int, name: str) -> int | None:
    """`name` in `parent`, opened as a folder, or None if it is not one (anymore), links included."""
    try:
        return os.open(name, FOLDER, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise


def entries(listing: int, path: str, depth: int) -> Iterator[dict[str, Any]]:
    """The entries of the folder open (readable) at `listing`; with `depth` above 1, each subfolder's
    entries follow it, `depth - 1` levels down. Subfolders are opened beneath it without following
    links (`subfolder`), so a folder swapped for a link meanwhile is not entered."""
    for name in in_order(os.listdir(listing)):
        try:
            st = os.stat(name, dir_fd=listing, follow_symlinks=False)
        except FileNotFoundError:
            continue
        yield file_info(posixpath.join(path, name), st)
        if depth > 1 and stat.S_ISDIR(st.st_mode):
            inner = subfolder(listing, name)
            if inner is None:
                continue
            try:
                yield from entries(inner, posixpath.join(path, name), depth - 1)
            finally:
                os.close(inner)


def body(listing: int, path: str, depth: int) -> Iterator[bytes]:
    """The listFiles body of the folder open (readable) at `listing`, in chunks of `BATCH` entries,
    never joined (encoding 20 MB at once held the GIL for 200 ms) nor kept (200k entries alive made
    the garbage collector walk them all)."""
    yield b'{"data": ['
    listed = entries(listing, path, depth)
    separator = b""
    while batch := list(itertools.islice(listed, BATCH)):
        yield separator + json.dumps(batch, ensure_ascii=False)[1:-1].encode()
        separator = b", "
    yield b"]}"


def main(argv: list[str]) -> None:
    listing, path, depth = int(argv[1]), argv[2], int(argv[3])
    out = sys.stdout.buffer
    for chunk in body(listing, path, depth):
        out.write(chunk)
    out.flush()


if __name__ == "__main__":
    main(sys.argv)
