"""The operations of `openapi.yaml`, and request validation against their schemas.

The server routes and checks every request from the same spec the SDK is
generated from (`crownest/_generated/openapi.json`, written by
`make generate`), so the two cannot drift apart. The validator covers the
JSON Schema keywords the spec uses; a request that breaks one of them is a
400 `invalid_request` naming the field and the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, NoReturn

from ._errors import ApiProblem

Schema = Mapping[str, Any]


@dataclass(frozen=True)
class Parameter:
    name: str
    location: str  # "path", "query" or "header"
    required: bool
    schema: Schema


@dataclass(frozen=True)
class Operation:
    operation_id: str
    method: str
    path: str
    parameters: tuple[Parameter, ...]
    body_schema: Schema | None
    body_media_type: str | None
    body_required: bool
    success_status: int


def load_spec() -> dict[str, Any]:
    text = resources.files("crownest._generated").joinpath("openapi.json").read_text(encoding="utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec


def operations(spec: Mapping[str, Any]) -> list[Operation]:
    """Every operation in the spec, with its `$ref`s resolved."""
    found: list[Operation] = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            params = tuple(
                Parameter(p["name"], p["in"], bool(p.get("required")), p.get("schema", {}))
                for p in (resolve(spec, raw) for raw in op.get("parameters", []))
            )
            body = resolve(spec, op["requestBody"]) if "requestBody" in op else None
            media_type, body_schema = next(iter(body["content"].items())) if body else (None, None)
            found.append(
                Operation(
                    operation_id=op["operationId"],
                    method=method.upper(),
                    path=path,
                    parameters=params,
                    body_schema=body_schema["schema"] if body_schema else None,
                    body_media_type=media_type,
                    body_required=bool(body and body.get("required")),
                    success_status=min(int(code) for code in op["responses"] if code.startswith("2")),
                )
            )
    return found


def resolve(spec: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


class Validator:
    """Checks values against the spec's schemas; raises `ApiProblem` 400 on the first fault."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._spec = spec

    def check(self, value: Any, schema: Schema, field: str) -> None:
        schema = resolve(self._spec, schema)
        types = schema.get("type")
        if types is not None:
            allowed = [types] if isinstance(types, str) else list(types)
            if not any(_is_type(value, t) for t in allowed):
                invalid(field, f"must be of type {' or '.join(allowed)}")
        if value is None:
            return
        if "enum" in schema and value not in schema["enum"]:
            invalid(field, "must be one of " + ", ".join(map(str, schema["enum"])))
        if isinstance(value, str):
            self._check_string(value, schema, field)
        elif isinstance(value, int) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                invalid(field, f"must be at least {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                invalid(field, f"must be at most {schema['maximum']}")
        elif isinstance(value, dict):
            self._check_object(value, schema, field)
        elif isinstance(value, list):
            if "minItems" in schema and len(value) < schema["minItems"]:
                invalid(field, f"must have at least {schema['minItems']} items")
            if "maxItems" in schema and len(value) > schema["maxItems"]:
                invalid(field, f"must have at most {schema['maxItems']} items")
            for index, item in enumerate(value):
                self.check(item, schema.get("items", {}), f"{field}[{index}]")

    def _check_string(self, value: str, schema: Schema, field: str) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            invalid(field, f"must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            invalid(field, f"must have at most {schema['maxLength']} characters")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            invalid(field, "has characters that are not allowed")
        if "\x00" in value:
            invalid(field, "must not contain NUL")
        try:
            value.encode()
        except UnicodeEncodeError:
            invalid(field, "must be valid Unicode (it has a lone surrogate)")

    def _check_object(self, value: dict[str, Any], schema: Schema, field: str) -> None:
        prefix = f"{field}." if field else ""
        for name in schema.get("required", []):
            if name not in value:
                invalid(prefix + name, "is required")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            invalid(field, f"must have at most {schema['maxProperties']} keys")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if "propertyNames" in schema:
                self.check(name, schema["propertyNames"], f"{prefix}{name} (key)")
            if name in properties:
                self.check(item, properties[name], prefix + name)
            elif isinstance(extra, Mapping):
                self.check(item, extra, prefix + name)
            # Unknown fields are accepted and ignored, as the contract asks of clients too.


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    return False


def digits(text: str) -> int | None:
    """`text` as a number if it is 1 to 18 ASCII digits, else None (`str.isdigit` alone takes "²")."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


def invalid(field: str, reason: str) -> NoReturn:
    raise ApiProblem(400, "invalid_request", f"{field or 'The body'} {reason}.", {"field": field, "reason": reason})
