"""The operation table that `resources.py.jinja` renders.

Each `Operation` says, in plain strings, what one SDK method looks like: its
name, its parameters (with their Python types, the wire name they travel
under and the expression that builds the value sent), the response kind and
how to parse it. Deciding all of this here keeps the template free of logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openapi_python_client.parser.openapi import Endpoint
from openapi_python_client.parser.properties import (
    AnyProperty,
    BooleanProperty,
    DateTimeProperty,
    EnumProperty,
    FileProperty,
    IntProperty,
    ListProperty,
    ModelProperty,
    StringProperty,
)
from openapi_python_client.parser.responses import TEXT_SOURCE
from openapi_python_client.strings import snake_case

SANDBOX_ID = "sandbox_id"
# The sandbox handle's own tag: its operations on one sandbox (`{sandboxId}` in the path) are
# methods of the handle itself (`sandbox.kill()`), not of a scoped resource (`sandbox.files`).
HANDLE_TAG = "sandboxes"
# The model the sandbox handle is; a handle method that answers with it (200) updates the handle in place,
# one that answers 201 with it (a new sandbox, as `fork`) returns a new handle.
HANDLE_MODEL = "Sandbox"
# `x-crownest-scope` values: `sandbox` puts an operation on the sandbox handle only.
SCOPES = ("sandbox",)


def text(value: Any) -> str:
    """Spec text (wrapped by openapi-python-client since 0.29.1) as a plain str."""
    if value is None:
        return ""
    if hasattr(value, "get_untrusted_value"):
        return value.get_untrusted_value()
    if hasattr(value, "as_unembedded_code"):
        return value.as_unembedded_code()
    return str(value)


@dataclass
class Param:
    python_name: str
    wire_name: str
    location: str  # path, query, header, json, content, option (not sent: it goes with another value)
    annotation: str  # the type without "| None"
    required: bool
    description: str
    check: str | None  # kind for check_arg, or None when the annotation is not checked
    send: str  # expression for the value sent

    @property
    def is_sandbox_id(self) -> bool:
        """The path parameter that a sandbox-scoped class binds."""
        return self.location == "path" and self.python_name == SANDBOX_ID

    @property
    def signature(self) -> str:
        if self.required:
            return f"{self.python_name}: {self.annotation}"
        return f"{self.python_name}: {self.annotation} | None = None"


@dataclass
class Operation:
    name: str  # snake_case operationId
    method_name: str
    on_client: bool  # on the client's resource: `client.<tag>.<method>(sandbox_id, ...)`
    on_scoped: bool  # on the handle's resource: `sandbox.<tag>.<method>(...)`
    on_handle: bool  # on the handle itself: `sandbox.<handle_method>(...)`
    handle_method: str  # its name there (`x-crownest-handle-method`, else `method_name`)
    summary: str
    description: str
    http_method: str
    path: str  # f-string body
    params: list[Param]
    idempotent: bool
    kind: str  # model, list, page, bytes, text, events, none
    parse: str  # expression, or "None"
    result: str  # the parsed type (model, item type, bytes, ...)
    handle: str | None  # hand-written handle class that wraps the result (or each item)
    imports: set[str] = field(default_factory=set)  # model class names
    text_method: str | None = None  # name of a twin that decodes a bytes result as UTF-8
    content_type: str | None = None  # media type of a non-JSON request body
    accept: str | None = None  # media type of a non-JSON response, sent as Accept
    wait_ms: str | None = None  # expression: milliseconds the server may hold the answer (x-crownest-waits-for)
    download_method: str | None = None  # name of a twin that streams a bytes result into a file
    stream_method: str | None = None  # name of a twin that gives a bytes result as a stream of chunks
    run_start: str | None = None  # builder of the operation that starts the same command (x-crownest-run)
    run_stdin: str | None = None  # its parameter whose value, given, closes the command's stdin
    creates: bool = False  # answers 201: a new object, never the one the handle is
    archive: dict[str, str] = field(default_factory=dict)  # x-crownest-archive: twin kind -> method name

    @property
    def streams(self) -> bool:
        """Whether a method gives the answer as a stream (`events`, or a `stream_method` twin)."""
        return self.kind == "events" or self.stream_method is not None

    @property
    def updates_handle(self) -> bool:
        """Whether the handle's method puts the answer into the handle's fields (and returns None)."""
        return self.on_handle and self.kind == "model" and self.result == HANDLE_MODEL and not self.creates

    @property
    def builder(self) -> str:
        return f"_{self.name}_request"

    def params_for(self, scoped: bool) -> list[Param]:
        """The method's parameters: all of them, or without `sandbox_id` on the sandbox-scoped twin."""
        return [p for p in self.params if not (scoped and p.is_sandbox_id)]

    def signature(self, scoped: bool) -> list[str]:
        """Method parameters: required ones positional-or-keyword, then `*`, then optional ones."""
        params = self.params_for(scoped)
        required = [p.signature for p in params if p.required]
        optional = [p.signature for p in params if not p.required]
        return [*required, "*", *optional]

    def download_signature(self, scoped: bool) -> list[str]:
        """The download twin's parameters: the required ones, then `to`, then `*` and the optional ones."""
        params = self.params_for(scoped)
        required = [p.signature for p in params if p.required]
        optional = [p.signature for p in params if not p.required]
        return [*required, "to: str | os.PathLike[str]", "*", *optional]

    def archive_signature(self, scoped: bool, first: str, second: str) -> list[str]:
        """An archive twin's parameters: `sandbox_id` unless scoped, then `first` and `second`, then `*`."""
        own = [p.signature for p in self.params_for(scoped) if p.is_sandbox_id]
        return [*own, first, *([second] if second else []), "*"]

    def archive_call_args(self, scoped: bool, path: str) -> list[str]:
        """Arguments for the builder call of an archive twin: `path` sent as the directory, no content yet."""
        given = {"path": path, "data": 'b""', "progress": "None"}
        return [
            f"{p.python_name}={given[p.python_name]}" if p.python_name in given else arg
            for p, arg in zip(self.params, self.call_args(scoped), strict=True)
        ]

    def call_args(self, scoped: bool) -> list[str]:
        """Arguments for the builder call, `sandbox_id` bound when scoped."""
        return [
            f"{p.python_name}={'self._sandbox_id' if scoped and p.is_sandbox_id else p.python_name}"
            for p in self.params
        ]

    def start_call_args(self, scoped: bool) -> list[str]:
        """Arguments for the start builder of an `x-crownest-run` operation: the same ones, with
        `run_stdin` given (empty when left out) so that the command's stdin is closed as `run` does."""
        stdin = self.run_stdin
        return [
            f'{stdin}="" if {stdin} is None else {stdin}' if p.python_name == stdin else arg
            for p, arg in zip(self.params, self.call_args(scoped), strict=True)
        ]

    def returns(self, asynchronous: bool) -> str:
        """The "Returns:" line of the docstring: what the method gives back."""
        item = self.item_type(asynchronous)
        return {
            "page": f"A pager over every `{item}` across pages.",
            "list": f"A list of `{item}`.",
            "events": f"The `{item}`s as they arrive (the request is sent when iteration begins); after a "
            "broken connection the stream resumes after the last event received.",
            "none": "None.",
            "bytes": "The content, as bytes.",
            "text": "The text.",
        }.get(self.kind, "The answer's one field, a `bool`." if item == "bool" else f"The `{item}`.")

    def item_type(self, asynchronous: bool) -> str:
        if self.handle:
            return ("Async" if asynchronous else "") + self.handle
        return self.result

    def return_type(self, asynchronous: bool) -> str:
        item = self.item_type(asynchronous)
        if self.kind == "page":
            return f"{'Async' if asynchronous else 'Sync'}Pager[{item}]"
        if self.kind == "events":
            return f"{'Async' if asynchronous else ''}Stream[{item}]"
        if self.kind == "list":
            return f"builtins.list[{item}]"
        return item


def _annotation(prop: Any, imports: set[str]) -> tuple[str, str | None, str]:
    """(annotation, check kind, send expression template with {v}) for one property."""
    if isinstance(prop, EnumProperty):
        imports.add(prop.class_info.name)
        return f"{prop.class_info.name} | str", "str", "{v}"
    if isinstance(prop, ModelProperty) and not prop.required_properties and not prop.optional_properties:
        return "Mapping[str, str]", "map", "dict({v})"
    if isinstance(prop, ModelProperty):
        imports.add(prop.class_info.name)
        return prop.class_info.name, None, "{v}.to_dict()"
    if isinstance(prop, BooleanProperty):
        return "bool", "bool", "{v}"
    if isinstance(prop, IntProperty):
        return "int", "int", "{v}"
    if isinstance(prop, StringProperty):
        return "str", "str", "{v}"
    if isinstance(prop, ListProperty) and isinstance(prop.inner_property, StringProperty):
        return "Sequence[str]", "strs", "list({v})"
    if isinstance(prop, DateTimeProperty):  # an aware datetime, or the RFC 3339 text itself
        return "datetime.datetime | str", "time", "{v}.isoformat() if isinstance({v}, datetime.datetime) else {v}"
    raise ValueError(f"no SDK mapping for a {type(prop).__name__}")


# Uploads take a progress callback; it is not sent, it goes with the body (see `_uploads`).
_PROGRESS = Param(
    "progress",
    "",
    "option",
    "Progress",
    False,
    "Called with (bytes sent, total bytes or None) as the content goes out; it starts again at 0 on a retry.",
    "callable",
    "progress",
)

# A query parameter marked `x-crownest-map` takes a dict and sends repeated `key:value` items.
_KEY_VALUE_MAP = ("Mapping[str, str]", "key_values", '[f"{{k}}:{{x}}" for k, x in {v}.items()]')


def _param(prop: Any, location: str, raw: dict[str, Any], imports: set[str]) -> Param:
    annotation, check, send = _KEY_VALUE_MAP if raw.get("x-crownest-map") else _annotation(prop, imports)
    value = send.format(v=prop.python_name)
    if not prop.required and send != "{v}":
        value = f"None if {prop.python_name} is None else {value}"
    return Param(
        python_name=str(prop.python_name),
        wire_name=text(prop.name),
        location=location,
        annotation=annotation,
        required=bool(prop.required),
        description=raw.get("description") or text(prop.description),
        check=check,
        send=value,
    )


def _raw_body_properties(raw_op: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """The properties of the operation's JSON body schema, as written in the spec, by wire name."""
    schema = raw_op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[1]]
    return dict(schema.get("properties", {}))


def _take_bytes(params: list[Param], raw_props: dict[str, Any]) -> None:
    """A string field marked `x-crownest-bytes: <field>` takes str or bytes: bytes are sent base64-encoded,
    with `<field>` (an enum with a `base64` value) set to `base64`."""
    for p in params:
        flag = raw_props.get(p.wire_name, {}).get("x-crownest-bytes")
        if flag is None:
            continue
        [encoding] = [q for q in params if q.wire_name == flag]
        if "base64" not in raw_props[flag].get("enum", []):
            raise ValueError(f"{p.wire_name}: x-crownest-bytes names {flag!r}, which has no `base64` value")
        p.annotation, p.check = "str | bytes", "str_or_bytes"
        p.send = f"text_or_base64({p.python_name})"
        encoding.send = f'"base64" if isinstance({p.python_name}, bytes) else {encoding.send}'


def _raw_params(raw_op: dict[str, Any], components: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The operation's parameters as written in the spec, `$ref`s resolved, by python name."""
    params = [components[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p for p in raw_op.get("parameters", [])]
    return {snake_case(p["name"]): p for p in params}


def _ok_content(raw_op: dict[str, Any]) -> dict[str, Any]:
    """The media types of the first 2xx response, as written in the spec."""
    first_ok = min(code for code in raw_op["responses"] if code.startswith("2"))
    return dict(raw_op["responses"][first_ok].get("content", {}))


def _response(
    endpoint: Endpoint, raw_content: dict[str, Any], handles: dict[str, str], imports: set[str], has_cursor: bool
) -> tuple[str, str, str, str | None]:
    """(kind, parse expression, result type, handle) of the first 2xx response (`raw_content` its media types)."""
    ok = [r for r in endpoint.responses.patterns if 200 <= r.status_code.range[0] < 300]
    prop = ok[0].prop
    if "text/event-stream" in raw_content:  # the string's contentSchema describes one event
        event = raw_content["text/event-stream"]["schema"]["contentSchema"]["$ref"].rsplit("/", 1)[1]
        imports.add(event)
        return "events", f"{event}.from_dict", event, None
    if ok[0].source == TEXT_SOURCE:
        return "text", "None", "str", None
    if isinstance(prop, AnyProperty):
        return "none", "None", "None", None
    if isinstance(prop, FileProperty):
        return "bytes", "None", "bytes", None
    if isinstance(prop, StringProperty):
        return "text", "None", "str", None
    if not isinstance(prop, ModelProperty):
        raise ValueError(f"{endpoint.name}: no SDK mapping for a {type(prop).__name__} response")
    model = prop.class_info.name
    imports.add(model)
    props = {p.python_name: p for p in [*prop.required_properties, *prop.optional_properties]}
    data = props.get("data")
    if isinstance(data, ListProperty) and isinstance(data.inner_property, ModelProperty):
        item = data.inner_property.class_info.name
        imports.add(item)
        if set(props) == {"data", "next_cursor"} and has_cursor:
            return "page", f"{model}.from_dict", item, handles.get(item)
        if set(props) == {"data"}:
            return "list", f"lambda body: {model}.from_dict(body).data", item, handles.get(item)
    if len(props) == 1 and isinstance(only := next(iter(props.values())), BooleanProperty):
        return "model", f"lambda body: {model}.from_dict(body).{only.python_name}", "bool", None
    return "model", f"{model}.from_dict", model, handles.get(model)


def build_operation(
    endpoint: Endpoint, raw_op: dict[str, Any], handles: dict[str, str], components: dict[str, Any]
) -> Operation:
    """The SDK method for `endpoint`; `raw_op` is its spec text, `components` the spec's shared components."""
    imports: set[str] = set()
    raw_params = _raw_params(raw_op, components["parameters"])
    params: list[Param] = []
    for prop in endpoint.path_parameters:
        p = _param(prop, "path", raw_params.get(prop.python_name, {}), imports)
        p.check = None  # encode_path_param checks it
        p.send = f"encode_path_param({p.python_name!r}, {p.python_name})"
        params.append(p)
    for prop in endpoint.query_parameters:
        params.append(_param(prop, "query", raw_params.get(prop.python_name, {}), imports))
    content_type = None
    for body in endpoint.bodies:
        if isinstance(body.prop, ModelProperty):
            raw_props = _raw_body_properties(raw_op, components["schemas"])
            for prop in [*body.prop.required_properties, *body.prop.optional_properties]:
                p = _param(prop, "json", raw_props.get(text(prop.name), {}), imports)
                p.required = p.required and bool(body.prop.required)
                params.append(p)
            _take_bytes(params, raw_props)
        else:
            content_type = text(body.content_type)
            params.append(
                Param(
                    "data",
                    "",
                    "content",
                    "FileContent",
                    True,
                    text(body.prop.description),
                    None,
                    'file_content("data", data, progress)',
                )
            )
            params.append(_PROGRESS)
    idempotent = False
    for prop in endpoint.header_parameters:
        idempotent = idempotent or text(prop.name) == "Idempotency-Key"
        p = _param(prop, "header", raw_params.get(prop.python_name, {}), imports)
        p.check = "header" if p.check == "str" else p.check  # a header value is printable ASCII only
        params.append(p)
    path = text(endpoint.path)
    for p in params:
        if p.location == "path":
            path = path.replace("{" + p.python_name + "}", "{" + p.send + "}")
    has_cursor = any(p.wire_name == "cursor" for p in params)
    raw_content = _ok_content(raw_op)
    kind, parse, result, handle = _response(endpoint, raw_content, handles, imports, has_cursor)
    media = next(iter(raw_content), None)
    accept = media if media not in (None, "application/json") else None  # JSON is the client's default
    wait_ms = None
    if "x-crownest-waits-for" in raw_op:
        waits = raw_op["x-crownest-waits-for"]
        [param] = [p for p in params if p.wire_name == waits["field"]]
        given = param.python_name
        if "zero" in waits:  # 0 stands for the server's cap, which the server may hold the answer for
            given = f"({param.python_name} or {int(waits['zero'])})"
        wait_ms = f"{given} if {param.python_name} is not None else {int(waits['default'])}"
    run = raw_op.get("x-crownest-run")
    name = str(snake_case(endpoint.name))
    if "x-crownest-method" not in raw_op:
        raise ValueError(f"{name}: no x-crownest-method (the name of its SDK method)")
    in_sandbox = any(p.is_sandbox_id for p in params)
    own_tag = HANDLE_TAG in endpoint.tags
    scope = raw_op.get("x-crownest-scope")
    if scope is not None and (scope not in SCOPES or not in_sandbox or own_tag):
        raise ValueError(
            f"{name}: x-crownest-scope {scope!r}: the only value is 'sandbox', on an operation of a sandbox "
            f"(`{{sandboxId}}` in its path) outside the {HANDLE_TAG!r} tag"
        )
    if "x-crownest-handle-method" in raw_op and not (own_tag and in_sandbox):
        raise ValueError(f"{name}: x-crownest-handle-method is for {HANDLE_TAG!r} operations on one sandbox")
    twins = (
        "x-crownest-run",
        "x-crownest-text-method",
        "x-crownest-download-method",
        "x-crownest-stream-method",
        "x-crownest-archive",
    )
    if own_tag and in_sandbox and any(key in raw_op for key in twins):
        raise ValueError(f"{name}: the sandbox handle's own methods take none of {', '.join(twins)}")
    return Operation(
        name=name,
        method_name=raw_op["x-crownest-method"],
        on_client=scope != "sandbox",
        on_scoped=in_sandbox and not own_tag,
        on_handle=in_sandbox and own_tag,
        handle_method=raw_op.get("x-crownest-handle-method", raw_op["x-crownest-method"]),
        summary=text(endpoint.summary),
        description=text(endpoint.description),
        http_method=endpoint.method.upper(),
        path=path,
        params=params,
        idempotent=idempotent,
        kind=kind,
        parse=parse,
        result=result,
        handle=handle,
        imports=imports,
        text_method=raw_op.get("x-crownest-text-method"),
        content_type=content_type,
        accept=accept,
        wait_ms=wait_ms,
        download_method=raw_op.get("x-crownest-download-method"),
        stream_method=raw_op.get("x-crownest-stream-method"),
        run_start=f"_{snake_case(run['start'])}_request" if run else None,
        run_stdin=snake_case(run["stdin"]) if run else None,
        creates=min(code for code in raw_op["responses"] if code.startswith("2")) == "201",
        archive=_archive(name, raw_op, params, kind),
    )


# `x-crownest-archive` twins: on an operation that writes a tar body into `path`, `directory` (a local
# folder's archive, built as it is sent) and `many` (an archive of a mapping of paths to contents);
# on one that reads `path` as a tar answer, `directory` (extracted into a local folder).
_ARCHIVE_TWINS = {"write": ("directory", "many"), "read": ("directory",)}


def _archive(name: str, raw_op: dict[str, Any], params: list[Param], kind: str) -> dict[str, str]:
    twins = raw_op.get("x-crownest-archive")
    if twins is None:
        return {}
    role = "write" if any(p.location == "content" for p in params) else "read"
    others = [p.python_name for p in params if p.required and not p.is_sandbox_id and p.location != "content"]
    if others != ["path"] or (role == "read" and kind != "bytes") or set(twins) - set(_ARCHIVE_TWINS[role]):
        raise ValueError(
            f"{name}: x-crownest-archive takes {', '.join(_ARCHIVE_TWINS[role])} on an operation whose one "
            "required parameter is `path` and that sends a tar body or answers with one"
        )
    return {f"{role}_{twin}": str(method) for twin, method in twins.items()}
