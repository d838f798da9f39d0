"""The documentation site: it builds with no warning, the reference has every public name and
nothing private, and the error page has every error code of openapi.yaml."""

from __future__ import annotations

import enum
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import crownest
import crownest.models
from crownest._generated.resources import CLIENT_RESOURCES, RESOURCES
from crownest._retries import is_retryable_status
from crownest_local import LocalServer

ROOT = Path(__file__).resolve().parent.parent
# openapi.yaml as JSON, written by `make generate` (and checked to match by `make check-generated`).
SPEC = json.loads((ROOT / "src" / "crownest" / "_generated" / "openapi.json").read_text())
HANDLES = [crownest.SandboxHandle, crownest.CommandHandle, crownest.AsyncSandboxHandle, crownest.AsyncCommandHandle]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=os.environ | {"NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert not re.search(r"^(WARNING|ERROR)", done.stderr, re.M), done.stderr
    yield out


def anchors(site: Path, page: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', (site / page / "index.html").read_text()))


def reference_anchors(site: Path) -> set[str]:
    pages = ["clients", "resources", "handles", "models", "exceptions", "local"]
    return set().union(*(anchors(site, f"reference/{page}") for page in pages))


def documented(ids: set[str], name: str) -> bool:
    """Whether `name` (a `Class` or `Class.member`) has an entry, whatever module path it is under."""
    return any(i == f"crownest.{name}" or i.endswith(f".{name}") for i in ids)


def own_public_methods(cls: type) -> list[str]:
    return [n for n, v in vars(cls).items() if not n.startswith("_") and (callable(v) or isinstance(v, property))]


def public_names() -> list[str]:
    names = [n for n in crownest.__all__ if n != "__version__"] + list(crownest.models.__all__)
    for name in crownest.models.__all__:
        model = getattr(crownest.models, name)
        if issubclass(model, enum.Enum):
            names += [f"{name}.{member.name}" for member in model]
    for tag in RESOURCES:
        module = importlib.import_module(f"crownest._generated.resources.{tag}")
        for cls_name in module.__all__:
            cls = getattr(module, cls_name)
            names += [cls_name] + [f"{cls_name}.{m}" for m in own_public_methods(cls)]
    for handle in HANDLES:
        model = next(c for c in handle.__mro__ if c.__module__.startswith("crownest.models"))
        added = {n for n in dir(handle) if not n.startswith("_")} - {n for n in dir(model) if not n.startswith("_")}
        names += [f"{handle.__name__}.{m}" for m in sorted(added)]
    for client in (crownest.CrowNest, crownest.AsyncCrowNest):
        names += [
            f"{client.__name__}.{m}"
            for m in ("close", "with_options", "with_raw_response", "with_streaming_response", *CLIENT_RESOURCES)
        ]
    names += [f"{page.__name__}.{m}" for page in (crownest.Page, crownest.AsyncPage) for m in own_public_methods(page)]
    names += ["LocalServer"] + [f"LocalServer.{m}" for m in own_public_methods(LocalServer)]
    return names


def test_every_public_name_is_in_the_reference(site: Path) -> None:
    ids = reference_anchors(site)
    missing = [name for name in public_names() if not documented(ids, name)]
    assert missing == []
    assert len(public_names()) > 200  # the list above did find the surface


def test_nothing_private_is_in_the_reference(site: Path) -> None:
    ids = {i for i in reference_anchors(site) if i.startswith("crownest.")}
    private = [
        i for i in ids if any(part.startswith("_") for part in i.split(".")[-1:]) and i != "crownest.__version__"
    ]
    assert private == []
    for page in ("clients", "resources", "handles", "models", "exceptions"):
        text = re.sub(r"<[^>]+>", " ", (site / "reference" / page / "index.html").read_text())
        assert "_generated" not in text and "_base_client" not in text and "RequestSpec" not in text, page


def spec_error_codes() -> list[dict[str, object]]:
    return list(SPEC["components"]["schemas"]["ApiError"]["properties"]["code"]["x-crownest-error-codes"])


def test_every_error_code_is_on_the_error_page(site: Path) -> None:
    codes = [str(entry["code"]) for entry in spec_error_codes()]
    assert len(codes) >= 28
    assert set(codes) <= anchors(site, "errors")
    html = (site / "errors" / "index.html").read_text()
    assert re.search(
        r"idempotency_key_in_use</code></td>\s*<td>409</td>\s*<td><code>ConflictError</code></td>\s*<td>yes", html
    )


def test_the_spec_and_the_sdk_agree_on_what_is_retried() -> None:
    for entry in spec_error_codes():
        assert is_retryable_status(int(str(entry["status"])), str(entry["code"])) == entry["retry"], entry["code"]


def test_each_guide_includes_its_example() -> None:
    guides = " ".join(path.read_text() for path in (ROOT / "docs" / "guides").glob("*.md"))
    for example in (ROOT / "examples" / "guides").rglob("*.py"):
        assert f'--8<-- "{example.relative_to(ROOT / "examples" / "guides")}"' in guides, example.name


def test_docstrings_of_generated_methods_come_from_the_spec() -> None:
    from crownest._generated.resources.sandboxes import Sandboxes

    summary = SPEC["paths"]["/v1/sandboxes"]["post"]["summary"]
    assert (inspect.getdoc(Sandboxes.create) or "").startswith(summary)


def test_the_sandbox_statuses_and_their_diagram_come_from_the_spec(site: Path) -> None:
    schema = SPEC["components"]["schemas"]["SandboxStatus"]
    text = (site / "concepts" / "sandboxes" / "index.html").read_text()
    for value in schema["enum"]:
        meaning = re.sub(r"`([^`]+)`", r"<code>\1</code>", schema["x-crownest-enum-descriptions"][value])
        assert f"<td><code>{value}</code></td>\n<td>{meaning}</td>" in text, value
    for move in schema["x-crownest-transitions"]:
        assert f"{move.get('from', '[*]')} --&gt; {move['to']}: {move['when']}" in text, move


def test_every_extension_is_described_in_the_contributor_guide_with_an_example() -> None:
    sys.path.insert(0, str(ROOT / "generator"))
    try:
        extensions = importlib.import_module("generate").EXTENSIONS
    finally:
        sys.path.remove(str(ROOT / "generator"))
    guide = (ROOT / "CONTRIBUTING.md").read_text()
    sections = re.split(r"^### ", guide, flags=re.M)
    for extension in extensions:
        [section] = [s for s in sections if f"`{extension}`" in s.splitlines()[0]]
        examples = re.findall(r"```yaml\n(.*?)```", section, re.S)
        assert any(f"{extension}:" in example for example in examples), extension
    used = set(re.findall(r"x-crownest-[a-z-]+", (ROOT / "openapi.yaml").read_text()))
    assert used == set(extensions)


def test_the_contributor_guide_is_linked_from_the_readme_and_the_docs(site: Path) -> None:
    assert "(CONTRIBUTING.md)" in (ROOT / "README.md").read_text()
    assert 'href="contributing/"' in (site / "index.html").read_text()
    assert "Add an operation, end to end" in (site / "contributing" / "index.html").read_text()


def test_the_reference_shows_the_default_timeout_and_retries_as_numbers() -> None:
    """The signatures write 660.0 and 2 out (the reference would show a constant's name): they stay
    the constants the SDK uses."""
    from crownest._base_client import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT

    for function in (crownest.CrowNest, crownest.AsyncCrowNest, LocalServer.client, LocalServer.async_client):
        parameters = inspect.signature(function).parameters
        assert parameters["timeout"].default == DEFAULT_TIMEOUT, function
        assert parameters["max_retries"].default == DEFAULT_MAX_RETRIES, function
