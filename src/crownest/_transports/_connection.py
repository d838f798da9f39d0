"""One HTTP/1.1 connection: h11 for the protocol, asyncio streams for the bytes.

Every failure leaves as the httpx exception the retry rules know (`ConnectError`,
`ConnectTimeout`, `ReadError`, `ReadTimeout`, `WriteError`, `WriteTimeout`,
`RemoteProtocolError`), the same ones httpx's own transport raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Iterable

import h11
import httpx

SocketOption = tuple[int, int, int]
# Bytes asked of the socket per read; a response of a few KiB arrives in one.
READ_SIZE = 64 * 1024
# How much the reader buffers before it stops reading the socket (streamed downloads).
BUFFER_LIMIT = 1024 * 1024


# What asyncio, the socket and h11 raise (TimeoutError is an OSError), for `_mapped`.
FAILURES = (OSError, h11.ProtocolError)


def _mapped(
    exc: OSError | h11.ProtocolError, timeout: type[httpx.TimeoutException], error: type[httpx.TransportError]
) -> httpx.TransportError:
    """The httpx exception for one of `FAILURES`. Raised with `raise ... from` at each step, not
    through a context manager, which costs as much as a read."""
    if isinstance(exc, TimeoutError):
        return timeout(str(exc) or type(exc).__name__)
    if isinstance(exc, h11.RemoteProtocolError):  # the server's bytes are not HTTP/1.1
        return httpx.RemoteProtocolError(str(exc))
    if isinstance(exc, h11.LocalProtocolError):  # the request is not (a header with a line break)
        return httpx.LocalProtocolError(str(exc))
    return error(str(exc) or type(exc).__name__)  # refused, reset, unreachable, TLS failures (ssl.SSLError)


class Connection:
    """An open HTTP/1.1 connection to one origin, used by one request at a time."""

    __slots__ = ("_h11", "_reader", "_writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._h11 = h11.Connection(h11.CLIENT)
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
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    url.host,
                    port,
                    ssl=ssl_context,
                    server_hostname=server_hostname if ssl_context else None,
                    limit=BUFFER_LIMIT,
                )
        except FAILURES as exc:
            raise _mapped(exc, httpx.ConnectTimeout, httpx.ConnectError) from exc
        sock = writer.get_extra_info("socket")
        for level, option, value in socket_options:
            sock.setsockopt(level, option, value)
        return cls(reader, writer)

    def is_reusable(self, now: float, expiry: float | None) -> bool:
        """Idle, not past `expiry` seconds idle, and not closed (or written to) by the server meanwhile."""
        if expiry is not None and now - self.idle_since > expiry:
            return False
        return not (self._writer.is_closing() or self._reader.at_eof())

    async def send(self, request: httpx.Request, timeouts: dict[str, float | None]) -> h11.Response:
        """Send `request` (streaming its body) and return the response's head."""
        write_timeout = timeouts.get("write")
        try:
            head = h11.Request(method=request.method, target=request.url.raw_path, headers=request.headers.raw)
            await self._write(self._h11.send_with_data_passthrough(head), write_timeout)
        except FAILURES as exc:
            raise _mapped(exc, httpx.WriteTimeout, httpx.WriteError) from exc
        try:
            async for chunk in request.stream:  # type: ignore[union-attr]
                if chunk:
                    await self._write(self._h11.send_with_data_passthrough(h11.Data(data=chunk)), write_timeout)
            await self._write(self._h11.send_with_data_passthrough(h11.EndOfMessage()), write_timeout)
        except (TimeoutError, h11.ProtocolError) as exc:
            raise _mapped(exc, httpx.WriteTimeout, httpx.WriteError) from exc
        except OSError:
            # A server may answer before it has read the whole body (a 413 for a file too large) and
            # close the connection: read that answer rather than report the broken write.
            pass
        while True:
            event = await self._next_event(timeouts.get("read"))
            if isinstance(event, h11.Response):
                return event
            # An informational response (100 Continue): the real one follows.

    async def receive_body(self, read_timeout: float | None) -> AsyncIterator[bytes]:
        """The response body in chunks as they arrive; afterwards the connection may be reused."""
        while True:
            event = await self._next_event(read_timeout)
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise httpx.RemoteProtocolError(f"unexpected {type(event).__name__} in a response body")

    def start_next_cycle(self) -> bool:
        """Make ready for the next request after a complete exchange; False if the connection must close."""
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            self.idle_since = time.monotonic()
            return True
        return False

    def close(self) -> None:
        """Close the socket (asyncio finishes it on the loop's next turn)."""
        self._writer.close()

    async def wait_closed(self) -> None:
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def _write(self, data: list[bytes] | None, timeout: float | None) -> None:
        if not data:
            return
        self._writer.writelines(data)
        if self._writer.transport.get_write_buffer_size():  # the socket took less than all: wait for room
            async with asyncio.timeout(timeout):
                await self._writer.drain()

    async def _next_event(self, read_timeout: float | None) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        try:
            while True:
                event = self._h11.next_event()
                if event is not h11.NEED_DATA:
                    return event
                async with asyncio.timeout(read_timeout):
                    data = await self._reader.read(READ_SIZE)
                if not data and self._h11.their_state is h11.SEND_RESPONSE:
                    raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
                self._h11.receive_data(data)
        except FAILURES as exc:
            raise _mapped(exc, httpx.ReadTimeout, httpx.ReadError) from exc
