"""One HTTP/1.1 connection: an asyncio protocol that writes requests and reads responses.

The codec is written out here rather than taken from h11: in a burst of small JSON calls h11's
per-event validation and state machine were a third of the client's CPU. It does what a client
needs and rejects the rest: a request whose headers or target hold a line break is refused
before anything is sent, and one whose body is longer or shorter than its declared length fails
(`LocalProtocolError`); responses are framed by
`Transfer-Encoding: chunked`, `Content-Length`, or the end of the connection, and anything else
(a malformed status line or header, folded headers, a head over 64 KiB, conflicting lengths) is
a `RemoteProtocolError`. Every failure leaves as the httpx exception httpx's own transport
raises (`ConnectError`, `ConnectTimeout`, `ReadError`, `ReadTimeout`, `WriteError`,
`WriteTimeout`, `RemoteProtocolError`, `LocalProtocolError`), so the retry rules know it.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import AsyncIterator, Iterable

import httpx

SocketOption = tuple[int, int, int]
# The reader stops reading the socket past this many unread bytes (a download's consumer is slow).
BUFFER_LIMIT = 1024 * 1024
MAX_HEAD = 64 * 1024
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([1-9][0-9][0-9])(?: (.*))?")
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
NO_BODY_STATUSES = frozenset({204, 304})


class Head:
    """A response's status line and headers, and how its body is framed."""

    __slots__ = ("chunked", "headers", "keep_alive", "length", "reason", "status")

    def __init__(self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], keep_alive: bool) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.keep_alive = keep_alive
        self.chunked = False
        self.length: int | None = None  # None with chunked False: the body ends with the connection


def _framing(head: Head, method: bytes) -> None:
    """Set `head`'s body framing (RFC 9112 section 6.3) from its headers."""
    if method == b"HEAD" or head.status in NO_BODY_STATUSES:
        head.length = 0
        return
    lengths: set[bytes] = set()
    for name, value in head.headers:
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            head.chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
            if not head.chunked:
                head.keep_alive = False  # another coding last: the body runs to the end of the connection
        elif lowered == b"content-length":
            lengths.update(part.strip() for part in value.split(b","))
    if head.chunked:
        head.keep_alive = head.keep_alive and not lengths  # both: a smuggling attempt or a broken proxy
        return
    if lengths:
        (length,) = lengths if len(lengths) == 1 else (b"",)
        if not length.isdigit():
            raise httpx.RemoteProtocolError(f"invalid Content-Length in the response: {sorted(lengths)}")
        head.length = int(length)
    else:
        head.keep_alive = False


def _parse_head(data: bytes, method: bytes) -> Head:
    lines = data.split(b"\r\n")
    match = STATUS_LINE.fullmatch(lines[0])
    if match is None:
        raise httpx.RemoteProtocolError(f"malformed status line: {lines[0][:100]!r}")
    headers = []
    keep_alive = match[1] == b"1"
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not TOKEN.fullmatch(name):
            raise httpx.RemoteProtocolError(f"malformed header line: {line[:100]!r}")
        value = value.strip(b" \t")
        if name.lower() == b"connection" and b"close" in value.lower():
            keep_alive = False
        headers.append((name, value))
    head = Head(int(match[2]), match[3] or b"", headers, keep_alive)
    _framing(head, method)
    return head


def _request_head(request: httpx.Request) -> tuple[bytes, bool, int | None]:
    """The request's head as bytes, whether its body is chunked, and its declared length."""
    method = request.method.encode("ascii")
    target = request.url.raw_path
    parts = [method, b" ", target, b" HTTP/1.1\r\n"]
    chunked, length = False, None
    headers = request.headers.raw
    for name, value in headers:
        if not TOKEN.fullmatch(name):
            raise httpx.LocalProtocolError(f"invalid header name {name!r}")
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif lowered == b"content-length":
            length = int(value) if value.isdigit() else -1
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    data = b"".join(parts)
    # Every line ends in CRLF; one more CR, LF or NUL anywhere would let a value start a new line.
    lines = len(headers) + 2
    if data.count(b"\n") != lines or data.count(b"\r") != lines or b"\0" in data or b" " in target:
        raise httpx.LocalProtocolError("a header value or the URL holds a line break or NUL")
    if not TOKEN.fullmatch(method) or (length is not None and length < 0):
        raise httpx.LocalProtocolError("invalid method or Content-Length")
    return data, chunked, length


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class Connection(asyncio.Protocol):
    """An open HTTP/1.1 connection to one origin, used by one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._lost = False
        self._error: Exception | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._head: Head | None = None
        self.idle_since = 0.0

    @classmethod
    async def open(
        cls,
        url: httpx.URL,
        *,
        timeout: float | None,
        ssl_context: ssl.SSLContext | None,
        server_hostname: str | None,
        socket_options: Iterable[SocketOption],
    ) -> Connection:
        """Connect to `url`'s origin (TLS for https), within `timeout` seconds."""
        loop = asyncio.get_running_loop()
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    cls, url.host, port, ssl=ssl_context, server_hostname=server_hostname if ssl_context else None
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "ConnectTimeout") from exc
        except OSError as exc:  # refused, unreachable, unknown host, TLS failures (ssl.SSLError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        assert connection._transport is not None
        sock = connection._transport.get_extra_info("socket")
        for level, option, value in socket_options:
            sock.setsockopt(level, option, value)
        return connection

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > BUFFER_LIMIT and self._transport is not None and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return False  # close the transport: a client has nothing left to say on a connection the server ended

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._eof = True
        self._error = exc
        self._wake()
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake()

    # The exchange

    def is_reusable(self, now: float, expiry: float | None) -> bool:
        """Idle, not past `expiry` seconds idle, and not closed (or written to) by the server meanwhile."""
        if expiry is not None and now - self.idle_since > expiry:
            return False
        return not (self._eof or self._buffer or self._transport is None or self._transport.is_closing())

    async def send(self, request: httpx.Request, timeouts: dict[str, float | None]) -> Head:
        """Send `request` (streaming its body) and return the response's head."""
        data, chunked, length = _request_head(request)
        write_timeout = timeouts.get("write")
        await self._write(data, write_timeout)
        sent = 0
        try:
            async for chunk in request.stream:  # type: ignore[union-attr]
                if not chunk:
                    continue
                sent += len(chunk)
                if length is not None and sent > length:
                    raise httpx.LocalProtocolError("the body is longer than its Content-Length")
                await self._write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk, write_timeout)
            if chunked:
                await self._write(b"0\r\n\r\n", write_timeout)
            elif sent != (length or 0):
                raise httpx.LocalProtocolError("the body is shorter than its Content-Length (or has none)")
        except httpx.WriteError:
            # A server may answer before it has read the whole body (a 413 for a file too large) and
            # close the connection: read that answer rather than report the broken write.
            pass
        method = request.method.encode("ascii")
        read_timeout = timeouts.get("read")
        while True:
            head = await self._read_head(method, read_timeout)
            if not 100 <= head.status < 200:
                if sent != (length or 0) and not chunked:
                    head.keep_alive = False  # the request was cut short
                self._head = head
                return head
            # An informational response (100 Continue): the real one follows.

    async def receive_body(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        """The response body in chunks as they arrive."""
        head = self._head
        assert head is not None
        if head.chunked:
            while size := await self._chunk_size(read_timeout):
                async for piece in self._exactly(size, read_timeout):
                    yield piece
                await self._line(read_timeout)  # the CRLF after the chunk's data
            while await self._line(read_timeout):  # trailers, up to an empty line
                pass
        elif head.length is not None:
            async for piece in self._exactly(head.length, read_timeout):
                yield piece
        else:
            while self._buffer or await self._fill(read_timeout):
                if self._buffer:
                    piece = bytes(self._buffer)
                    self._buffer.clear()
                    yield piece

    async def receive_whole_body(self, read_timeout: float | None) -> bytes:
        """The body of a response with a `Content-Length`, all at once."""
        assert self._head is not None and self._head.length is not None
        size = self._head.length
        while len(self._buffer) < size:
            if not await self._fill(read_timeout):
                if self._error is not None:
                    raise httpx.ReadError(str(self._error) or type(self._error).__name__)
                raise httpx.RemoteProtocolError("Server disconnected before the end of the response body.")
        body = bytes(self._buffer[:size])
        del self._buffer[:size]
        return body

    def finish(self) -> bool:
        """After the whole body was read: True if the connection may carry another request."""
        reusable = self._head is not None and self._head.keep_alive and not self._buffer and not self._eof
        self._head = None
        self.idle_since = time.monotonic()
        return reusable

    def close(self) -> None:
        """Close the socket (asyncio finishes it on the loop's next turn)."""
        if self._transport is not None:
            self._transport.close()

    async def wait_closed(self) -> None:
        await self._closed

    # Bytes in and out

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def _wait(self, timeout: float | None) -> None:
        """Until the protocol wakes us (bytes, the end, room to write) or TimeoutError after `timeout`.

        A timer on our own future, not `asyncio.timeout()`, which cancels and uncancels the task
        and costs several times as much, twice per call."""
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = None if timeout is None else loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    async def _write(self, data: bytes, timeout: float | None) -> None:
        if self._lost or self._transport is None:
            raise httpx.WriteError("the server closed the connection")
        self._transport.write(data)
        try:
            while self._writing_paused and not self._lost:
                await self._wait(timeout)
        except TimeoutError as exc:
            raise httpx.WriteTimeout("WriteTimeout") from exc

    async def _fill(self, timeout: float | None) -> bool:
        """Wait for more bytes; False at the end of the connection."""
        if self._eof:
            return False
        if self._reading_paused and self._transport is not None:
            self._reading_paused = False
            self._transport.resume_reading()
        try:
            await self._wait(timeout)
        except TimeoutError as exc:
            raise httpx.ReadTimeout("ReadTimeout") from exc
        return True

    async def _read_head(self, method: bytes, timeout: float | None) -> Head:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise httpx.RemoteProtocolError("the response head is over 64 KiB")
            if not await self._fill(timeout):
                if self._error is not None:  # reset, not closed
                    raise httpx.ReadError(str(self._error) or type(self._error).__name__)
                if self._buffer:
                    raise httpx.RemoteProtocolError("Server disconnected in the middle of a response head.")
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        data = bytes(self._buffer[:end])
        del self._buffer[: end + 4]
        return _parse_head(data, method)

    async def _exactly(self, size: int, timeout: float | None) -> AsyncIterator[bytes]:
        while size:
            if not self._buffer and not await self._fill(timeout):
                if self._error is not None:
                    raise httpx.ReadError(str(self._error) or type(self._error).__name__)
                raise httpx.RemoteProtocolError("Server disconnected before the end of the response body.")
            piece = bytes(self._buffer[:size])
            del self._buffer[:size]
            size -= len(piece)
            if piece:
                yield piece

    async def _line(self, timeout: float | None) -> bytes:
        while (end := self._buffer.find(b"\r\n")) < 0:
            if len(self._buffer) > MAX_HEAD:
                raise httpx.RemoteProtocolError("a chunked body's line is over 64 KiB")
            if not await self._fill(timeout):
                raise httpx.RemoteProtocolError("Server disconnected in the middle of a chunked body.")
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 2]
        return line

    async def _chunk_size(self, timeout: float | None) -> int:
        line = (await self._line(timeout)).split(b";", 1)[0].strip()
        if not CHUNK_SIZE.fullmatch(line):
            raise httpx.RemoteProtocolError(f"malformed chunk size: {line[:20]!r}")
        return int(line, 16)
