"""Streamed answers: byte streams and Server-Sent Events that survive a broken connection.

The client's stream loop (`SyncAPIClient.stream`, `AsyncAPIClient.stream`)
sends one request and hands out the body's chunks as they arrive; when the
connection breaks it sends the request again with headers that ask for the
rest only. What "the rest" means is a `Resume`:

- `RangeResume`: bytes after those received (`Range`, with `If-Range` so that
  the rest comes from the same content).
- `EventResume`: events after the last complete one (`Last-Event-ID`); a
  partly received event is dropped and comes again whole.

`Stream` and `AsyncStream` wrap the chunks (or events) for the caller: an
iterator that is also a context manager, so a loop left early closes the
connection at once instead of when the garbage collector runs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import Generic, Protocol, TypeVar

import httpx

from ._bodies import MAX_BODY_BYTES
from ._exceptions import CrowNestConnectionError, ResponseTooLargeError

T = TypeVar("T")


class Resume(Protocol):
    """How to ask for the rest of a streamed answer after a broken connection."""

    def headers(self, request: httpx.Request) -> httpx.Headers:
        """The headers of the next attempt."""
        ...

    def begin(self, response: httpx.Response) -> None:
        """Take a successful answer before its body is read (raise if it cannot go on)."""
        ...

    def position(self) -> object:
        """Where the caller is; a failed attempt that moved it does not count against the retries."""
        ...


class RangeResume:
    """Bytes after those received so far: `Range` from `received`, of the same content only."""

    def __init__(self, *, restart: bool) -> None:
        # restart: a server that ignores Range may send everything again, which the caller
        # takes from the start (a file) or not at all (bytes already handed out).
        self.restart = restart
        self.received = 0
        self.total: int | None = None
        self.skip = 0  # bytes at the start of this answer that the caller already has
        self._etag: str | None = None

    def headers(self, request: httpx.Request) -> httpx.Headers:
        headers = httpx.Headers(request.headers)
        headers["Accept-Encoding"] = "identity"  # byte offsets must be offsets in the content
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
            if self._etag:
                headers["If-Range"] = self._etag
        return headers

    def begin(self, response: httpx.Response) -> None:
        content_range = response.headers.get("content-range", "")
        etag = response.headers.get("etag")
        self.skip = 0
        resumed = response.status_code == 206 and content_range.startswith(f"bytes {self.received}-")
        if self.received and not resumed:
            if self.restart:
                self.received = 0
            elif etag and etag == self._etag and response.status_code == 200:
                self.skip = self.received  # the whole content again: drop what was handed out
            else:
                raise CrowNestConnectionError(
                    f"{response.request.method} {response.request.url.path}: the connection broke after "
                    f"{self.received} bytes and the server could not send the rest of the same content"
                )
        self._etag = etag
        self.total = _total_size(content_range, response.headers.get("content-length", ""), self.received)

    def position(self) -> object:
        return self.received

    def take(self, chunk: bytes) -> bytes:
        """The part of `chunk` that is new to the caller (counted as received)."""
        if self.skip:
            dropped = min(self.skip, len(chunk))
            self.skip -= dropped
            chunk = chunk[dropped:]
        self.received += len(chunk)
        return chunk


def _total_size(content_range: str, content_length: str, offset: int) -> int | None:
    """The whole content's size: from Content-Range (`bytes a-b/total`), else where this answer
    starts plus its Content-Length; None if the server does not say."""
    total = content_range.rpartition("/")[2]
    if total.isascii() and total.isdigit():
        return int(total)
    return offset + int(content_length) if content_length.isascii() and content_length.isdigit() else None


class EventResume:
    """Server-Sent Events after the last complete one (`Last-Event-ID`).

    `feed` decodes chunks into events as the WHATWG EventSource algorithm does:
    lines end with CR, LF or CRLF; a blank line dispatches the event; lines
    starting with `:` are comments (keep-alives); `data` lines are joined with
    newlines. An event is a dict of the fields it had (`event`, `id`, `data`,
    `retry`), ready for the event schema's `from_dict`.
    """

    def __init__(self, last_event_id: str | None) -> None:
        self.last_event_id = last_event_id
        self.response: httpx.Response | None = None  # the answer now being read
        self._buffer = bytearray()  # the incomplete line, which has no line ending
        self._after_cr = False
        self._fields: dict[str, str] = {}
        self._data: list[str] = []  # the event's data lines, joined when it is dispatched
        self._size = 0  # bytes of the event so far

    def headers(self, request: httpx.Request) -> httpx.Headers:
        headers = httpx.Headers(request.headers)
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def begin(self, response: httpx.Response) -> None:
        self.response = response
        self._buffer = bytearray()  # a partly received event comes again whole after Last-Event-ID
        self._after_cr = False
        self._fields = {}
        self._data = []
        self._size = 0

    def position(self) -> object:
        return self.last_event_id  # a partly received event is no progress

    def feed(self, chunk: bytes) -> list[dict[str, str | int]]:
        """The events that `chunk` completes; ResponseTooLargeError for an event over `MAX_BODY_BYTES`.

        Linear in the bytes fed: only `chunk` is searched for line endings (the kept
        incomplete line has none), and a long line is kept in one growing buffer.
        """
        buffer = self._buffer
        scan = len(buffer)
        buffer += chunk
        start = 1 if self._after_cr and buffer.startswith(b"\n") else 0  # the LF of a CRLF split by a chunk
        scan = max(scan, start)
        events = []
        while True:
            end, ending = _line_end(buffer, scan)
            if not ending:
                break
            self._size += end - start
            self._check_size()
            event = self._line(buffer[start:end].decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
            start = scan = end + ending
        self._after_cr = start == len(buffer) and buffer.endswith(b"\r")
        del buffer[:start]
        self._check_size(len(buffer))
        return events

    def _check_size(self, pending: int = 0) -> None:
        if self._size + pending > MAX_BODY_BYTES:
            raise ResponseTooLargeError(
                f"An event of the stream is larger than the {MAX_BODY_BYTES >> 20} MiB the SDK reads into memory",
                response=self.response,
            )

    def _line(self, line: str) -> dict[str, str | int] | None:
        if not line:
            fields, self._fields = self._fields, {}
            data, self._data = self._data, []
            self._size = 0
            if not data:
                return None
            event: dict[str, str | int] = {"event": fields.get("event") or "message", "data": "\n".join(data)}
            if "id" in fields:
                self.last_event_id = event["id"] = fields["id"]
            retry = fields.get("retry", "")
            if retry.isascii() and retry.isdigit():
                event["retry"] = int(retry)
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name in ("event", "retry") or (name == "id" and "\0" not in value):
            self._fields[name] = value
        return None


def _line_end(buffer: bytearray, start: int) -> tuple[int, int]:
    """(where the first line ending at or after `start` is, its length), or (0, 0) if there is none yet."""
    lf = buffer.find(b"\n", start)
    cr = buffer.find(b"\r", start, lf if lf != -1 else len(buffer))
    if cr == -1:
        return (lf, 1) if lf != -1 else (0, 0)
    return cr, 2 if buffer[cr + 1 : cr + 2] == b"\n" else 1


class Stream(Generic[T]):
    """Items of a streamed answer as they arrive; closing it (or leaving `with`) closes the connection.

    The request is sent when iteration begins.
    """

    def __init__(self, items: Generator[T, None, None]) -> None:
        self._items = items

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        return next(self._items)

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._items.close()

    def __enter__(self) -> Stream[T]:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncStream(Generic[T]):
    """Items of a streamed answer as they arrive (`async for`); `aclose()` or leaving `async with`
    closes the connection.

    The request is sent when iteration begins.
    """

    def __init__(self, items: AsyncGenerator[T, None]) -> None:
        self._items = items

    def __aiter__(self) -> AsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        return await self._items.__anext__()

    async def aclose(self) -> None:
        """Stop reading and close the connection."""
        await self._items.aclose()

    async def __aenter__(self) -> AsyncStream[T]:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
