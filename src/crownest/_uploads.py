"""Upload bodies: bytes in memory, or a file streamed in chunks, sent again on retry when possible.

`files.write(path, data)` takes `str` (sent as UTF-8), bytes, a
`pathlib.Path` (or any path-like), or a binary file object. A path or a
seekable file is streamed in `CHUNK`-sized reads and is replayable: a retry
reopens or rewinds it. A non-seekable stream (a pipe, a socket, a generator
of bytes) is sent once; if that attempt fails after sending began, the call
raises `BodyNotReplayableError` instead of retrying with a half-read stream.

A `progress` callback gets (bytes sent, total bytes or None) as each chunk
goes out; a retry sends the content again, so the count starts again at 0.

An `Upload` made from a function (`make=`) calls it for each attempt: a tar
stream of a local folder (`_archives`) is built afresh for a retry that way.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import IO, TypeAlias

CHUNK = 256 * 1024

Progress: TypeAlias = Callable[[int, "int | None"], object]
"""A progress callback: called with (bytes done, total bytes or None when unknown)."""

FileContent: TypeAlias = "str | bytes | os.PathLike[str] | IO[bytes] | Iterable[bytes]"
"""What a file upload takes: text (sent as UTF-8), bytes, a path, a binary file object, or an iterable of bytes."""


class Upload:
    """A streamed request body. `attempts` counts how many times its content was handed out."""

    __slots__ = ("_path", "_file", "_start", "_chunks", "_data", "_make", "_progress", "size", "attempts")

    def __init__(
        self,
        *,
        path: str | None = None,
        file: IO[bytes] | None = None,
        chunks: Iterable[bytes] | None = None,
        data: bytes | None = None,
        make: Callable[[], Iterable[bytes]] | None = None,
        size: int | None = None,
        progress: Progress | None = None,
    ) -> None:
        self._make = make
        self._path = path
        self._file = file
        self._chunks = chunks
        self._data = data
        self._progress = progress
        self._start = 0
        self.size: int | None = size
        self.attempts = 0
        if data is not None:
            self.size = len(data)
        elif path is not None:
            self.size = os.stat(path).st_size
        elif file is not None and _seekable(file):
            self._start = file.tell()
            self.size = file.seek(0, io.SEEK_END) - self._start
            file.seek(self._start)

    @property
    def replayable(self) -> bool:
        if self._data is not None or self._path is not None or self._make is not None:
            return True
        return self._file is not None and _seekable(self._file)

    def __repr__(self) -> str:
        source = "bytes" if self._data is not None else "path" if self._path is not None else "file"
        source = "archive" if self._make is not None else source if self._chunks is None else "stream"
        return f"Upload({source}, size={self.size})"

    def chunks(self) -> Iterator[bytes]:
        """The content for one attempt, read as it is sent."""
        self.attempts += 1
        sent = self._report(0)
        for chunk in self._read():
            yield chunk
            sent = self._report(sent + len(chunk))

    async def async_chunks(self) -> AsyncIterator[bytes]:
        """The content for one attempt, each read done in a worker thread so the event loop runs on
        (`progress` is called on the event loop)."""
        import asyncio

        self.attempts += 1
        sent = self._report(0)
        chunks = self._read()
        done = object()
        while (chunk := await asyncio.to_thread(next, chunks, done)) is not done:
            yield chunk  # type: ignore[misc]
            sent = self._report(sent + len(chunk))  # type: ignore[arg-type]

    def _report(self, sent: int) -> int:
        if self._progress is not None:
            self._progress(sent, self.size)
        return sent

    def _read(self) -> Iterator[bytes]:
        if self._make is not None:
            yield from self._make()
        elif self._data is not None:
            view = memoryview(self._data)
            yield from (bytes(view[i : i + CHUNK]) for i in range(0, len(view), CHUNK))
        elif self._path is not None:
            with open(self._path, "rb") as f:
                yield from iter(lambda: f.read(CHUNK), b"")
        elif self._file is not None:
            if _seekable(self._file):
                self._file.seek(self._start)
            yield from iter(lambda: self._file.read(CHUNK), b"")  # type: ignore[union-attr]
        else:
            assert self._chunks is not None
            yield from self._chunks


def _seekable(file: IO[bytes]) -> bool:
    try:
        return file.seekable()
    except (AttributeError, ValueError):
        return False


def file_content(name: str, data: FileContent, progress: Progress | None = None) -> bytes | Upload:
    """The body for an upload, or a TypeError naming the argument before any request.

    Text and bytes are sent as they are, unless `progress` asks to hear about each chunk.
    """
    if isinstance(data, str | bytes | bytearray | memoryview):
        content = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return content if progress is None else Upload(data=content, progress=progress)
    if isinstance(data, os.PathLike):
        path = os.fspath(data)
        if not isinstance(path, str) or not os.path.isfile(path):
            raise FileNotFoundError(f"{name}: no file at {path!r}")
        return Upload(path=path, progress=progress)
    if hasattr(data, "read"):
        if isinstance(data, io.TextIOBase):
            raise TypeError(f"{name} must be opened in binary mode ('rb'), got a text file")
        return Upload(file=data, progress=progress)  # type: ignore[arg-type]
    if isinstance(data, Iterable) and not isinstance(data, Mapping):
        return Upload(chunks=data, progress=progress)
    raise TypeError(f"{name} must be str, bytes, a path or a binary file, got {type(data).__name__}")
