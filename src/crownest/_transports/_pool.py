"""`AsyncTransport`: the async client's default `httpx.AsyncBaseTransport`, a small connection pool.

Why not httpcore's pool: it redoes its bookkeeping over every queued request times every
connection on each change, so a burst of 500 concurrent calls spends seconds of CPU there
(benchmarks/RESULTS.md). Here a request waits on one semaphore for a permit, takes the most
recently used idle connection of its origin or opens one, and gives both back when its
response is closed (a small body: as soon as it is read): constant work per request.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable

import httpx

from ._connection import Connection, SocketOption

Origin = tuple[str, str, int | None]
# A body up to this size with a declared length is read before the response is returned, and its
# connection goes back to the pool at once: most API answers are a few hundred bytes, and streaming
# them through three more async generators cost more than reading them.
WHOLE_BODY = 64 * 1024


class AsyncTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over asyncio, at most `limits.max_connections` requests at a time, keeping up to
    `limits.max_keepalive_connections` idle connections for `limits.keepalive_expiry` seconds.

    Proxies from the environment are not its concern: httpx mounts its own transport for them.
    """

    def __init__(self, *, limits: httpx.Limits, socket_options: Iterable[SocketOption] = ()) -> None:
        self._permits = asyncio.Semaphore(limits.max_connections or 1_000_000)
        self._max_idle = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._socket_options = tuple(socket_options)
        self._ssl_context: ssl.SSLContext | None = None
        self._idle: dict[Origin, deque[Connection]] = {}
        self._active: set[Connection] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        origin = (url.scheme, url.host, url.port)
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"Request URL has an unsupported protocol '{url.scheme}://'.")
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        await self._acquire(timeouts.get("pool"))
        try:
            connection = self._idle_connection(origin) or await self._open(request)
        except BaseException:
            self._permits.release()
            raise
        self._active.add(connection)
        try:
            head = await connection.send(request, timeouts)
            if head.length is not None and head.length <= WHOLE_BODY and not head.chunked:
                body = await connection.receive_whole_body(timeouts.get("read"))
                self._release(connection, origin if connection.finish() else None)
                return httpx.Response(
                    head.status,
                    headers=head.headers,
                    stream=httpx.ByteStream(body),
                    extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
                )
        except BaseException:  # cancelled or failed mid-exchange: the connection's state is unknown
            if connection in self._active:
                self._release(connection, None)
            raise
        return httpx.Response(
            head.status,
            headers=head.headers,
            stream=ResponseStream(self, connection, origin, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
        )

    @property
    def connections(self) -> list[Connection]:
        """Every open connection, in use or idle."""
        return [*self._active, *(c for idle in self._idle.values() for c in idle)]

    async def aclose(self) -> None:
        """Close every connection, idle or in use, and wait until their sockets are closed."""
        self._closed = True
        connections = self.connections
        self._active.clear()
        self._idle.clear()
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.wait_closed()

    async def _acquire(self, timeout: float | None) -> None:
        if self._closed:
            raise httpx.ConnectError("the client was closed")
        if not self._permits.locked():
            await self._permits.acquire()  # free: returns without waiting
            return
        try:
            async with asyncio.timeout(timeout):
                await self._permits.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("no connection became free in time") from exc

    def _idle_connection(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed
            if connection.is_reusable(now, self._expiry):
                return connection
            connection.close()
            # Anything older has idled longer: let it go too, rather than on later requests.
            while idle and not idle[0].is_reusable(now, self._expiry):
                idle.popleft().close()
        return None

    async def _open(self, request: httpx.Request) -> Connection:
        url = request.url
        if url.scheme == "https" and self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()  # reads the CA bundle: only when first needed
        return await Connection.open(
            url,
            timeout=request.extensions.get("timeout", {}).get("connect"),
            ssl_context=self._ssl_context if url.scheme == "https" else None,
            server_hostname=request.extensions.get("sni_hostname") or url.host,
            socket_options=self._socket_options,
        )

    def _release(self, connection: Connection, origin: Origin | None) -> None:
        """Give back `connection` (kept idle for `origin`, or closed if None) and its permit."""
        self._active.discard(connection)
        self._permits.release()
        if origin is None or self._closed:
            connection.close()
            return
        idle = self._idle.setdefault(origin, deque())
        idle.append(connection)
        if self._max_idle is not None and len(idle) > self._max_idle:
            idle.popleft().close()


class ResponseStream(httpx.AsyncByteStream):
    """A response body read from its connection; closing it hands the connection back to the pool."""

    def __init__(
        self, transport: AsyncTransport, connection: Connection, origin: Origin, read_timeout: float | None
    ) -> None:
        self._transport = transport
        self._connection = connection
        self._origin = origin
        self._read_timeout = read_timeout
        self._complete = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._connection.receive_body(self._read_timeout):
            yield chunk
        self._complete = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        reusable = self._connection.finish() and self._complete
        self._transport._release(self._connection, self._origin if reusable else None)
