"""The official Python SDK for CrowNest, a cloud sandbox service.

from crownest import CrowNest

with CrowNest() as client:
    sandbox = client.sandboxes.create(template="python")
    result = sandbox.commands.run("python -c 'print(40 + 2)'")
    print(result["exitCode"], result["stdout"])
    sandbox.kill()
"""

from typing import TYPE_CHECKING, Any

from ._client import AsyncCrowNest, CrowNest
from ._exceptions import (
    AuthenticationError,
    BadRequestError,
    BodyNotReplayableError,
    CommandFailedError,
    ConflictError,
    CrowNestApiError,
    CrowNestConnectionError,
    CrowNestError,
    CrowNestTimeoutError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ReadOnlyError,
    ResponseTooLargeError,
    ResponseValidationError,
    WireKeyError,
)
from ._http_clients import DefaultAsyncHttpxClient, DefaultHttpxClient
from ._pagination import AsyncPage, AsyncPager, Page, SyncPager
from ._response import AsyncStreamedResponse, RawResponse, StreamedResponse
from ._streams import AsyncStream, Stream
from ._types import NOT_GIVEN, NotGiven
from ._version import __version__

if TYPE_CHECKING:
    from ._handle import (
        AsyncCommandHandle,
        AsyncPtyHandle,
        AsyncSandboxHandle,
        AsyncWatchHandle,
        CommandHandle,
        OutputChunk,
        PtyHandle,
        SandboxHandle,
        WatchHandle,
    )

__all__ = [
    "NOT_GIVEN",
    "AsyncCrowNest",
    "AsyncCommandHandle",
    "AsyncPage",
    "AsyncPager",
    "AsyncPtyHandle",
    "AsyncSandboxHandle",
    "AsyncStream",
    "AsyncStreamedResponse",
    "AsyncWatchHandle",
    "AuthenticationError",
    "BodyNotReplayableError",
    "BadRequestError",
    "CommandFailedError",
    "CommandHandle",
    "ConflictError",
    "CrowNest",
    "CrowNestApiError",
    "CrowNestConnectionError",
    "CrowNestError",
    "CrowNestTimeoutError",
    "DefaultAsyncHttpxClient",
    "DefaultHttpxClient",
    "InternalServerError",
    "NotFoundError",
    "NotGiven",
    "OutputChunk",
    "Page",
    "PermissionDeniedError",
    "PtyHandle",
    "RateLimitError",
    "ResponseTooLargeError",
    "RawResponse",
    "ReadOnlyError",
    "ResponseValidationError",
    "SandboxHandle",
    "Stream",
    "StreamedResponse",
    "SyncPager",
    "WatchHandle",
    "WireKeyError",
    "__version__",
]


_HANDLES = (
    "SandboxHandle",
    "AsyncSandboxHandle",
    "CommandHandle",
    "AsyncCommandHandle",
    "OutputChunk",
    "PtyHandle",
    "AsyncPtyHandle",
    "WatchHandle",
    "AsyncWatchHandle",
)


def __getattr__(name: str) -> Any:
    # The handles import the generated models; load them on first use to keep `import crownest` light.
    if name in _HANDLES:
        from . import _handle

        return getattr(_handle, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
