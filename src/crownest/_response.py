"""Raw responses: `client.with_raw_response.<resource>.<method>(...)`.

The raw twin of a method sends the same request and gives a `RawResponse`:
the HTTP status, headers and request ID of the answer, and `parse()` for the
result the method itself returns. The answer is captured where the client
receives it (`capture_response`), through a context variable, so every
generated method has a raw twin without a second code path.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Generic, ParamSpec, TypeVar

import httpx

P = ParamSpec("P")
R = TypeVar("R")

__all__ = ["RawResponse"]

_CAPTURED: ContextVar[list[httpx.Response] | None] = ContextVar("crownest_captured_responses", default=None)


def capture_response(response: httpx.Response) -> None:
    """Note a successful answer for the raw twin that is waiting for it, if any."""
    captured = _CAPTURED.get()
    if captured is not None:
        captured.append(response)


class RawResponse(Generic[R]):
    """The HTTP answer of one call, with its parsed result.

    For a method that sends several requests (`run` with output callbacks), it is the last one.
    """

    __slots__ = ("http_response", "_parsed")

    def __init__(self, http_response: httpx.Response, parsed: R) -> None:
        self.http_response = http_response
        """The `httpx.Response` (its body already read)."""
        self._parsed = parsed

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

    def parse(self) -> R:
        """What the method returns (a model, a handle, bytes, ... or None)."""
        return self._parsed

    def __repr__(self) -> str:
        request = self.http_response.request
        return f"<RawResponse [{self.status_code}] {request.method} {request.url.path} request_id={self.request_id}>"


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
