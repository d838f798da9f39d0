"""CONTRIBUTING.md is true: following it in a scratch copy of the repository, a spec edit alone
reaches the client, the async client, the sandbox handle, CrowNest Local and the docs.

The test takes the guide's YAML blocks as written (a sandbox-scoped operation of the `sandboxes`
tag and a new tag), adds them to a copy of `openapi.yaml`, runs the generator there, and checks
each place from inside the copy, in its own interpreter.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no types; mkdocs brings it

ROOT = Path(__file__).resolve().parent.parent
COPIED = ["openapi.yaml", "pyproject.toml", "mkdocs.yml", "CONTRIBUTING.md", "CHANGELOG.md", "README.md"]
COPIED_DIRS = ["src", "generator", "templates", "docs", "tests", "examples"]

# Run inside the copy: what each new operation became, and what CrowNest Local answers.
PROBE = """
import asyncio, json
import crownest
from crownest_local import LocalServer

found = {}
with LocalServer() as server:
    with server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        found["sync"] = [
            callable(client.sandboxes.usage), callable(sandbox.usage),
            callable(client.volumes.create), callable(client.volumes.list), callable(sandbox.volumes.create),
        ]
        answers = []
        for call in (sandbox.usage, lambda: client.volumes.list(), lambda: sandbox.volumes.create("s")):
            try:
                call()
            except crownest.CrowNestApiError as error:
                answers.append([error.status, error.code, error.details["operationId"]])
        found["answers"] = answers
        sandbox.kill()

    async def in_async():
        async with server.async_client(max_retries=0) as client:
            sandbox = await client.sandboxes.create(template="base")
            try:
                await sandbox.usage()
            except crownest.InternalServerError as error:
                found["async"] = [error.status, error.code, callable(client.volumes.list),
                                  callable(sandbox.volumes.create)]
            await sandbox.kill()

    asyncio.run(in_async())
print(json.dumps(found))
"""


def guide_blocks() -> dict[str, list[Any]]:
    """The YAML blocks of CONTRIBUTING.md that say where in openapi.yaml they go, by place."""
    blocks: dict[str, list[Any]] = {}
    for text in re.findall(
        r"```yaml\n(# openapi\.yaml, under (\S+):\n.*?)```", (ROOT / "CONTRIBUTING.md").read_text(), re.S
    ):
        blocks.setdefault(text[1], []).append(yaml.safe_load(text[0]))
    return blocks


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("scratch")
    for name in COPIED:
        shutil.copy(ROOT / name, root / name)
    for name in COPIED_DIRS:
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__", ".*_cache"))
    spec = yaml.safe_load((root / "openapi.yaml").read_text())
    blocks = guide_blocks()
    assert sorted(blocks) == ["components.schemas", "paths", "tags"]
    for block in blocks["paths"]:
        spec["paths"].update(block)
    for block in blocks["components.schemas"]:
        spec["components"]["schemas"].update(block)
    for block in blocks["tags"]:
        spec["tags"] += block
    (root / "openapi.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    done = run(root, "generator/generate.py")
    assert done.returncode == 0, done.stderr
    yield root


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python args` in the copy, importing the copy's packages."""
    env = os.environ | {"PYTHONPATH": str(root / "src"), "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)


def test_the_methods_are_on_both_clients_and_the_handle_and_crownest_local_answers_501(scratch: Path) -> None:
    done = run(scratch, "-c", PROBE)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["sync"] == [True] * 5
    assert found["answers"] == [
        [501, "not_implemented", "getSandboxUsage"],
        [501, "not_implemented", "listVolumes"],
        [501, "not_implemented", "createVolume"],
    ]
    assert found["async"] == [501, "not_implemented", True, True]


def test_the_tests_name_what_is_left_to_do(scratch: Path) -> None:
    """Nothing is skipped silently: the endpoint cases and CrowNest Local's handlers fail by name."""
    done = run(
        scratch,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:randomly",
        "-p",
        "no:cacheprovider",
        "tests/test_endpoints.py",
        "tests/test_local_server.py",
        "-k",
        "every_public_method_has_a_case or every_handle_method_has_a_case or has_a_handler or answers_501",
    )
    failed = sorted(re.findall(r"^FAILED tests/(\S+)", done.stdout, re.M))
    assert failed == [
        "test_endpoints.py::test_every_handle_method_has_a_case",
        "test_endpoints.py::test_every_public_method_has_a_case",
        "test_local_server.py::test_every_operation_of_the_spec_has_a_handler",
    ], done.stdout[-3000:]
    assert "'createVolume', 'getSandboxUsage', 'listVolumes'" in done.stdout
    assert "('sandboxes', 'usage')" in done.stdout and "volumes" in done.stdout


def test_the_docs_build_strictly_and_name_them(scratch: Path) -> None:
    done = run(scratch, "-m", "mkdocs", "build", "--strict", "--site-dir", str(scratch / "site"))
    assert done.returncode == 0, done.stderr
    assert not re.search(r"^(WARNING|ERROR)", done.stderr, re.M), done.stderr
    ids = set(
        re.findall(r'id="([^"]+)"', "".join(p.read_text() for p in (scratch / "site" / "reference").rglob("*.html")))
    )
    for name in (
        "SandboxHandle.usage",
        "AsyncSandboxHandle.usage",
        "Sandboxes.usage",
        "Volumes.create",
        "Volumes.list",
        "AsyncVolumes.list",
        "SandboxVolumes.create",
        "AsyncSandboxVolumes.create",
        "SandboxUsage",
        "Volume",
        "CrowNest.volumes",
        "AsyncCrowNest.volumes",
        "SandboxHandle.volumes",
    ):
        assert any(i.endswith("." + name) for i in ids), name


def test_the_guides_case_checks_the_new_method_in_every_form(scratch: Path) -> None:
    [case] = re.findall(r"```python\n(Case\(.*?\),)\n```", (ROOT / "CONTRIBUTING.md").read_text(), re.S)
    endpoints = scratch / "tests" / "test_endpoints.py"
    source = endpoints.read_text()
    assert source.count("\n]\nHANDLE_ONLY = [") == 1
    endpoints.write_text(
        source.replace("\n]\nHANDLE_ONLY = [", "\n" + textwrap.indent(case, "    ") + "\n]\nHANDLE_ONLY = [")
    )
    try:
        done = run(scratch, "-m", "pytest", "-q", "-p", "no:randomly", str(endpoints), "-k", "usage")
    finally:
        endpoints.write_text(source)  # the other tests see the copy as the guide's step 2 leaves it
    assert done.returncode == 0, done.stdout[-3000:]
    assert "4 passed" in done.stdout  # sync, async, and the handle's own method in both modes
