"""`SyncTransport`: httpx's transport over httpcore's pool, whose sockets keep the attempt's deadline.

The sync client bounds each attempt's whole exchange (see `_deadlines`). Through this transport
it does so without a thread: `_deadlines.attempt_deadline` records when the attempt must end, and every
connect, TLS handshake, read and write waits at most until then (less, if httpx's own timeout for
that step is shorter), so a server that trickles bytes cannot stretch the attempt. Imported when
a sync client builds its transport, like httpx's own (`import httpx` does not load httpcore).
"""

from __future__ import annotations

import ssl
import time
import typing
from collections.abc import Callable, Iterable

import httpcore
import httpx

from ._deadlines import ATTEMPT_DEADLINE

T = typing.TypeVar("T")
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


def _bounded(step: Callable[[float | None], T], timeout: float | None, timed_out: type[Exception]) -> T:
    """`step(timeout)`, its timeout cut to the time left before the attempt's deadline, if any."""
    deadline = ATTEMPT_DEADLINE.get()
    if deadline is None:
        return step(timeout)
    left = deadline.at - time.monotonic()
    if left <= 0:
        deadline.passed = True
        raise timed_out("the attempt's deadline has passed")
    if timeout is not None and timeout <= left:
        return step(timeout)
    try:
        return step(left)
    except httpcore.TimeoutException:
        deadline.passed = True
        raise


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _bounded(lambda left: self._stream.read(max_bytes, left), timeout, httpcore.ReadTimeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _bounded(lambda left: self._stream.write(buffer, left), timeout, httpcore.WriteTimeout)

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        tls = _bounded(
            lambda left: self._stream.start_tls(ssl_context, server_hostname, left), timeout, httpcore.ConnectTimeout
        )
        return _Stream(tls)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """httpcore's blocking TCP sockets, each step bounded by the attempt's deadline (the pool
    `SyncTransport` builds asks for nothing else: no Unix socket, no retries to sleep between)."""

    def __init__(self) -> None:
        self._sockets = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        def connect(left: float | None) -> httpcore.NetworkStream:
            return self._sockets.connect_tcp(host, port, left, local_address, socket_options)

        return _Stream(_bounded(connect, timeout, httpcore.ConnectTimeout))


class SyncTransport(httpx.HTTPTransport):
    """`httpx.HTTPTransport` (no proxy) over a pool of deadline-keeping sockets.

    httpx's transport takes no network backend, so this one builds the pool its parent would,
    with one; everything else (requests, responses, httpx's exceptions) is the parent's.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits,
        socket_options: Iterable[SocketOption] = (),
        verify: ssl.SSLContext | str | bool = True,
        cert: typing.Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
    ) -> None:
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=http1,
            http2=http2,
            socket_options=socket_options,
            network_backend=_Backend(),
        )
