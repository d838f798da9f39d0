"""The one way a handler fails: raise `ApiProblem`; the app turns it into the error envelope."""

from __future__ import annotations

import errno
from typing import Any

from crownest.models import ApiError, ErrorDetails, ErrorEnvelope


class ApiProblem(Exception):
    """An error answer: HTTP status, stable code, message for people, details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.headers = headers or {}

    def envelope(self, request_id: str) -> dict[str, Any]:
        error = ApiError(
            code=self.code,
            message=self.message,
            details=ErrorDetails.from_dict(self.details),
            request_id=request_id,
        )
        return ErrorEnvelope(error=error).to_dict()


def not_found(kind: str, id_name: str, value: str) -> ApiProblem:
    """The 404 for an unknown ID, e.g. `not_found("sandbox", "sandboxId", "sbx_1")`."""
    label = kind.capitalize()
    return ApiProblem(404, f"{kind}_not_found", f"{label} {value} does not exist.", {id_name: value})


# What a file operation's OSError means to a client. The message leaves out the host path.
OS_ERRORS = {
    errno.ENOENT: (404, "file_not_found"),
    errno.ENOTDIR: (409, "not_a_directory"),
    errno.EISDIR: (409, "is_a_directory"),
    errno.EEXIST: (409, "file_exists"),
    errno.ENOTEMPTY: (409, "directory_not_empty"),
    errno.ENAMETOOLONG: (400, "invalid_path"),
    errno.ELOOP: (400, "invalid_path"),
    errno.EINVAL: (400, "invalid_path"),
}


def from_os_error(exc: OSError) -> ApiProblem | None:
    """The contract's error for a filesystem error, or None for one a client cannot cause."""
    if exc.errno not in OS_ERRORS:
        return None
    status, code = OS_ERRORS[exc.errno]
    return ApiProblem(status, code, f"The sandbox's filesystem refused: {exc.strerror}.", {"reason": exc.strerror})
