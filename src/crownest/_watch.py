"""Watch handles: a watch on a sandbox folder, and the iterator of its `FileEvent`s.

`sandbox.files.watch(path)` creates the watch on the server and returns a
`WatchHandle`, an iterator of `FileEvent`s and a context manager. Iterating it
reads the watch's event stream (the request is sent at the first `next`): each
`change` event is a `FileEvent`; the `end` event (the watch stopped) puts the
final `Watch` in `.watch` and ends the iteration. A broken connection resumes
after the last event received (`Last-Event-ID`), so no event is lost or
repeated; a loop left early and started again goes on where it stopped.
`close()` (or leaving `with`) stops the watch on the server and closes the
connection.

Unlike `SandboxHandle` and `CommandHandle`, a watch handle is not its model:
a model is a read-only mapping, whose iteration gives its keys, and iterating a
watch gives its events. The model is `.watch`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Generator
from types import TracebackType
from typing import TYPE_CHECKING

from ._follow import EventOutput, afollow_events, follow_events
from ._models import Event
from ._streams import AsyncStream, Stream
from ._types import NOT_GIVEN, NotGiven, TimeoutTypes
from .models.file_event import FileEvent
from .models.watch import Watch

if TYPE_CHECKING:
    from ._client import AsyncCrowNest, CrowNest

__all__ = ["AsyncWatchHandle", "WatchHandle"]


class _WatchEvents(EventOutput[FileEvent]):
    """What a watch handle reads: FileEvents from `change` events, then the final Watch (`end`) in
    `.watch`; the handle keeps the last id too, for its own next stream."""

    def __init__(self, handle: _WatchHandleBase, last_event_id: str | None) -> None:
        super().__init__(
            f"watch {handle.id}",
            last_event_id,
            FileEvent.from_dict,
            lambda body: setattr(handle, "watch", Watch.from_dict(body)),
            item="change",
            end="end",
        )
        self._handle = handle

    def take(self, event: Event) -> FileEvent | None:
        change = super().take(event)
        self._handle.last_event_id = self.last_event_id
        return change


class _WatchHandleBase:
    """What both watch handles share: everything that needs no I/O."""

    __slots__ = ("last_event_id", "watch")

    def __init__(self, watch: Watch) -> None:
        self.watch = watch
        """The watch as the server last described it: as created, then final once the iteration ended."""
        self.last_event_id: str | None = None
        """The id of the last event handed out; `events(last_event_id=...)` resumes after it."""

    @property
    def id(self) -> str:
        """The watch's ID (`wch_...`)."""
        return self.watch.id

    @property
    def sandbox_id(self) -> str:
        """The sandbox whose folder it watches."""
        return self.watch.sandbox_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.watch!r})"


class WatchHandle(_WatchHandleBase):
    """A watch, bound to the client that created it: `for event in watch` gives its `FileEvent`s."""

    __slots__ = ("_client", "_stream")

    def __init__(self, client: CrowNest, watch: Watch) -> None:
        super().__init__(watch)
        self._client = client
        self._stream: Stream[FileEvent] | None = None

    def events(
        self,
        *,
        last_event_id: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Stream[FileEvent]:
        """A new stream of the watch's changes after `last_event_id` (from its start if None), until it ends.

        Each item is a `FileEvent`; when the watch ends (closed, its folder gone, its sandbox
        ended), `.watch` becomes the final Watch and the stream stops. A broken connection
        resumes where it stopped. Closing the stream (or leaving `with`) closes the
        connection; the watch itself goes on until `close()`.
        """
        return Stream(self._events(_WatchEvents(self, last_event_id), timeout, max_retries))

    def _events(
        self, reader: _WatchEvents, timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven
    ) -> Generator[FileEvent, None, None]:
        return follow_events(
            lambda last_event_id: self._client.files.watch_events(
                self.sandbox_id, self.id, last_event_id=last_event_id, timeout=timeout, max_retries=max_retries
            ),
            reader,
        )

    def __iter__(self) -> WatchHandle:
        return self

    def __next__(self) -> FileEvent:
        if self._stream is None:
            self._stream = self.events(last_event_id=self.last_event_id)
        return next(self._stream)

    def close(self, *, timeout: TimeoutTypes | NotGiven = NOT_GIVEN, max_retries: int | NotGiven = NOT_GIVEN) -> None:
        """Stop the watch on the server (a watch that already ended is no error), then close the connection.

        A loop over the handle in another thread gets the watch's remaining events and its end, and stops.
        """
        self._client.files.unwatch(self.sandbox_id, self.id, timeout=timeout, max_retries=max_retries)
        if self._stream is not None:
            with contextlib.suppress(ValueError):  # another thread is in it: it ends with the watch's end
                self._stream.close()

    def __enter__(self) -> WatchHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncWatchHandle(_WatchHandleBase):
    """A watch, bound to the async client that created it: `async for event in watch` gives its `FileEvent`s."""

    __slots__ = ("_client", "_stream")

    def __init__(self, client: AsyncCrowNest, watch: Watch) -> None:
        super().__init__(watch)
        self._client = client
        self._stream: AsyncStream[FileEvent] | None = None

    def events(
        self,
        *,
        last_event_id: str | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncStream[FileEvent]:
        """A new stream of the watch's changes (`async for`); see `WatchHandle.events`."""
        return AsyncStream(self._events(_WatchEvents(self, last_event_id), timeout, max_retries))

    def _events(
        self, reader: _WatchEvents, timeout: TimeoutTypes | NotGiven, max_retries: int | NotGiven
    ) -> AsyncGenerator[FileEvent, None]:
        return afollow_events(
            lambda last_event_id: self._client.files.watch_events(
                self.sandbox_id, self.id, last_event_id=last_event_id, timeout=timeout, max_retries=max_retries
            ),
            reader,
        )

    def __aiter__(self) -> AsyncWatchHandle:
        return self

    async def __anext__(self) -> FileEvent:
        if self._stream is None:
            self._stream = self.events(last_event_id=self.last_event_id)
        return await self._stream.__anext__()

    async def close(
        self, *, timeout: TimeoutTypes | NotGiven = NOT_GIVEN, max_retries: int | NotGiven = NOT_GIVEN
    ) -> None:
        """Stop the watch on the server (a watch that already ended is no error), then close the connection.

        A loop over the handle in another task gets the watch's remaining events and its end, and stops.
        """
        await self._client.files.unwatch(self.sandbox_id, self.id, timeout=timeout, max_retries=max_retries)
        if self._stream is not None:
            with contextlib.suppress(RuntimeError):  # another task is in it: it ends with the watch's end
                await self._stream.aclose()

    async def __aenter__(self) -> AsyncWatchHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
