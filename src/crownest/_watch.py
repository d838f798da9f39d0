"""Watch handles: a watch on a sandbox folder that iterates its `FileEvent`s.

`sandbox.files.watch(path)` creates the watch on the server and returns a
`WatchHandle`, which *is* a `Watch` model. Iterating it reads the watch's event
stream: each `change` event is a `FileEvent`, the `end` event (the watch
stopped) updates the handle's fields and ends the iteration. A broken
connection resumes after the last event received (`Last-Event-ID`), so no
event is lost or repeated; the handle remembers that event's id
(`last_event_id`), so a loop left early and started again goes on where it
stopped. `close()` (or leaving `with`) stops the watch on the server and
closes the connection.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from ._exceptions import CrowNestError
from ._generated.models.file_event import FileEvent
from ._generated.models.watch import Watch
from ._generated.models.watch_event import WatchEvent
from ._handle import _copy_fields, _parse_data
from ._models import set_field
from ._streams import AsyncStream, Stream
from ._types import NOT_GIVEN, NotGiven, TimeoutTypes

if TYPE_CHECKING:
    from ._client import AsyncCrowNest, CrowNest

__all__ = ["AsyncWatchHandle", "WatchHandle"]


class _WatchReader:
    """Reads `change` and `end` events into FileEvents and the final Watch, for both handles."""

    def __init__(self, handle: _WatchHandleBase) -> None:
        self.handle = handle
        self.ended = False
        self.progressed = False

    def take(self, event: WatchEvent) -> FileEvent | None:
        """The FileEvent in a `change` event; the `end` event updates the handle."""
        self.progressed = True
        if event.event == "end":
            _copy_fields(self.handle, _parse_data(event, Watch.from_dict))
            self.ended = True
            return None
        if isinstance(event.id, str):
            set_field(self.handle, "last_event_id", event.id)
        if event.event == "change":
            change: FileEvent = _parse_data(event, FileEvent.from_dict)
            return change
        return None

    def next_round(self) -> None:
        """Before reconnecting after a stream that ended without `end`: refuse to loop on nothing."""
        if not self.progressed:
            raise CrowNestError(f"The event stream of watch {self.handle.id} ended before its end event")
        self.progressed = False


class _WatchHandleBase(Watch):
    """What both watch handles share: everything that needs no I/O."""

    __slots__ = ("_client", "last_event_id")
    last_event_id: str | None
    """The id of the last event handed out; iterating again resumes after it."""


class WatchHandle(_WatchHandleBase):
    """A watch, bound to the client that created it: `for event in watch` gives its `FileEvent`s."""

    __slots__ = ()
    _client: CrowNest

    def __init__(self, client: CrowNest, watch: Watch) -> None:
        _copy_fields(self, watch)
        set_field(self, "_client", client)
        set_field(self, "last_event_id", None)

    def events(
        self,
        *,
        last_event_id: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Stream[FileEvent]:
        """The watch's changes after `last_event_id` (from its start if None), as they happen, until it ends.

        Each item is a `FileEvent`. When the watch ends (closed, its folder gone, its sandbox
        ended), the handle's fields are updated and the iteration stops. A broken connection
        resumes where it stopped. Closing the stream (or leaving `with`) closes the connection;
        the watch itself goes on until `close()`.
        """
        return Stream(self._events(_WatchReader(self), last_event_id, timeout, max_retries))

    def _events(
        self,
        reader: _WatchReader,
        last_event_id: str | None,
        timeout: TimeoutTypes | NotGiven,
        max_retries: int | NotGiven,
    ) -> Generator[FileEvent, None, None]:
        while True:
            stream = self._client.files.watch_events(
                self.sandbox_id, self.id, last_event_id=last_event_id, timeout=timeout, max_retries=max_retries
            )
            with stream:
                for event in stream:
                    change = reader.take(event)
                    last_event_id = self.last_event_id
                    if change is not None:
                        yield change
                    if reader.ended:
                        return
            reader.next_round()

    def __iter__(self) -> Iterator[FileEvent]:
        """The changes after the last one handed out (see `events`)."""
        return self.events(last_event_id=self.last_event_id)

    def close(
        self, *, timeout: TimeoutTypes | NotGiven = NOT_GIVEN, max_retries: int | NotGiven = NOT_GIVEN
    ) -> None:
        """Stop the watch on the server (a watch that already ended is no error)."""
        self._client.files.unwatch(self.sandbox_id, self.id, timeout=timeout, max_retries=max_retries)

    def __enter__(self) -> WatchHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncWatchHandle(_WatchHandleBase):
    """A watch, bound to the async client that created it: `async for event in watch` gives its `FileEvent`s."""

    __slots__ = ()
    _client: AsyncCrowNest

    def __init__(self, client: AsyncCrowNest, watch: Watch) -> None:
        _copy_fields(self, watch)
        set_field(self, "_client", client)
        set_field(self, "last_event_id", None)

    def events(
        self,
        *,
        last_event_id: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncStream[FileEvent]:
        """The watch's changes as they happen (`async for`); see `WatchHandle.events`."""
        return AsyncStream(self._events(_WatchReader(self), last_event_id, timeout, max_retries))

    async def _events(
        self,
        reader: _WatchReader,
        last_event_id: str | None,
        timeout: TimeoutTypes | NotGiven,
        max_retries: int | NotGiven,
    ) -> AsyncGenerator[FileEvent, None]:
        while True:
            stream = self._client.files.watch_events(
                self.sandbox_id, self.id, last_event_id=last_event_id, timeout=timeout, max_retries=max_retries
            )
            async with stream:
                async for event in stream:
                    change = reader.take(event)
                    last_event_id = self.last_event_id
                    if change is not None:
                        yield change
                    if reader.ended:
                        return
            reader.next_round()

    def __aiter__(self) -> AsyncIterator[FileEvent]:
        """The changes after the last one handed out (see `events`)."""
        return self.events(last_event_id=self.last_event_id)

    async def close(
        self, *, timeout: TimeoutTypes | NotGiven = NOT_GIVEN, max_retries: int | NotGiven = NOT_GIVEN
    ) -> None:
        """Stop the watch on the server (a watch that already ended is no error)."""
        await self._client.files.unwatch(self.sandbox_id, self.id, timeout=timeout, max_retries=max_retries)

    async def __aenter__(self) -> AsyncWatchHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
