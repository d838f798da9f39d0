"""MkDocs hooks: pages written at build time from openapi.yaml and the code, never by hand.

A page asks for a generated part with a marker comment on its own line:

- `<!-- crownest:error-codes -->`: the API error reference, one row per code
  in the spec's `x-crownest-error-codes`, with the exception the SDK raises
  and whether it retries (both read from the SDK itself).
- `<!-- crownest:models -->` and `<!-- crownest:resources -->`: a
  mkdocstrings entry for every model and every resource class.
- `<!-- crownest:enum <Schema> -->`: a table of the enum's values and what
  each means (`x-crownest-enum-descriptions`); `<!-- crownest:transitions
  <Schema> -->`: its state diagram (`x-crownest-transitions`).
- `<!-- crownest:clients -->` and `<!-- crownest:sandbox-handles -->`: the
  entries of the clients and the sandbox handles, with the resources and
  methods the generated mixins give them.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import yaml

from crownest._exceptions import _error_class
from crownest._generated.resources import CLIENT_RESOURCES, RESOURCES, SANDBOX_METHODS, SANDBOX_RESOURCES
from crownest._retries import is_retryable_status
from crownest.models import __all__ as MODELS

ROOT = Path(__file__).resolve().parent.parent


def error_codes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The error codes the spec lists, in its order."""
    envelope = spec["components"]["schemas"]["ApiError"]
    return list(envelope["properties"]["code"]["x-crownest-error-codes"])


def error_table(spec: dict[str, Any]) -> str:
    rows = [
        "| Code | Status | Exception | Retried by the SDK | Cause | What to do |",
        "|---|---|---|---|---|---|",
    ]
    for entry in error_codes(spec):
        code, status = entry["code"], int(entry["status"])
        retried = "yes" if is_retryable_status(status, code) else "no"
        rows.append(
            f'| <a id="{code}"></a>`{code}` | {status} | `{_error_class(status).__name__}` | {retried} '
            f"| {entry['cause']} | {entry['fix']} |"
        )
    return "\n".join(rows)


def models() -> str:
    import crownest.models

    return "\n\n".join(f"::: {getattr(crownest.models, name).__module__}.{name}" for name in MODELS)


def resources() -> str:
    entries = []
    for tag in RESOURCES:
        module = importlib.import_module(f"crownest._generated.resources.{tag}")
        entries.append(f"## {tag.title()}\n\n{module.__doc__}")
        entries += [f"::: crownest._generated.resources.{tag}.{name}" for name in module.__all__]
    return "\n\n".join(entries)


def entries(names: list[str], inherited: tuple[str, ...]) -> str:
    """mkdocstrings entries for `names`, each with the `inherited` members its mixins give it."""
    members = ", ".join(inherited)
    return "\n\n".join(f"::: {name}\n    options:\n      inherited_members: [{members}]" for name in names)


def enum_table(schema: dict[str, Any]) -> str:
    """The enum's values, each with its description, in the spec's order."""
    described = schema.get("x-crownest-enum-descriptions", {})
    rows = ["| Value | Meaning |", "|---|---|"]
    rows += [f"| `{value}` | {described.get(value, '')} |" for value in schema["enum"]]
    return "\n".join(rows)


def transitions(schema: dict[str, Any]) -> str:
    """A Mermaid state diagram of the enum's `x-crownest-transitions`; states that lead nowhere are final."""
    moves = schema["x-crownest-transitions"]
    lines = ["```mermaid", "stateDiagram-v2"]
    lines += [f"    {move.get('from', '[*]')} --> {move['to']}: {move['when']}" for move in moves]
    leaving = {move.get("from") for move in moves}
    lines += [f"    {value} --> [*]" for value in schema["enum"] if value not in leaving]
    return "\n".join([*lines, "```"])


def spec_markers(markdown: str, spec: dict[str, Any]) -> str:
    """Replace each `<!-- crownest:<kind> <Schema> -->` marker with what the spec says of that schema."""
    writers = {"enum": enum_table, "transitions": transitions}
    schemas = spec["components"]["schemas"]
    return re.sub(
        r"<!-- crownest:(enum|transitions) (\w+) -->",
        lambda m: writers[m.group(1)](schemas[m.group(2)]),
        markdown,
    )


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if re.search(r"<!-- crownest:(error-codes|enum|transitions)\b", markdown):
        spec = yaml.safe_load((ROOT / "openapi.yaml").read_text())
        markdown = markdown.replace("<!-- crownest:error-codes -->", error_table(spec))
        markdown = spec_markers(markdown, spec)
    markdown = markdown.replace("<!-- crownest:models -->", models())
    clients = ["crownest.CrowNest", "crownest.AsyncCrowNest"]
    markdown = markdown.replace(
        "<!-- crownest:clients -->",
        entries(clients, ("close", "with_raw_response", "with_streaming_response", *CLIENT_RESOURCES)),
    )
    handles = ["crownest.SandboxHandle", "crownest.AsyncSandboxHandle"]
    markdown = markdown.replace(
        "<!-- crownest:sandbox-handles -->", entries(handles, (*SANDBOX_METHODS, *SANDBOX_RESOURCES))
    )
    return markdown.replace("<!-- crownest:resources -->", resources())
