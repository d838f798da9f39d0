"""A deadline for each attempt's whole exchange, whatever the httpx transport.

httpx's timeouts bound each read, write and connect: a server that trickles one
byte a second keeps every read short and the call going forever. So each
attempt also gets a deadline for the exchange as a whole (connect, request,
headers and, for answers read whole, the body): `attempt_budget` seconds, the
read timeout of the request.

- async: `asyncio.timeout` around the attempt cancels it at the deadline.
- sync, through the SDK's own transport (`_sync_transport`): `attempt_deadline`
  marks the attempt's end, and each socket step waits at most until then.
- sync, through any other transport (a user's own `http_client`, a proxy):
  nothing can interrupt a blocking read from the outside without the
  transport's help, so the attempt runs in a worker thread and the caller
  waits for it until the deadline. A worker left behind is told to stop
  (`Job.abandoned`), stops at its next read, and closes what it opened.
  Workers are daemon threads kept for reuse, so a server that never stops
  trickling cannot keep the interpreter from exiting.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

import httpx

T = TypeVar("T")

_IDLE_SECONDS = 60.0  # a worker with nothing to do for this long ends


class DeadlinePassed(Exception):
    """The attempt did not end by its deadline (the caller turns it into CrowNestTimeoutError)."""


class Deadline:
    """The moment (`time.monotonic()`) an attempt must end by; `passed` once a step was cut short by it."""

    __slots__ = ("at", "passed")

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self.passed = False


ATTEMPT_DEADLINE: ContextVar[Deadline | None] = ContextVar("crownest_attempt_deadline", default=None)


@contextmanager
def attempt_deadline(seconds: float) -> Iterator[Deadline]:
    """While inside, this thread's socket steps through a `SyncTransport` end within `seconds`."""
    deadline = Deadline(seconds)
    token = ATTEMPT_DEADLINE.set(deadline)
    try:
        yield deadline
    finally:
        ATTEMPT_DEADLINE.reset(token)


def attempt_budget(request: httpx.Request) -> float | None:
    """Seconds one attempt of `request` may take in all: its read timeout (None: no limit)."""
    timeouts = request.extensions.get("timeout") or {}
    read = timeouts.get("read")
    return None if read is None else float(read)


class Job(Generic[T]):
    """One attempt run by a worker thread; `abandoned` is set when its caller stopped waiting."""

    def __init__(self, work: Callable[[Job[T]], T], cleanup: Callable[[T], None]) -> None:
        self.future: Future[T] = Future()
        self.abandoned = False
        self._work = work
        self._cleanup = cleanup
        self._context = contextvars.copy_context()  # the caller's context (logging, tracing) in the worker

    def run(self) -> None:
        try:
            result = self._context.run(self._work, self)
        except BaseException as exc:  # handed to the caller, who raises it
            self.future.set_exception(exc)
            return
        self.future.set_result(result)
        if self.abandoned:
            self._cleanup(result)

    def wait(self, seconds: float) -> T:
        """The result, or DeadlinePassed after `seconds` (the job is then abandoned and cleans up after
        itself; `cleanup` may run twice, so it must be idempotent)."""
        try:
            return self.future.result(timeout=seconds)
        except TimeoutError:
            if self.future.done():  # it ended just now, or the attempt itself raised TimeoutError
                return self.future.result()
            self._abandon()
            raise DeadlinePassed from None
        except BaseException:  # KeyboardInterrupt while waiting: the attempt must not keep its connection
            if not self.future.done():
                self._abandon()
            raise

    def _abandon(self) -> None:
        self.abandoned = True
        # A result that arrived in between is cleaned up here; one still to come, by run().
        if self.future.done() and self.future.exception() is None:
            self._cleanup(self.future.result())


class _Workers:
    """Daemon threads that run jobs; a new one starts when every worker is busy."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Job[Any]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0

    def submit(self, job: Job[Any]) -> None:
        with self._lock:
            start = self._idle == 0
            if not start:
                self._idle -= 1  # an idle worker is spoken for
            self._jobs.put(job)
        if start:
            threading.Thread(target=self._serve, args=(False,), name="crownest-attempt", daemon=True).start()

    def _serve(self, idle: bool) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=_IDLE_SECONDS if idle else None)
            except queue.Empty:
                with self._lock:
                    if self._idle and self._jobs.empty():
                        self._idle -= 1
                        return
                continue
            job.run()
            with self._lock:
                self._idle += 1
            idle = True


WORKERS = _Workers()


def run_with_deadline(work: Callable[[Job[T]], T], cleanup: Callable[[T], None], seconds: float) -> T:
    """`work(job)` in a worker thread, or DeadlinePassed once `seconds` have passed."""
    job = Job(work, cleanup)
    WORKERS.submit(job)
    return job.wait(seconds)
