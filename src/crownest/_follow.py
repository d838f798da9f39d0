"""Following a handle's event stream to its end: commands' and terminals' output, watches' changes.

`follow_events` reconnects after a stream that ended early, from the last event read whole
(`Last-Event-ID`), until the end event; `EventOutput` is what it keeps between reconnections.
Loaded with the handles, not by `import crownest` (it needs the models' machinery).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Generic, TypeVar

from ._exceptions import CrowNestError
from ._models import Event, event_data
from ._streams import AsyncStream, Stream

T = TypeVar("T")
E = TypeVar("E", bound=Event)


class EventOutput(Generic[T]):
    """What a handle's event stream keeps between reconnections (see `follow_events`): each `item`
    event parsed by `parse_item`, the `end` event's JSON handed to `finish` (which puts the final
    state in the handle), and the id of the last event read whole, so a bad event is not skipped
    on resume."""

    def __init__(
        self,
        what: str,
        last_event_id: str | None,
        parse_item: Callable[[Any], T],
        finish: Callable[[Any], None],
        *,
        item: str = "output",
        end: str = "exit",
    ) -> None:
        self.last_event_id = last_event_id
        self.exited = False
        self._what = what
        self._progressed = False
        self._parse_item = parse_item
        self._finish = finish
        self._item = item
        self._end = end

    def take(self, event: Event) -> T | None:
        """The item in `event`, if it is an item event with something in it; the end event ends the stream."""
        self._progressed = True
        if event.event == self._end:
            event_data(event, self._finish)
            self.exited = True
            return None
        taken = event_data(event, self._parse_item) if event.event == self._item else None
        if isinstance(event.id, str):
            self.last_event_id = event.id
        return taken or None

    def next_round(self) -> None:
        """Before reconnecting after a stream that ended without its end event: refuse to loop on nothing."""
        if not self._progressed:
            raise CrowNestError(f"The event stream of {self._what} ended before its {self._end} event")
        self._progressed = False


def follow_events(open_events: Callable[[str | None], Stream[E]], reader: EventOutput[T]) -> Generator[T, None, None]:
    """What `reader` takes from the events that `open_events(last_event_id)` streams, reconnecting
    from the last id after a stream that ended early, until the end event: one loop for every handle's output."""
    while True:
        with open_events(reader.last_event_id) as events:
            for event in events:
                taken = reader.take(event)
                if taken is not None:
                    yield taken
                if reader.exited:
                    return
        reader.next_round()


async def afollow_events(
    open_events: Callable[[str | None], AsyncStream[E]], reader: EventOutput[T]
) -> AsyncGenerator[T, None]:
    """`follow_events`, async."""
    while True:
        async with open_events(reader.last_event_id) as events:
            async for event in events:
                taken = reader.take(event)
                if taken is not None:
                    yield taken
                if reader.exited:
                    return
        reader.next_round()
