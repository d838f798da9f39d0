"""Schemathesis against a live CrowNest Local: the server answers as openapi.yaml says.

Bounded (a fixed number of examples per operation, a fixed seed that
CROWNEST_FUZZ_SEED can change), with every check but two: no 5xx, no
response outside the spec, no accepted request that the spec forbids, auth
enforced. Left out: `positive_data_acceptance` (a valid request with a
random sandbox ID is rightly 404) and `ensure_resource_availability` (it
reads a 404 `file_not_found` for a path in a new sandbox as the sandbox
being missing). Every check is on by default; the config file turns one off for one
operation (see CONFIG). Generated shell commands run only inside bubblewrap: without it,
the operations that execute commands are left out, and the test says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crownest_local import LocalServer
from crownest_local._app import create_app
from crownest_local._service import Config
from crownest_local._spec import load_spec, operations

SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"
# Schemathesis validates each Server-Sent Event, as an object, against the media type's schema; the
# spec describes an event with `contentSchema` (OpenAPI 3.1 has no `itemSchema`), so the events'
# body is left out of that one check; its errors are still checked, and its events by test_streams.
CONFIG = """
[[operations]]
include-operation-id = "streamCommandEvents"
checks.response_schema_conformance.enabled = false
"""
COMMAND_OPERATIONS = ("runCommand", "startCommand")


def test_the_server_conforms_to_openapi_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # An operation without a handler yet answers 501: test_every_operation_of_the_spec_has_a_handler names it.
    unhandled = create_app(Config(data_dir=tmp_path / "probe", api_key="cn_test_probe")).state.not_implemented
    exclude = [arg for operation_id in unhandled for arg in ("--exclude-operation-id", operation_id)]
    if shutil.which("bwrap") is None:
        for operation_id in COMMAND_OPERATIONS:
            exclude += ["--exclude-operation-id", operation_id]
        with capsys.disabled():
            print(
                f"\nbubblewrap is missing: {', '.join(COMMAND_OPERATIONS)} are left out of the fuzzing", file=sys.stderr
            )
    with LocalServer(max_sandboxes=100_000) as server:
        (tmp_path / "schemathesis.toml").write_text(CONFIG)
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            "--config-file",
            str(tmp_path / "schemathesis.toml"),
            "run",
            str(SPEC),
            "--url",
            server.base_url,
            "--header",
            f"Authorization: Bearer {server.api_key}",
            "--max-examples",
            "10",
            "--seed",
            os.environ.get("CROWNEST_FUZZ_SEED", "20261126"),
            "--exclude-checks",
            "positive_data_acceptance,ensure_resource_availability",
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
            *exclude,
        ]
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    operation_ids = [op.operation_id for op in operations(load_spec())]
    assert f"Tested: {len(operation_ids) - len(exclude) // 2}" in result.stdout
