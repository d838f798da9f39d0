"""Small shared types: the "not given" sentinel, timeouts, and the request spec.

`NOT_GIVEN` is distinct from `None` because `timeout=None` means "no timeout",
while leaving the argument out means "use the client's default".
"""

from __future__ import annotations

import base64
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


Headers: TypeAlias = Mapping[str, str]
"""Request headers: `extra_headers=` of every method, `default_headers=` of a client."""
Query: TypeAlias = Mapping[str, Any]
"""Query parameters added to a request: `extra_query=` of every method."""
Body: TypeAlias = Mapping[str, Any]
"""JSON fields added to a request's body: `extra_body=` of every method."""

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


def with_extras(
    spec: RequestSpec, extra_headers: Headers | None, extra_query: Query | None, extra_body: Body | None
) -> RequestSpec:
    """`spec` with the caller's `extra_headers`, `extra_query` and `extra_body` added (each wins over
    what the method itself sends). A body is JSON: `extra_body` on an upload of raw content is refused."""
    check_arg("extra_headers", extra_headers, "map")
    check_arg("extra_query", extra_query, "mapping")
    check_arg("extra_body", extra_body, "mapping")
    if extra_headers:
        spec.headers = {**spec.headers, **extra_headers}
    if extra_query:
        spec.params = {**spec.params, **extra_query}
    if extra_body:
        if spec.content is not None:
            raise TypeError(f"extra_body cannot be added to {spec.method} {spec.path}: its body is raw content")
        spec.json = {**(spec.json or {}), **extra_body}
    return spec


def drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` without the keys whose value is `None` (arguments left out)."""
    return {k: v for k, v in values.items() if v is not None}


def encode_path_param(name: str, value: str) -> str:
    """Check one path parameter and percent-encode it as one path segment.

    Empty, `.` and `..` are refused before any request: percent-encoding leaves dots alone, and
    URL normalisation removes such a segment, which would send the call to another route
    (`previews.delete("..")` would become `DELETE /v1/sandboxes/{id}`).
    """
    check_arg(name, value, "str", required=True)
    if value in ("", ".", ".."):
        raise ValueError(f"{name} must be a non-empty string other than '.' and '..', got {value!r}")
    return quote(value, safe="")


_ARG_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "header": (str,),
    "int": (int,),
    "bool": (bool,),
    "time": (datetime.datetime, str),
    "map": (Mapping,),
    "strs": (list, tuple),
    "key_values": (Mapping,),
    "mapping": (Mapping,),
    "callable": (Callable,),  # type: ignore[dict-item]
    "str_or_bytes": (str, bytes),
}


def text_or_base64(value: str | bytes) -> str:
    """A JSON string for a field that takes text or bytes (`x-crownest-bytes`): text as is, bytes base64-encoded."""
    return value if isinstance(value, str) else base64.b64encode(value).decode("ascii")


def check_arg(name: str, value: Any, kind: str, *, required: bool = False) -> None:
    """Refuse a wrongly typed argument before any request, naming it.

    `kind` is `str`, `header` (a str sent as a header value), `int`, `bool`, `str_or_bytes`, `time`
    (a datetime or its RFC 3339 text), `map` (a mapping of str to str), `key_values` (a map sent as
    `key:value` items: keys without `:`), `mapping` (any mapping), `strs` (a list or tuple of str) or
    `callable`; `None` (left out) passes unless the argument is required.
    """
    if value is None:
        if required:
            raise TypeError(f"{name} is required")
        return
    ok = isinstance(value, _ARG_TYPES[kind]) and not (kind == "int" and isinstance(value, bool))
    if ok and kind in ("map", "key_values"):
        ok = all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    if ok and kind == "strs":
        ok = all(isinstance(item, str) for item in value)
    if not ok:
        expected = {
            "map": "a dict of str to str",
            "time": "a datetime or an RFC 3339 str",
            "key_values": "a dict of str to str",
            "mapping": "a dict",
            "header": "str",
            "strs": "a list of str",
            "str_or_bytes": "str or bytes",
        }.get(kind, kind)
        if kind in ("map", "key_values") and isinstance(value, Mapping):  # name the entry: an env value may be a secret
            bad = next((k for k, v in value.items() if not (isinstance(k, str) and isinstance(v, str))), None)
            raise TypeError(f"{name} must be {expected}; the entry {bad!r} is not (its value is not shown)")
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}: {value!r}")
    if kind == "key_values" and any(not k or ":" in k for k in value):
        raise ValueError(f"{name}: each key must be non-empty and without ':' (it is sent as 'key:value')")
    if kind == "header" and not is_header_value(value):
        raise ValueError(f"{name} must be 1 or more printable ASCII characters (it is sent as a header)")


def is_header_value(value: str) -> bool:
    """Whether `value` can be sent as an HTTP header value as it is: printable ASCII, not empty,
    no space at either end (which HTTP would strip) and no CR or LF (which would end the header)."""
    return bool(value) and value.isascii() and value.isprintable() and value.strip() == value
