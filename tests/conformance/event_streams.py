"""Schemathesis hooks for tests/test_local_conformance.py: a check that every event of a
`text/event-stream` answer conforms to the `contentSchema` its response declares.

Schemathesis's own schema check reads such a response's `schema` (here `type: string`, the body) as
the schema of each event, so schemathesis.toml turns it off for the event stream and this check
takes its place.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import schemathesis

from crownest_local._spec import load_spec

SPEC = load_spec()  # openapi.yaml, as the generator copies it into the package
EVENT_STREAM = "text/event-stream"


def parse_events(body: str) -> list[dict[str, Any]]:
    """The events of a Server-Sent Events body, as `{event, data, id, retry}` objects (the WHATWG
    rules that matter here: blank lines end events, `data` lines join, a comment line starts with `:`)."""
    events: list[dict[str, Any]] = []
    event: dict[str, Any] = {}
    for line in [*body.replace("\r\n", "\n").split("\n"), ""]:
        if not line:
            if "data" in event:
                events.append(event)
            event = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data" and "data" in event:
                event["data"] += "\n" + value
            elif field == "retry":
                event["retry"] = int(value) if value.isdigit() else value
            elif field in {"event", "data", "id"}:
                event[field] = value
    return events


def event_schema(operation: dict[str, Any], status: int) -> dict[str, Any] | None:
    """The `contentSchema` the operation's `status` (or `NXX`) response declares for its events."""
    responses = operation.get("responses", {})
    response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or {}
    schema = response.get("content", {}).get(EVENT_STREAM, {}).get("schema", {}).get("contentSchema")
    if schema is None:
        return None
    return {**schema, "components": SPEC["components"]}  # `$ref`s resolve inside this document


def check_events(body: str, schema: dict[str, Any]) -> None:
    """Raise AssertionError naming the first event of `body` that `schema` rejects."""
    validator = jsonschema_rs.Draft202012Validator(schema)
    for number, event in enumerate(parse_events(body), 1):
        for error in validator.iter_errors(event):
            raise AssertionError(f"event {number} {event!r} does not conform to its contentSchema: {error.message}")


@schemathesis.check
def event_stream_conformance(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every event of an event-stream answer conforms to the response's `contentSchema`."""
    content_type = ",".join(response.headers.get("content-type", []))
    if not content_type.startswith(EVENT_STREAM):
        return None
    schema = event_schema(SPEC["paths"][case.operation.path][case.method.lower()], response.status_code)
    if schema is None:
        return None
    check_events(response.content.decode(), schema)
    return True


# A tar body is bytes like an octet-stream one (`writeArchive`); Schemathesis has no serializer of its own for it.
schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
