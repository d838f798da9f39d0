"""Terminal handles: a `PtyHandle` *is* a `PtySession` (an interactive terminal in a sandbox), bound to
the client that opened it, built the way `CommandHandle` is.

It adds `.send()` (keys typed on the terminal), `.resize()`, `.kill()`, `.wait()` and
`.output()`: the bytes the terminal printed, as they arrive, read from its event stream
and resumed after a broken connection with `Last-Event-ID` (the byte offset received), so
that no byte is lost or repeated.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Generator
from typing import TYPE_CHECKING, Any

from ._follow import EventOutput, afollow_events, follow_events
from ._models import copy_fields, set_field
from ._streams import AsyncStream, Stream
from ._types import NOT_GIVEN, Body, Headers, NotGiven, Query, TimeoutTypes
from .models.pty_session import PtySession

if TYPE_CHECKING:
    from ._client import AsyncCrowNest, CrowNest

__all__ = ["AsyncPtyHandle", "PtyHandle"]


def _output_bytes(body: Any) -> bytes:
    data = body["data"]
    if not isinstance(data, str):
        raise TypeError(f"expected base64 text, got {type(data).__name__}")
    return base64.b64decode(data, validate=True)


def _pty_output(handle: PtySession, last_event_id: str | None) -> EventOutput[bytes]:
    """What a terminal handle's output reads: bytes, then the final PtySession into the handle."""
    return EventOutput(
        f"terminal {handle.id}",
        last_event_id,
        _output_bytes,
        lambda body: copy_fields(handle, PtySession.from_dict(body)),
    )


class PtyHandle(PtySession):
    """An interactive terminal, bound to the client that opened it."""

    __slots__ = ("_client",)
    _client: CrowNest

    def __init__(self, client: CrowNest, pty: PtySession) -> None:
        copy_fields(self, pty)
        set_field(self, "_client", client)

    def send(
        self,
        data: str | bytes,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Type `data` (text, sent as UTF-8, or bytes) on the terminal: `"\\r"` is Enter, `"\\x03"` Ctrl-C."""
        self._client.pty.send(
            self.sandbox_id,
            self.id,
            data,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
        )

    def resize(
        self,
        cols: int,
        rows: int,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Set the terminal's size (the program gets `SIGWINCH`); updates this handle's `cols` and `rows`."""
        answer = self._client.pty.resize(
            self.sandbox_id,
            self.id,
            cols,
            rows,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
        )
        copy_fields(self, answer)

    def kill(
        self,
        signal: str | None = None,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Send `signal` (default `SIGTERM`, then `SIGKILL` 2 s later) to the terminal's process tree and
        wait until it ends; updates this handle."""
        answer = self._client.pty.kill(
            self.sandbox_id,
            self.id,
            signal=signal,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
        )
        copy_fields(self, answer)

    def wait(
        self,
        timeout_ms: int | None = None,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> PtyHandle:
        """Wait for the terminal's program to end and update this handle's fields; returns the handle.

        With `timeout_ms`, wait at most that long (it may still be `running`); without, wait
        as long as it runs (a terminal has no time limit of its own).
        """
        while True:
            answer = self._client.pty.wait(
                self.sandbox_id,
                self.id,
                timeout_ms=timeout_ms,
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
                extra_body=extra_body,
            )
            copy_fields(self, answer)
            if timeout_ms is not None or self.status != "running":
                return self

    def output(
        self,
        *,
        last_event_id: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Stream[bytes]:
        """The bytes the terminal printed, from its start (or after `last_event_id`) until its program
        ends, as they arrive.

        Iterate it (`for data in pty.output()`); joined, the chunks are the terminal's output
        byte for byte. When the program ends, the handle's fields are updated to its final state.
        A broken connection resumes where it stopped, losing and repeating nothing. Leaving the
        loop early and closing the stream (or using it in `with`) closes the connection.
        """
        return Stream(self._output(_pty_output(self, last_event_id), timeout, max_retries))

    def _output(
        self, reader: EventOutput[bytes], timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven
    ) -> Generator[bytes, None, None]:
        return follow_events(
            lambda last_event_id: self._client.pty.events(
                self.sandbox_id, self.id, last_event_id=last_event_id, timeout=timeout, max_retries=max_retries
            ),
            reader,
        )


class AsyncPtyHandle(PtySession):
    """An interactive terminal, bound to the async client that opened it."""

    __slots__ = ("_client",)
    _client: AsyncCrowNest

    def __init__(self, client: AsyncCrowNest, pty: PtySession) -> None:
        copy_fields(self, pty)
        set_field(self, "_client", client)

    async def send(
        self,
        data: str | bytes,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Type `data` (text, sent as UTF-8, or bytes) on the terminal: `"\\r"` is Enter, `"\\x03"` Ctrl-C."""
        await self._client.pty.send(
            self.sandbox_id,
            self.id,
            data,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
        )

    async def resize(
        self,
        cols: int,
        rows: int,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Set the terminal's size (the program gets `SIGWINCH`); updates this handle's `cols` and `rows`."""
        answer = await self._client.pty.resize(
            self.sandbox_id,
            self.id,
            cols,
            rows,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
        )
        copy_fields(self, answer)

    async def kill(
        self,
        signal: str | None = None,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Send `signal` (default `SIGTERM`, then `SIGKILL` 2 s later) to the terminal's process tree and
        wait until it ends; updates this handle."""
        answer = await self._client.pty.kill(
            self.sandbox_id,
            self.id,
            signal=signal,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
        )
        copy_fields(self, answer)

    async def wait(
        self,
        timeout_ms: int | None = None,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> AsyncPtyHandle:
        """Wait for the terminal's program to end and update this handle's fields; returns the handle.

        With `timeout_ms`, wait at most that long (it may still be `running`); without, wait
        as long as it runs (a terminal has no time limit of its own).
        """
        while True:
            answer = await self._client.pty.wait(
                self.sandbox_id,
                self.id,
                timeout_ms=timeout_ms,
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
                extra_body=extra_body,
            )
            copy_fields(self, answer)
            if timeout_ms is not None or self.status != "running":
                return self

    def output(
        self,
        *,
        last_event_id: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncStream[bytes]:
        """The bytes the terminal printed, as they arrive (`async for`); see `PtyHandle.output`."""
        return AsyncStream(self._output(_pty_output(self, last_event_id), timeout, max_retries))

    def _output(
        self, reader: EventOutput[bytes], timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven
    ) -> AsyncGenerator[bytes, None]:
        return afollow_events(
            lambda last_event_id: self._client.pty.events(
                self.sandbox_id, self.id, last_event_id=last_event_id, timeout=timeout, max_retries=max_retries
            ),
            reader,
        )
