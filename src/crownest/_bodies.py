"""Answers read whole into memory, within a size limit.

An answer that is read whole (every call but downloads and streams) may hold
at most `MAX_BODY_BYTES` once decoded: a `Content-Length` over it is refused
before reading, and the decoded bytes are counted as they come, so neither a
huge body nor a small gzip bomb can fill the memory. An error answer is only
needed for its message, so it is cut at `MAX_ERROR_BODY_BYTES` instead.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from ._exceptions import ResponseTooLargeError

MiB = 1 << 20
MAX_BODY_BYTES = 64 * MiB
MAX_ERROR_BODY_BYTES = 1 * MiB


def _limit(response: httpx.Response) -> int:
    return MAX_BODY_BYTES if response.is_success else MAX_ERROR_BODY_BYTES


def _check_declared(response: httpx.Response) -> None:
    declared = response.headers.get("content-length", "")
    if response.is_success and declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(response, f"its Content-Length is {int(declared)} bytes")


def _too_large(response: httpx.Response, what: str) -> ResponseTooLargeError:
    request = response.request
    return ResponseTooLargeError(
        f"{request.method} {request.url.path}: the answer is larger than the {MAX_BODY_BYTES // MiB} MiB "
        f"the SDK reads into memory ({what}); read large files with download() or stream()",
        response=response,
    )


def _take(response: httpx.Response, body: bytearray, chunk: bytes) -> bool:
    """Add `chunk` to `body`; False once the limit is reached (an error answer is cut there)."""
    body += chunk
    limit = _limit(response)
    if len(body) <= limit:
        return True
    if response.is_success:
        raise _too_large(response, f"more than {limit} bytes once decoded")
    del body[limit:]
    return False


def read_body(response: httpx.Response, stop: Callable[[], bool] | None = None) -> None:
    """Read a streamed `response`'s body into `response.content`, within the limit; `stop()` is
    asked between chunks and ends the read early (the caller closes the response)."""
    _check_declared(response)
    body = bytearray()
    for chunk in response.iter_bytes():
        if not _take(response, body, chunk) or (stop is not None and stop()):
            break
    response._content = bytes(body)


async def aread_body(response: httpx.Response) -> None:
    """`read_body` for an async response."""
    _check_declared(response)
    body = bytearray()
    async for chunk in response.aiter_bytes():
        if not _take(response, body, chunk):
            break
    response._content = bytes(body)
