"""The README agrees with the code where a test can check it: the exception tree, the retry rule,
the client's defaults."""

from __future__ import annotations

import re
from pathlib import Path

import crownest
from crownest._generated.error_codes import RETRY_STATUSES, RETRYABLE_CODES

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _tree() -> str:
    start = README.index("```\nCrowNestError\n")
    return README[start : README.index("```", start + 3)]


def test_the_exception_tree_has_every_error_of_the_module_under_its_parent() -> None:
    tree = _tree()
    named = set(re.findall(r"\b([A-Z]\w+Error)\b", tree))
    errors = {n for n in crownest.__all__ if isinstance(getattr(crownest, n), type)}
    errors = {n for n in errors if issubclass(getattr(crownest, n), crownest.CrowNestError)}
    assert named == errors
    for line in tree.splitlines():
        names = re.findall(r"\b([A-Z]\w+Error)\b", line)
        if line.startswith("│   "):  # the second level: API errors
            assert all(issubclass(getattr(crownest, n), crownest.CrowNestApiError) for n in names), line
        elif line.startswith(("├── ", "└── ")):  # the first level, and what its note names as a subclass
            parent = getattr(crownest, names[0])
            assert [b for b in parent.__bases__ if issubclass(b, Exception)] == [crownest.CrowNestError], line
            assert all(issubclass(getattr(crownest, n), parent) for n in names[1:]), line


def test_the_retry_rule_in_the_readme_is_the_sdks() -> None:
    line = next(line for line in README.splitlines() if line.startswith("| `max_retries` |"))
    assert set(re.findall(r"`([a-z_]+)`", line)) - {"max_retries"} == RETRYABLE_CODES
    assert {int(n) for n in re.findall(r"\b([1-5]\d\d)\b", line)} == RETRY_STATUSES
    assert "5xx" not in README
