"""A file's bytes sent from a descriptor that is already open, with `Range` and `If-Range`.

Sandbox files are opened by the walk in `_beneath` and must be read from that
descriptor, not from a path opened again later; artifacts use the same answer.
One range (`bytes=a-b`, `bytes=a-`, `bytes=-n`) gives a 206; several ranges, a
malformed header or an `If-Range` that does not match the current `ETag` or
`Last-Modified` give the whole content (RFC 9110 lets a server ignore them); a
range that starts past the end is 416 `range_not_satisfiable`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from email.utils import formatdate

from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ._errors import ApiProblem

CHUNK = 256 * 1024


class DescriptorResponse(StreamingResponse):
    """A streamed answer made from the open descriptor `self.fd`, which it closes once the answer is
    done: sent, failed, or given up by the client."""

    fd: int

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            os.close(self.fd)


class ContentResponse(DescriptorResponse):
    """The content of the open file `fd` (closed once the answer is done), whole or one range of it."""

    def __init__(self, fd: int, request: Request, *, etag: str | None = None) -> None:
        self.fd = fd
        try:
            self._prepare(request, os.fstat(fd), etag)
        except BaseException:
            os.close(fd)
            raise

    def _prepare(self, request: Request, st: os.stat_result, etag: str | None) -> None:
        etag = etag or f'"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}"'
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Last-Modified": formatdate(st.st_mtime, usegmt=True),
        }
        start, end = 0, st.st_size
        wanted = byte_range(request.headers.get("range"), st.st_size)
        if_range = request.headers.get("if-range")
        status = 200
        if wanted is not None and if_range in (None, etag, headers["Last-Modified"]):
            start, end = wanted
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{st.st_size}"
        headers["Content-Length"] = str(end - start)
        super().__init__(_chunks(self.fd, start, end), status, headers, media_type="application/octet-stream")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range `header` asks for as [start, end), None to send everything, or 416."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    first, dash, last = spec.strip().partition("-")
    numbers = [part for part in (first, last) if part]
    if unit.strip().lower() != "bytes" or not dash or not numbers or not all(map(_digits, numbers)):
        return None
    if not first:  # the last `last` bytes
        if int(last) == 0 or size == 0:
            raise unsatisfiable(size)
        return max(size - int(last), 0), size
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise unsatisfiable(size)
    return start, min(int(last) + 1, size) if last else size


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def unsatisfiable(size: int) -> ApiProblem:
    return ApiProblem(
        416,
        "range_not_satisfiable",
        f"The range starts past the end of the content ({size} bytes).",
        {"sizeBytes": size},
        headers={"Content-Range": f"bytes */{size}"},
    )


async def _chunks(fd: int, start: int, end: int) -> AsyncIterator[bytes]:
    """[start, end) of `fd` in chunks, read in a thread; it stops early if the file shrank."""
    while start < end:
        chunk = await asyncio.to_thread(os.pread, fd, min(CHUNK, end - start), start)
        if not chunk:
            return
        start += len(chunk)
        yield chunk
