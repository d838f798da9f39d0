"""Schemathesis against a live CrowNest Local: the server answers as openapi.yaml says.

Three seeds, 50 examples per operation each, with every check but two (no
5xx, no response outside the spec, no accepted request that the spec forbids,
auth enforced); tests/conformance/schemathesis.toml names the two and why, and
why the event stream's events are checked by our own check
(tests/conformance/event_streams.py). Generated shell commands
run only inside bubblewrap: without it, the operations that execute commands
are left out, and the test says so. CROWNEST_FUZZ_SEEDS (comma-separated)
and CROWNEST_FUZZ_EXAMPLES change the seeds and the examples.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crownest_local import LocalServer
from crownest_local._app import create_app
from crownest_local._service import Config
from crownest_local._spec import load_spec, operations

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi.yaml"
CONFORMANCE = ROOT / "tests" / "conformance"
COMMAND_OPERATIONS = ("runCommand", "startCommand")
SEEDS = os.environ.get("CROWNEST_FUZZ_SEEDS", "1,2,3").split(",")
EXAMPLES = os.environ.get("CROWNEST_FUZZ_EXAMPLES", "50")

sys.path.insert(0, str(CONFORMANCE))
from event_streams import check_events, event_schema  # noqa: E402


def excluded_operations(probe_dir: Path) -> list[str]:
    """Schemathesis options that leave out the operations without a handler yet (they answer 501:
    test_every_operation_of_the_spec_has_a_handler names them) and, without bubblewrap, those that
    run generated commands."""
    unhandled = create_app(Config(data_dir=probe_dir, api_key="cn_test_probe")).state.not_implemented
    left_out = list(unhandled)
    if shutil.which("bwrap") is None:
        left_out += COMMAND_OPERATIONS
        # To the real stderr, past pytest's capture: a gap in what is fuzzed is always shown.
        print(
            f"\nbubblewrap is missing: {', '.join(COMMAND_OPERATIONS)} are left out of the fuzzing", file=sys.__stderr__
        )
    return [option for operation_id in left_out for option in ("--exclude-operation-id", operation_id)]


@pytest.fixture(scope="module")
def fuzz_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, subprocess.Popen[bytes]], Path, int]]:
    """One Schemathesis process per seed, all started at once against one server (they spend most of
    their time waiting on it; processes, not `--workers` threads, which crash Python 3.11.7's
    `ast.parse` inside Hypothesis); their output goes to `<seed>.txt`. Yields the processes, the
    output folder and the number of operations left out."""
    out = tmp_path_factory.mktemp("fuzz")
    exclude = excluded_operations(out / "probe")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(CONFORMANCE / "event_streams.py")}
    with LocalServer(max_sandboxes=100_000) as server:
        runs = {}
        for seed in SEEDS:
            command = [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(CONFORMANCE / "schemathesis.toml"),
                "run",
                str(SPEC),
                "--url",
                server.base_url,
                "--header",
                f"Authorization: Bearer {server.api_key}",
                "--max-examples",
                EXAMPLES,
                "--seed",
                seed,
                "--request-timeout",
                "30",
                "--generation-database",
                "none",
                "--no-color",
                *exclude,
            ]
            with (out / f"{seed}.txt").open("wb") as output:
                runs[seed] = subprocess.Popen(command, cwd=out, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            yield runs, out, len(exclude) // 2
        finally:
            for process in runs.values():
                process.kill()
                process.wait()


@pytest.mark.parametrize("seed", SEEDS)
def test_the_server_conforms_to_openapi_yaml(
    seed: str, fuzz_runs: tuple[dict[str, subprocess.Popen[bytes]], Path, int]
) -> None:
    runs, out, excluded = fuzz_runs
    returncode = runs[seed].wait(timeout=900)
    report = (out / f"{seed}.txt").read_text(errors="replace")
    assert returncode == 0, report[-8000:]
    tested = re.search(r"Tested: (\d+)", report)
    assert tested is not None, report[-2000:]
    assert int(tested.group(1)) == len(operations(load_spec())) - excluded


def test_the_event_check_rejects_an_event_its_content_schema_forbids() -> None:
    """The check that stands in for Schemathesis's own on the event stream does check."""
    spec = load_spec()
    [events] = [
        op for item in spec["paths"].values() for op in item.values() if op["operationId"] == "streamCommandEvents"
    ]
    schema = event_schema(events, 200)
    assert schema is not None
    good = 'id: 4\nevent: output\ndata: {"stream": "stdout", "data": "hi"}\n\nid: 4\nevent: exit\ndata: {}\n\n'
    check_events(good, schema)
    with pytest.raises(AssertionError, match="event 2"):
        check_events(good.replace("id: 4\nevent: exit", "id: four\nevent: exit"), schema)
    with pytest.raises(AssertionError, match="event 1"):
        check_events("data: {}\n\n", schema)  # no event type
