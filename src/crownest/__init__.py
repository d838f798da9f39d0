"""The official Python SDK for CrowNest, a cloud sandbox service.

from crownest import CrowNest

with CrowNest() as client:
    sandbox = client.sandboxes.create(template="python")
    result = sandbox.commands.run("python -c 'print(40 + 2)'")
    print(result["exitCode"], result["stdout"])
    sandbox.kill()
"""

from ._client import AsyncCrowNest, CrowNest
from ._exceptions import (
    AuthenticationError,
    BadRequestError,
    ConflictError,
    CrowNestApiError,
    CrowNestConnectionError,
    CrowNestError,
    CrowNestTimeoutError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
)
from ._pagination import AsyncPager, Page, SyncPager
from ._types import NOT_GIVEN, NotGiven
from ._version import __version__

__all__ = [
    "NOT_GIVEN",
    "AsyncCrowNest",
    "AsyncPager",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "CrowNest",
    "CrowNestApiError",
    "CrowNestConnectionError",
    "CrowNestError",
    "CrowNestTimeoutError",
    "InternalServerError",
    "NotFoundError",
    "NotGiven",
    "Page",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "SyncPager",
    "__version__",
]
