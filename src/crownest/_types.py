"""Small shared types: the "not given" sentinel, timeouts, and the request spec.

`NOT_GIVEN` is distinct from `None` because `timeout=None` means "no timeout",
while leaving the argument out means "use the client's default".
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, TypeAlias
from urllib.parse import quote

import httpx

from ._uploads import Upload


class NotGiven(enum.Enum):
    """The type of `NOT_GIVEN`: an argument the caller left out."""

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"

    def __bool__(self) -> Literal[False]:
        return False


NOT_GIVEN: Final = NotGiven.NOT_GIVEN

TimeoutTypes: TypeAlias = float | httpx.Timeout | None
"""Seconds, an `httpx.Timeout`, or `None` for no read/write/pool limit."""


ResponseKind: TypeAlias = Literal["model", "list", "page", "bytes", "text", "events", "none"]


class RequestSpec:
    """One API request, as a generated builder describes it, before it is sent.

    `parse` turns the decoded JSON body into the result (for `model`, `list`
    and `page` responses); `idempotent` says that the operation takes an
    `Idempotency-Key`, which the client fills in once per call when the caller
    gave none. `wait_ms` is how long the server may hold the answer on purpose
    (a blocking command, a wait), which the client adds to its read timeout.
    """

    __slots__ = ("method", "path", "params", "headers", "json", "content", "kind", "parse", "idempotent", "wait_ms")

    def __init__(
        self,
        method: str,
        path: str,
        *,
        kind: ResponseKind,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str | None] | None = None,
        json: Any = None,
        content: bytes | Upload | None = None,
        parse: Callable[[Any], Any] | None = None,
        idempotent: bool = False,
        wait_ms: int | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.params = drop_none(params) if params else {}
        self.headers: dict[str, str] = drop_none(headers) if headers else {}
        self.json = json
        self.content = content
        self.kind = kind
        self.parse = parse
        self.idempotent = idempotent
        self.wait_ms = wait_ms

    def with_cursor(self, cursor: str) -> RequestSpec:
        """The same request for the page after `cursor`."""
        return RequestSpec(
            self.method,
            self.path,
            kind=self.kind,
            params={**self.params, "cursor": cursor},
            headers=self.headers,
            json=self.json,
            content=self.content,
            parse=self.parse,
            idempotent=self.idempotent,
            wait_ms=self.wait_ms,
        )


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` without the keys whose value is `None` (arguments left out)."""
    return {k: v for k, v in values.items() if v is not None}


def encode_path_param(name: str, value: str) -> str:
    """Check one path parameter (a non-empty str) and percent-encode it as a path segment."""
    check_arg(name, value, "str", required=True)
    if not value:
        raise ValueError(f"{name} must be a non-empty string")
    return quote(value, safe="")


_ARG_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "bool": (bool,),
    "time": (datetime.datetime, str),
    "strs": (list, tuple),
    "map": (Mapping,),
    "callable": (Callable,),  # type: ignore[dict-item]
}


def check_arg(name: str, value: Any, kind: str, *, required: bool = False) -> None:
    """Refuse a wrongly typed argument before any request, naming it.

    `kind` is `str`, `int`, `bool`, `time` (a datetime or its RFC 3339 text), `map` (a mapping of
    str to str), `strs` (a list or tuple of str) or `callable`; `None`
    (left out) passes unless the argument is required.
    """
    if value is None:
        if required:
            raise TypeError(f"{name} is required")
        return
    ok = isinstance(value, _ARG_TYPES[kind]) and not (kind == "int" and isinstance(value, bool))
    if ok and kind == "map":
        ok = all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if ok and kind == "strs":
        ok = all(isinstance(item, str) for item in value)
    if not ok:
        expected = {
            "map": "a dict of str to str",
            "time": "a datetime or an RFC 3339 str",
            "strs": "a list of str",
        }.get(kind, kind)
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}: {value!r}")
