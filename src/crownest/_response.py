"""Raw and streamed responses: `client.with_raw_response.<resource>.<method>(...)` and
`client.with_streaming_response.<resource>.<method>(...)`.

The raw twin of a method sends the same request and gives a `RawResponse`:
the HTTP status, headers and request ID of the answer, and `parse()` for the
result the method itself returns. The streaming twin of a method that streams
(file content, command events) is a context manager that sends the request on
entry and gives a `StreamedResponse`: the same status, headers and request ID,
then the items as they arrive. The answer is captured where the client
receives it (`capture_response`), through a context variable, so every
generated method has its twins without a second code path.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Generic, ParamSpec, TypeVar

import httpx

P = ParamSpec("P")
R = TypeVar("R")

if TYPE_CHECKING:
    from ._streams import AsyncStream, Stream

T = TypeVar("T")

__all__ = ["AsyncStreamedResponse", "RawResponse", "StreamedResponse"]

_CAPTURED: ContextVar[list[httpx.Response] | None] = ContextVar("crownest_captured_responses", default=None)


def capture_response(response: httpx.Response) -> None:
    """Note a successful answer for the raw twin that is waiting for it, if any."""
    captured = _CAPTURED.get()
    if captured is not None:
        captured.append(response)


class _Answer:
    """The status, headers and request ID of an answer."""

    __slots__ = ("http_response",)

    def __init__(self, http_response: httpx.Response) -> None:
        self.http_response = http_response
        """The `httpx.Response`."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        return self.http_response.status_code

    @property
    def headers(self) -> httpx.Headers:
        """The response headers."""
        return self.http_response.headers

    @property
    def request_id(self) -> str | None:
        """The `X-Request-Id` the API gave this answer (quote it to support)."""
        request_id: str | None = self.http_response.headers.get("x-request-id")
        return request_id

    def __repr__(self) -> str:
        request = self.http_response.request
        return (
            f"<{type(self).__name__} [{self.status_code}] {request.method} {request.url.path} "
            f"request_id={self.request_id}>"
        )


class RawResponse(_Answer, Generic[R]):
    """The HTTP answer of one call (its body read), with its parsed result.

    For a method that sends several requests (`run` with output callbacks), it is the last one.
    """

    __slots__ = ("_parsed",)

    def __init__(self, http_response: httpx.Response, parsed: R) -> None:
        super().__init__(http_response)
        self._parsed = parsed

    def parse(self) -> R:
        """What the method returns (a model, a handle, bytes, ... or None)."""
        return self._parsed


def _raw(responses: list[httpx.Response], parsed: R, func: Callable[..., object]) -> RawResponse[R]:
    if not responses:
        raise RuntimeError(f"{func.__qualname__} sent no request")  # only lazy methods would, and they have no twin
    return RawResponse(responses[-1], parsed)


def to_raw_response(func: Callable[P, R]) -> Callable[P, RawResponse[R]]:
    """The raw twin of a sync method."""

    @functools.wraps(func)
    def raw(*args: P.args, **kwargs: P.kwargs) -> RawResponse[R]:
        responses: list[httpx.Response] = []
        token = _CAPTURED.set(responses)
        try:
            parsed = func(*args, **kwargs)
        finally:
            _CAPTURED.reset(token)
        return _raw(responses, parsed, func)

    return raw


def async_to_raw_response(func: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[RawResponse[R]]]:
    """The raw twin of an async method."""

    @functools.wraps(func)
    async def raw(*args: P.args, **kwargs: P.kwargs) -> RawResponse[R]:
        responses: list[httpx.Response] = []
        token = _CAPTURED.set(responses)
        try:
            parsed = await func(*args, **kwargs)
        finally:
            _CAPTURED.reset(token)
        return _raw(responses, parsed, func)

    return raw


class StreamedResponse(_Answer, Generic[T]):
    """A streamed answer, inside `with`: its status, headers and request ID, then its items as
    they arrive (iterate it). Leaving `with` closes the connection."""

    __slots__ = ("_stream", "_first")

    def __init__(self, stream: Stream[T]) -> None:
        self._stream = stream
        self._first: list[T] = []

    def __enter__(self) -> StreamedResponse[T]:
        responses: list[httpx.Response] = []
        token = _CAPTURED.set(responses)
        try:
            self._first = [next(self._stream)]  # sends the request
        except StopIteration:
            self._first = []
        except BaseException:
            self._stream.close()
            raise
        finally:
            _CAPTURED.reset(token)
        self.http_response = responses[0]
        return self

    def __iter__(self) -> Iterator[T]:
        while self._first:
            yield self._first.pop()
        yield from self._stream

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stream.close()


class AsyncStreamedResponse(_Answer, Generic[T]):
    """A streamed answer, inside `async with`: as `StreamedResponse`, iterated with `async for`."""

    __slots__ = ("_stream", "_first")

    def __init__(self, stream: AsyncStream[T]) -> None:
        self._stream = stream
        self._first: list[T] = []

    async def __aenter__(self) -> AsyncStreamedResponse[T]:
        responses: list[httpx.Response] = []
        token = _CAPTURED.set(responses)
        try:
            self._first = [await self._stream.__anext__()]  # sends the request
        except StopAsyncIteration:
            self._first = []
        except BaseException:
            await self._stream.aclose()
            raise
        finally:
            _CAPTURED.reset(token)
        self.http_response = responses[0]
        return self

    async def __aiter__(self) -> AsyncIterator[T]:
        while self._first:
            yield self._first.pop()
        async for item in self._stream:
            yield item

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stream.aclose()


def to_streamed_response(func: Callable[P, Stream[T]]) -> Callable[P, StreamedResponse[T]]:
    """The streaming twin of a sync method that streams."""

    @functools.wraps(func)
    def streamed(*args: P.args, **kwargs: P.kwargs) -> StreamedResponse[T]:
        return StreamedResponse(func(*args, **kwargs))

    return streamed


def async_to_streamed_response(func: Callable[P, AsyncStream[T]]) -> Callable[P, AsyncStreamedResponse[T]]:
    """The streaming twin of an async method that streams."""

    @functools.wraps(func)
    def streamed(*args: P.args, **kwargs: P.kwargs) -> AsyncStreamedResponse[T]:
        return AsyncStreamedResponse(func(*args, **kwargs))

    return streamed
