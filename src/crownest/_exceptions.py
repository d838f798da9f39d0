"""Every error the SDK raises, mapped from HTTP in one place.

    CrowNestError
    ├── CrowNestApiError              a non-2xx answer (.status, .code, .details, .request_id)
    │   ├── BadRequestError           400
    │   ├── AuthenticationError       401
    │   ├── PermissionDeniedError     403
    │   ├── NotFoundError             404
    │   ├── ConflictError             409
    │   ├── RateLimitError            429
    │   └── InternalServerError       >= 500
    ├── CrowNestConnectionError       no answer: refused, reset, DNS, ...
    │   └── CrowNestTimeoutError      no answer in time
    ├── ResponseValidationError       a 2xx answer that is not what the API promises
    ├── ResponseTooLargeError         an answer read whole that is over the size limit (64 MiB)
    ├── BodyNotReplayableError        a retry needed a one-shot upload stream again
    └── CommandFailedError            `check=True` and the command did not succeed

A command that exits non-zero is not an error: `commands.run` returns it
(unless it was called with `check=True`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import httpx

T = TypeVar("T")

if TYPE_CHECKING:
    from typing_extensions import TypeVar as TypeVarWithDefault

    from .models.command import Command

    # An `except CommandFailedError` cannot say which client raised, so there `result` is Any and
    # `result = exc.result` keeps the type `run()` gave `result`, sync or async, in mypy and pyright.
    # Only type checkers need the default (PEP 696): importing typing_extensions costs 20+ ms.
    HandleT = TypeVarWithDefault("HandleT", bound=Command, default=Any)
else:
    HandleT = TypeVar("HandleT")

__all__ = [
    "AuthenticationError",
    "BodyNotReplayableError",
    "BadRequestError",
    "CommandFailedError",
    "ConflictError",
    "CrowNestApiError",
    "CrowNestConnectionError",
    "CrowNestError",
    "CrowNestTimeoutError",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ResponseValidationError",
]

_EXCERPT_CHARS = 200


class CrowNestError(Exception):
    """The root of every error the SDK raises."""


class CrowNestApiError(CrowNestError):
    """The API answered with a non-2xx status.

    `str(e)` is the server's message, naming the Python argument where the server
    named a wire field (`ttl_ms must be at least 1000.`, where the API says
    `ttlMs`); `message` is the server's own. `code` is the stable snake_case error
    code (an open set: codes this SDK does not know arrive unchanged); an
    answer that is not the API's error envelope (an HTML 502 from a proxy, an
    empty 504) gets the generic code `http_<status>`.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        details: dict[str, Any],
        request_id: str | None,
        response: httpx.Response,
    ) -> None:
        super().__init__(_name_the_argument(message, details.get("field")))
        self.message = message
        self.status = status
        self.code = code
        self.details = details
        self.request_id = request_id
        self.response = response

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r}, request_id={self.request_id!r})"


def _name_the_argument(message: str, field: object) -> str:
    """`message` with the wire field it starts with (`details.field`) named as the Python argument
    that carries it (`ttlMs` -> `ttl_ms`; `metadata.job` stays), the wire name kept after it."""
    if not isinstance(field, str) or not message.startswith(field + " "):
        return message
    match = re.match(r"[A-Za-z0-9]+", field)
    if match is None:
        return message
    wire = match.group()
    python = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", wire).lower()
    if python == wire:
        return message
    return f"{python}{field[len(wire) :]}{message[len(field) :]} (the API calls it {wire})"


class BadRequestError(CrowNestApiError):
    """400: the request was malformed (`invalid_request`, `invalid_path`, ...)."""


class AuthenticationError(CrowNestApiError):
    """401: the API key is missing or invalid."""


class PermissionDeniedError(CrowNestApiError):
    """403: the key may not do this, or a quota is reached."""


class NotFoundError(CrowNestApiError):
    """404: no such resource (`sandbox_not_found`, `file_not_found`, ...)."""


class ConflictError(CrowNestApiError):
    """409: the resource's state forbids this (`sandbox_not_running`, ...)."""


class RateLimitError(CrowNestApiError):
    """429: too many requests; `Retry-After` says when to try again."""


class InternalServerError(CrowNestApiError):
    """A status of 500 or more: a fault in the service or a gateway before it."""


class CrowNestConnectionError(CrowNestError):
    """No answer came: the connection failed or broke."""


class CrowNestTimeoutError(CrowNestConnectionError):
    """No answer came in time."""


class ResponseValidationError(CrowNestError):
    """A 2xx answer whose body is not what the API promises.

    Carries `status`, `response` and an excerpt of the body in the message
    (`status` and `response` are None for an event of a stream whose answer began well).
    """

    def __init__(self, message: str, *, response: httpx.Response | None) -> None:
        super().__init__(message)
        self.status = None if response is None else response.status_code
        self.response = response


class ResponseTooLargeError(CrowNestError):
    """An answer larger than the SDK reads into memory (64 MiB decoded; see `_bodies`), or an
    event of a stream larger than that. Not retried. Large files come with `download()` or `stream()`.
    """

    def __init__(self, message: str, *, response: httpx.Response | None) -> None:
        super().__init__(message)
        self.status = None if response is None else response.status_code
        self.response = response


def loads(text: bytes | str) -> Any:
    """`json.loads(text)`; ValueError also for JSON nested too deeply to decode (not RecursionError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parsed(
    parse: Callable[[Any], T], body: Any, *, what: str, excerpt: Callable[[], str], response: httpx.Response | None
) -> T:
    """`parse(body)`, or ResponseValidationError (naming `what` and quoting `excerpt()`) where parsing
    a body that does not match the API raised KeyError, ValueError, TypeError, AttributeError or
    RecursionError (a value nested too deeply)."""
    try:
        return parse(body)
    except (KeyError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise ResponseValidationError(
            f"{what} does not match the API ({type(exc).__name__}: {exc}): {excerpt()!r}", response=response
        ) from None


class BodyNotReplayableError(CrowNestError):
    """An attempt failed after sending part of a one-shot upload stream, so it could not be retried.

    `__cause__` is the failure of that attempt. Pass bytes, a path or a
    seekable file instead, and the SDK retries uploads like any other call.
    """


class CommandFailedError(CrowNestError, Generic[HandleT]):
    """A command run with `check=True` did not succeed (it failed, timed out or was killed).

    Like `subprocess.CalledProcessError`: `result` is the finished command's handle,
    the very object `run()` would have returned (a `CommandHandle`, or an
    `AsyncCommandHandle` from the async client), so `result = exc.result` keeps the
    type `run()` gave `result`. The message names the command line and how it
    ended, not its output.
    """

    def __init__(self, result: HandleT) -> None:
        how = f"exited with code {result.exit_code}" if result.status == "failed" else f"ended: {result.status}"
        super().__init__(f"Command {result.command!r} {how} (command {result.id})")
        self.result: HandleT = result


class WireKeyError(KeyError):
    """A key the model does not have; the message names the key meant, when there is one."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ReadOnlyError(AttributeError):
    """An assignment to a field of a result: results are frozen."""


_ERRORS_BY_STATUS: dict[int, type[CrowNestApiError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def _error_class(status: int) -> type[CrowNestApiError]:
    if status >= 500:
        return InternalServerError
    return _ERRORS_BY_STATUS.get(status, CrowNestApiError)


@functools.cache
def _secret_field() -> re.Pattern[str]:
    """A JSON member whose name the spec marks `x-crownest-secret` (a preview's `token`), value included
    (the value may be cut off by the excerpt's end)."""
    spec = json.loads((Path(__file__).parent / "_generated" / "openapi.json").read_text(encoding="utf-8"))
    names = sorted(
        {
            name
            for schema in spec["components"]["schemas"].values()
            for name, prop in schema.get("properties", {}).items()
            if prop.get("x-crownest-secret")
        }
    )
    alternatives = "|".join(map(re.escape, names))
    return re.compile(rf'"({alternatives})"\s*:\s*"(?:[^"\\]|\\.)*"?')


def body_excerpt(response: httpx.Response) -> str:
    """The start of a (read) response body as text, for messages; secret fields' values are hidden."""
    text = response.content[: _EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    text = _secret_field().sub(lambda m: f'"{m.group(1)}": "[hidden]"', text)
    return text[:_EXCERPT_CHARS] + ("…" if len(text) > _EXCERPT_CHARS else "")


def api_error_from_response(response: httpx.Response) -> CrowNestApiError:
    """Build the error for a non-2xx response, whatever its body holds."""
    status = response.status_code
    request_id = response.headers.get("x-request-id")
    envelope: Any = None
    try:
        envelope = loads(response.content)
    except ValueError:
        pass
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        details = error.get("details")
        message = error.get("message")
        request_id = error.get("requestId") if isinstance(error.get("requestId"), str) else request_id
        return _error_class(status)(
            message if isinstance(message, str) else error["code"],
            status=status,
            code=error["code"],
            details=details if isinstance(details, dict) else {},
            request_id=request_id,
            response=response,
        )
    excerpt = body_excerpt(response).strip()
    reason = response.reason_phrase or "unknown status"
    message = f"HTTP {status} {reason}" + (f": {excerpt}" if excerpt else " (empty body)")
    return _error_class(status)(
        message, status=status, code=f"http_{status}", details={}, request_id=request_id, response=response
    )
