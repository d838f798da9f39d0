"""What keeps CrowNest Local answering when a client misbehaves: connection caps and read timeouts.

`Guard.protocol()` is uvicorn's h11 protocol with four rules added, all
before a request reaches the app, so that no client needs an API key to be
held to them:

- at most `max_connections` open connections, and `max_connections_per_client`
  from one address; past either, a connection gets a 503 `too_many_connections`
  and is closed at once;
- a request's headers must arrive within `header_timeout_s` of its first byte
  (of the connection, for its first request), else 408 `request_timeout`;
- a request's body must keep arriving, at least `BODY_MIN_BYTES` in every
  `body_timeout_s` (unless the server is the one not reading), else 408;
- an answer sent before the whole body arrived (a 413 on `Content-Length`,
  say) says `Connection: close` and ends the connection, since the rest of the
  body is not wanted.

`LagMonitor` measures how late the event loop runs, which is how the tests
prove that no request stalls the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("crownest_local")

BODY_MIN_BYTES = 1024
FD_RESERVE = 1024  # descriptors kept for sandboxes' commands, files and the database, whatever the connections


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass
class Guard:
    """The rules, and the count of open connections by client address."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 1024
    max_connections_per_client: int = 256
    open: Counter[str] = field(default_factory=Counter)

    def fit_open_files(self, open_files: int) -> None:
        """Lower `max_connections` so that connections never take the descriptors commands need."""
        budget = max(64, open_files - FD_RESERVE)
        if self.max_connections > budget:
            logger.warning("only %d open files allowed: at most %d connections", open_files, budget)
            self.max_connections = budget
            self.max_connections_per_client = min(self.max_connections_per_client, budget)

    def admit(self, host: str) -> bool:
        if self.open.total() >= self.max_connections or self.open[host] >= self.max_connections_per_client:
            return False
        self.open[host] += 1
        return True

    def release(self, host: str) -> None:
        self.open[host] -= 1
        if self.open[host] <= 0:
            del self.open[host]

    def protocol(self) -> type[H11Protocol]:
        """An h11 protocol class that applies this guard (pass it to uvicorn as `http=`)."""
        return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": self})


def error_bytes(status: int, reason: str, code: str, message: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 error answer with the error envelope, which closes the connection."""
    body = json.dumps({"error": {"code": code, "message": message, "details": {}}}).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class GuardedH11Protocol(H11Protocol):
    guard: Guard  # set on the subclass that `Guard.protocol()` makes

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._host = self.client[0] if self.client else ""
        self._received = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._admitted = self.guard.admit(self._host)
        if not self._admitted:
            message = "Too many open connections; reuse connections, or retry shortly."
            retry = {"Retry-After": "1"}
            self._refuse(error_bytes(503, "Service Unavailable", "too_many_connections", message, retry))
            return
        self._arm_header_timer()
        send = self.conn.send

        def send_closing_early(event: Any) -> Any:
            if isinstance(event, h11.Response) and self.conn.their_state is h11.SEND_BODY:
                headers = [*event.headers, (b"connection", b"close")]
                event = h11.Response(status_code=event.status_code, headers=headers, reason=event.reason)
            return send(event)

        self.conn.send = send_closing_early  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            self._admitted = False
            self.guard.release(self._host)
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._header_timer is None:
            self._arm_header_timer()  # the first byte of the next request on a kept-alive connection
        self._received += len(data)
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE and self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        if self.conn.their_state is h11.SEND_BODY and self._body_timer is None:
            self._arm_body_timer(self._received)

    def _refuse(self, answer: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.guard.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            self._refuse(self._timeout_answer("The request's headers did not arrive in time."))

    def _arm_body_timer(self, mark: int) -> None:
        self._body_timer = self.loop.call_later(self.guard.body_timeout_s, self._check_body, mark)

    def _check_body(self, mark: int) -> None:
        self._body_timer = None
        if self.conn.their_state is not h11.SEND_BODY or self.transport.is_closing():
            return
        if self._received - mark >= BODY_MIN_BYTES or self.flow.read_paused:
            self._arm_body_timer(self._received)  # progressing, or waiting for the app to read
            return
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
        else:
            self._refuse(self._timeout_answer("The request's body stopped arriving."))

    def _timeout_answer(self, message: str) -> bytes:
        return error_bytes(408, "Request Timeout", "request_timeout", message)

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


class LagMonitor:
    """How late the event loop runs: a task that sleeps `interval_s` and records the worst overshoot."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.worst_s = 0.0
        self._task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def take(self) -> float:
        """The worst lag in seconds since the last call."""
        worst, self.worst_s = self.worst_s, 0.0
        return worst

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.worst_s = max(self.worst_s, time.perf_counter() - before - self.interval_s)
