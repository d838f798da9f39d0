"""Handles: API objects that can act on themselves, wrapped around what the spec marks
with `x-crownest-handle`.

A `SandboxHandle` *is* a `Sandbox` (attribute access, mapping access by wire
name, `.to_dict()`). Its methods are generated (`SandboxScopes`): every
operation of the `sandboxes` tag on one sandbox, with its ID bound
(`.kill()`, `.refresh()`, `.set_ttl()`; one that answers with the sandbox
updates the handle in place), and the sandbox's resources (`.commands`,
`.files`, `.artifacts`, `.previews`). Written here: use as a context manager
that kills the sandbox on exit.

A `CommandHandle` *is* a `Command`, and adds `.wait()`, `.kill()`,
`.send_stdin()`, `.refresh()` and `.output()`, the command's output as it
arrives, read from its event stream and resumed after a broken connection
with `Last-Event-ID`, so that nothing is lost or repeated.

The watch handles (`WatchHandle`, `AsyncWatchHandle`) are in `_watch` and
exported from here, where the generated resources import every handle from.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from ._exceptions import CommandFailedError, CrowNestError
from ._follow import EventOutput, afollow_events, follow_events
from ._generated.resources import AsyncSandboxScopes, SandboxScopes
from ._models import copy_fields, set_field
from ._pty import AsyncPtyHandle, PtyHandle
from ._streams import AsyncStream, Stream
from ._types import NOT_GIVEN, Body, Headers, NotGiven, Query, TimeoutTypes
from ._watch import AsyncWatchHandle, WatchHandle
from .models.command import Command
from .models.sandbox import Sandbox

WAIT_ROUND_MS = 60_000  # how long `commands.wait` waits when not told (the spec's default)

if TYPE_CHECKING:
    from ._client import AsyncCrowNest, CrowNest

__all__ = [
    "AsyncCommandHandle",
    "AsyncPtyHandle",
    "AsyncSandboxHandle",
    "AsyncWatchHandle",
    "CommandHandle",
    "OutputChunk",
    "PtyHandle",
    "SandboxHandle",
    "WatchHandle",
]

T = TypeVar("T")


class SandboxHandle(Sandbox, SandboxScopes):
    """A sandbox, bound to the client that fetched it."""

    __slots__ = ("_client",)

    def __init__(self, client: CrowNest, sandbox: Sandbox) -> None:
        copy_fields(self, sandbox)
        set_field(self, "_client", client)

    def _update(self, sandbox: Sandbox) -> None:
        copy_fields(self, sandbox)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class AsyncSandboxHandle(Sandbox, AsyncSandboxScopes):
    """A sandbox, bound to the async client that fetched it."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncCrowNest, sandbox: Sandbox) -> None:
        copy_fields(self, sandbox)
        set_field(self, "_client", client)

    def _update(self, sandbox: Sandbox) -> None:
        copy_fields(self, sandbox)

    async def __aenter__(self) -> AsyncSandboxHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.kill()


@attrs.frozen
class OutputChunk:
    """A piece of a command's output, as it arrived.

    `data` is UTF-8 text (invalid bytes replaced; a character is never split
    between chunks), so `"".join(chunk.data for chunk in ...)` per stream is the
    stream's whole output.
    """

    stream: Literal["stdout", "stderr"] | str
    """`stdout` or `stderr`."""
    data: str
    """The text."""


def _command_output(handle: Command, last_event_id: str | None) -> EventOutput[OutputChunk]:
    """What a command handle's output reads: chunks, then the final Command into the handle."""
    return EventOutput(
        f"command {handle.id}",
        last_event_id,
        lambda body: OutputChunk(_text(body["stream"]), _text(body["data"])),
        lambda body: copy_fields(handle, Command.from_dict(body)),
    )


def _next_wait_round(command: Command, rounds: int) -> int:
    """Count one more wait that ended with the command still running. Each wait lasts its default
    (WAIT_ROUND_MS) unless the command ends, and a command ends by its own `timeout_ms`: a server
    that answers `running` more often than that would keep `wait()` asking forever."""
    rounds += 1
    if rounds > command.timeout_ms // WAIT_ROUND_MS + 1:
        raise CrowNestError(
            f"Command {command.id} was still running after {rounds} waits, more than its timeout "
            f"({command.timeout_ms} ms) allows; stopping instead of waiting forever"
        )
    return rounds


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


class _CommandHandleBase(Command):
    """What both command handles share: everything that needs no I/O."""

    __slots__ = ("_client",)


class CommandHandle(_CommandHandleBase):
    """A command, bound to the client that started or fetched it."""

    __slots__ = ()
    _client: CrowNest

    def __init__(self, client: CrowNest, command: Command) -> None:
        copy_fields(self, command)
        set_field(self, "_client", client)

    def check_returncode(self) -> None:
        """Raise `CommandFailedError` (with this handle as its `result`) unless the command succeeded."""
        if self.status != "succeeded":
            raise CommandFailedError(self)

    def refresh(
        self,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Fetch the command again and update this handle's fields in place (per-call options as
        for every method: `timeout`, `max_retries`, `extra_headers`, `extra_query`, `extra_body`)."""
        copy_fields(
            self,
            self._client.commands.get(
                self.sandbox_id,
                self.id,
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
                extra_body=extra_body,
            ),
        )

    def wait(
        self,
        timeout_ms: int | None = None,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> CommandHandle:
        """Wait for the command to end and update this handle's fields; returns the handle.

        With `timeout_ms`, wait at most that long (the command may still be `running`).
        """
        rounds = 0
        while True:
            answer = self._client.commands.wait(
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
            rounds = _next_wait_round(self, rounds)

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
        """Send `signal` to the command's process tree and wait until it ends; updates this handle.

        The default is `SIGTERM`, followed by `SIGKILL` if the tree still runs 2 s later (as the API says).
        """
        answer = self._client.commands.kill(
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

    def send_stdin(
        self,
        data: str | bytes,
        *,
        eof: bool | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Write `data` (text, sent as UTF-8, or bytes) to the command's standard input; `eof=True` closes it afterwards."""
        self._client.commands.send_stdin(
            self.sandbox_id,
            self.id,
            data,
            eof=eof,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
        )

    def output(
        self,
        *,
        last_event_id: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Stream[OutputChunk]:
        """The command's output from its start (or after `last_event_id`) until it ends, as it arrives.

        Iterate it (`for chunk in handle.output()`); stdout and stderr come in the order
        they were written, each chunk an `OutputChunk`. When the command ends, the
        handle's fields are updated to its final state. A broken connection resumes
        where it stopped. Leaving the loop early and closing the stream (or using it in
        `with`) closes the connection.
        """
        return Stream(self._output(_command_output(self, last_event_id), timeout, max_retries))

    def _output(
        self, reader: EventOutput[OutputChunk], timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven
    ) -> Generator[OutputChunk, None, None]:
        return follow_events(
            lambda last_event_id: self._client.commands.events(
                self.sandbox_id, self.id, last_event_id=last_event_id, timeout=timeout, max_retries=max_retries
            ),
            reader,
        )

    def follow(
        self,
        on_stdout: Callable[[str], object] | None,
        on_stderr: Callable[[str], object] | None,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> None:
        """Call `on_stdout`/`on_stderr` with the output as it arrives, until the command ends."""
        callbacks = {"stdout": on_stdout, "stderr": on_stderr}
        with self.output(timeout=timeout, max_retries=max_retries) as chunks:
            for chunk in chunks:
                callback = callbacks.get(chunk.stream)
                if callback is not None:
                    callback(chunk.data)


class AsyncCommandHandle(_CommandHandleBase):
    """A command, bound to the async client that started or fetched it."""

    __slots__ = ()
    _client: AsyncCrowNest

    def __init__(self, client: AsyncCrowNest, command: Command) -> None:
        copy_fields(self, command)
        set_field(self, "_client", client)

    def check_returncode(self) -> None:
        """Raise `CommandFailedError` (with this handle as its `result`) unless the command succeeded."""
        if self.status != "succeeded":
            raise CommandFailedError(self)

    async def refresh(
        self,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Fetch the command again and update this handle's fields in place (per-call options as
        for every method: `timeout`, `max_retries`, `extra_headers`, `extra_query`, `extra_body`)."""
        copy_fields(
            self,
            await self._client.commands.get(
                self.sandbox_id,
                self.id,
                timeout=timeout,
                max_retries=max_retries,
                extra_headers=extra_headers,
                extra_query=extra_query,
                extra_body=extra_body,
            ),
        )

    async def wait(
        self,
        timeout_ms: int | None = None,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> AsyncCommandHandle:
        """Wait for the command to end and update this handle's fields; returns the handle.

        With `timeout_ms`, wait at most that long (the command may still be `running`).
        """
        rounds = 0
        while True:
            answer = await self._client.commands.wait(
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
            rounds = _next_wait_round(self, rounds)

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
        """Send `signal` to the command's process tree and wait until it ends; updates this handle.

        The default is `SIGTERM`, followed by `SIGKILL` if the tree still runs 2 s later (as the API says).
        """
        answer = await self._client.commands.kill(
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

    async def send_stdin(
        self,
        data: str | bytes,
        *,
        eof: bool | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        extra_headers: Headers | None = None,
        extra_query: Query | None = None,
        extra_body: Body | None = None,
    ) -> None:
        """Write `data` (text, sent as UTF-8, or bytes) to the command's standard input; `eof=True` closes it afterwards."""
        await self._client.commands.send_stdin(
            self.sandbox_id,
            self.id,
            data,
            eof=eof,
            timeout=timeout,
            max_retries=max_retries,
            extra_headers=extra_headers,
            extra_query=extra_query,
            extra_body=extra_body,
        )

    def output(
        self,
        *,
        last_event_id: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncStream[OutputChunk]:
        """The command's output as it arrives (`async for`); see `CommandHandle.output`."""
        return AsyncStream(self._output(_command_output(self, last_event_id), timeout, max_retries))

    def _output(
        self, reader: EventOutput[OutputChunk], timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven
    ) -> AsyncGenerator[OutputChunk, None]:
        return afollow_events(
            lambda last_event_id: self._client.commands.events(
                self.sandbox_id, self.id, last_event_id=last_event_id, timeout=timeout, max_retries=max_retries
            ),
            reader,
        )

    async def follow(
        self,
        on_stdout: Callable[[str], object] | None,
        on_stderr: Callable[[str], object] | None,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> None:
        """Call `on_stdout`/`on_stderr` with the output as it arrives, until the command ends."""
        callbacks = {"stdout": on_stdout, "stderr": on_stderr}
        async with self.output(timeout=timeout, max_retries=max_retries) as chunks:
            async for chunk in chunks:
                callback = callbacks.get(chunk.stream)
                if callback is not None:
                    callback(chunk.data)
