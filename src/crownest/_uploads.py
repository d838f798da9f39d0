"""Upload bodies: bytes in memory, or a file streamed in chunks, sent again on retry when possible.

`files.write(path, data)` takes `str` (sent as UTF-8), bytes, a
`pathlib.Path` (or any path-like), or a binary file object. A path or a
seekable file is streamed in `CHUNK`-sized reads and is replayable: a retry
reopens or rewinds it. A non-seekable stream (a pipe, a socket, a generator
of bytes) is sent once; if that attempt fails after sending began, the call
raises `BodyNotReplayableError` instead of retrying with a half-read stream.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import IO, TypeAlias

CHUNK = 256 * 1024

FileContent: TypeAlias = "str | bytes | os.PathLike[str] | IO[bytes] | Iterable[bytes]"
"""What a file upload takes: text (sent as UTF-8), bytes, a path, a binary file object, or an iterable of bytes."""


class Upload:
    """A streamed request body. `attempts` counts how many times its content was handed out."""

    __slots__ = ("_path", "_file", "_start", "_chunks", "size", "attempts")

    def __init__(
        self,
        *,
        path: str | None = None,
        file: IO[bytes] | None = None,
        chunks: Iterable[bytes] | None = None,
    ) -> None:
        self._path = path
        self._file = file
        self._chunks = chunks
        self._start = 0
        self.size: int | None = None
        self.attempts = 0
        if path is not None:
            self.size = os.stat(path).st_size
        elif file is not None and _seekable(file):
            self._start = file.tell()
            self.size = file.seek(0, io.SEEK_END) - self._start
            file.seek(self._start)

    @property
    def replayable(self) -> bool:
        return self._path is not None or (self._file is not None and _seekable(self._file))

    def __repr__(self) -> str:
        source = "path" if self._path is not None else "file" if self._file is not None else "stream"
        return f"Upload({source}, size={self.size})"

    def chunks(self) -> Iterator[bytes]:
        """The content for one attempt, read as it is sent."""
        self.attempts += 1
        if self._path is not None:
            with open(self._path, "rb") as f:
                yield from iter(lambda: f.read(CHUNK), b"")
        elif self._file is not None:
            if _seekable(self._file):
                self._file.seek(self._start)
            yield from iter(lambda: self._file.read(CHUNK), b"")  # type: ignore[union-attr]
        else:
            assert self._chunks is not None
            yield from self._chunks

    async def async_chunks(self) -> AsyncIterator[bytes]:
        """The content for one attempt, each read done in a worker thread so the event loop runs on."""
        import asyncio

        chunks = self.chunks()
        done = object()
        while (chunk := await asyncio.to_thread(next, chunks, done)) is not done:
            yield chunk  # type: ignore[misc]


def _seekable(file: IO[bytes]) -> bool:
    try:
        return file.seekable()
    except (AttributeError, ValueError):
        return False


def file_content(name: str, data: FileContent) -> bytes | Upload:
    """The body for an upload, or a TypeError naming the argument before any request."""
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, os.PathLike):
        path = os.fspath(data)
        if not isinstance(path, str) or not os.path.isfile(path):
            raise FileNotFoundError(f"{name}: no file at {path!r}")
        return Upload(path=path)
    if hasattr(data, "read"):
        if isinstance(data, io.TextIOBase):
            raise TypeError(f"{name} must be opened in binary mode ('rb'), got a text file")
        return Upload(file=data)  # type: ignore[arg-type]
    if isinstance(data, Iterable) and not isinstance(data, Mapping):
        return Upload(chunks=data)
    raise TypeError(f"{name} must be str, bytes, a path or a binary file, got {type(data).__name__}")
