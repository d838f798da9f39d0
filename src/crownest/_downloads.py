"""Downloads into a local file, in constant memory, resumed with `Range` after a broken transfer.

The content goes to `<to>.part` and is renamed to `to` once complete, so a
failed download leaves no file. Attempts ask for plain bytes
(`Accept-Encoding: identity`) so that byte offsets are file offsets; after a
break the next attempt asks for the rest (`Range`), of the same content only
(`If-Range` with the ETag). A server that answers 200 instead of a matching
206 sends it all again, and the file starts over.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import httpx

Progress = Callable[[int, int | None], object]


class Download:
    """The state of one download; the sync and async clients' retry loops drive it."""

    def __init__(self, to: str | os.PathLike[str], progress: Progress | None) -> None:
        self._to = to
        self._part = f"{os.fspath(to)}.part"
        self._file = open(self._part, "wb")  # noqa: SIM115 (closed by finish() or abandon())
        self._progress = progress
        self._etag: str | None = None
        self._total: int | None = None
        self.written = 0

    def headers(self, request: httpx.Request) -> httpx.Headers:
        """The headers of the next attempt."""
        headers = httpx.Headers(request.headers)
        headers["Accept-Encoding"] = "identity"
        if self.written:
            headers["Range"] = f"bytes={self.written}-"
            if self._etag:
                headers["If-Range"] = self._etag
        return headers

    def begin(self, response: httpx.Response) -> None:
        """Take a successful answer: go on where it starts (a matching 206), else start over."""
        content_range = response.headers.get("content-range", "")
        resumed = self.written and response.status_code == 206 and content_range.startswith(f"bytes {self.written}-")
        if not resumed:
            self.written = 0
        self._file.seek(self.written)
        self._file.truncate()
        self._etag = response.headers.get("etag")
        self._total = _total_size(content_range, response.headers.get("content-length", ""), self.written)

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.written += len(chunk)
        if self._progress is not None:
            self._progress(self.written, self._total)

    def finish(self) -> int:
        """Put the complete file in place; the number of bytes written."""
        self._file.close()
        os.replace(self._part, self._to)
        return self.written

    def abandon(self) -> None:
        """Remove what was written (the call failed)."""
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._part)


def _total_size(content_range: str, content_length: str, offset: int) -> int | None:
    """The whole content's size: from Content-Range (`bytes a-b/total`), else where this answer
    starts plus its Content-Length; None if the server does not say."""
    total = content_range.rpartition("/")[2]
    if total.isascii() and total.isdigit():
        return int(total)
    return offset + int(content_length) if content_length.isascii() and content_length.isdigit() else None
