"""When to retry, and how long to wait: small pure functions.

Connection failures and timeouts are retried. An error answer is retried as
the spec says (`_generated/error_codes.py`, written from it): a code the spec
lists by its `retry` flag, any other code (a gateway's `http_<status>`, a
newer server's code) by its status. Every create carries one idempotency key
for all its attempts, so a retry never acts twice. The wait is
`min(0.5 * 2**n, 8)` seconds times a jitter in (0.75, 1], unless the server
says otherwise with `retry-after-ms` or `Retry-After`; a server that asks for
more than `MAX_RETRY_AFTER` seconds is not retried at all.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable

import httpx

from ._generated.error_codes import ERROR_CODES, RETRY_STATUSES, RETRYABLE_CODES

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0


def is_retryable_status(status: int, code: str) -> bool:
    """Whether an error answer may be retried: by the spec's flag for its code, else by its status."""
    if code in ERROR_CODES:
        return code in RETRYABLE_CODES
    return status in RETRY_STATUSES


def server_delay(headers: httpx.Headers, now: Callable[[], float] = time.time) -> float | None:
    """The wait the server asks for, in seconds, or None if it asks none."""
    retry_after_ms = headers.get("retry-after-ms")
    if retry_after_ms is not None:
        try:
            return max(float(retry_after_ms) / 1000, 0.0)
        except ValueError:
            pass
    retry_after = headers.get("retry-after")
    if retry_after is None:
        return None
    try:
        return max(float(retry_after), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now(), 0.0)


def backoff_delay(retries_taken: int, jitter: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter for the retry after `retries_taken` retries."""
    base = min(INITIAL_DELAY * 2.0**retries_taken, MAX_DELAY)
    return base * (1 - 0.25 * jitter())


def retry_delay(retries_taken: int, headers: httpx.Headers | None) -> float | None:
    """Seconds to wait before the next try, or None when the server's wish is past the cap."""
    asked = server_delay(headers) if headers is not None else None
    if asked is None:
        return backoff_delay(retries_taken)
    return asked if asked <= MAX_RETRY_AFTER else None
