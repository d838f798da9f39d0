"""The guides' examples (`examples/guides/`), each run as a script against CrowNest Local, output checked.

The guides include these files verbatim, so what the documentation shows is
what this test runs; mypy --strict checks them with the rest of the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port
from crownest_local import LocalServer

GUIDES = Path(__file__).resolve().parent.parent / "examples" / "guides"

EXPECTED = {
    "quickstart.py": r"sandbox is running\nexit code: 0\nhello from linux\nafterwards: killed\n",
    "async_fan_out.py": r"squares: 4, 9, 16\n",
    "large_files.py": (
        r"uploaded 33554432 bytes; progress reached 33554432\n"
        r"streamed back intact: True\n"
        r"artifact after the sandbox ended, intact: True\n"
    ),
    "projects.py": (
        r"uploaded 501 files into /home/user/project\n"
        r"downloaded 508 entries\n"
        r"results: \['0', '1', '4'\]\n"
        r"sources intact: True\n"
    ),
    "live_output.py": (
        r"\[stdout\] step 1\n\[stdout\] step 2\n\[stdout\] step 3\n\[stderr\] done\n"
        r"build ended: succeeded 0\n"
        r"callback saw: 'a\\nb\\n'\n"
        r"echo said: got ping\n"
        r"failed: failed 3\n"
    ),
    "previews.py": (
        r"visibility: private\n"
        r"with the token: 200 <h1>hello from the sandbox</h1>\n"
        r"without it: 403\n"
        r"change of visibility: 409 preview_exists\n"
        r"public, no header: 200\n"
    ),
    "terminal.py": (
        r"printed: b'/dev/pts/0\\r\\n30 100\\r\\n'\n"
        r"ended: succeeded 0\n"
        r"login: welcome \| echoed: False\n"
        r"after resize: 43 132\n"
    ),
    "watch.py": (
        r"created /home/user/project/out folder\n"
        r"created /home/user/project/out/a\.txt\n"
        r"modified /home/user/project/out/a\.txt\n"
        r"moved /home/user/project/out/a\.txt -> /home/user/project/out/b\.txt\n"
        r"deleted /home/user/project/out/b\.txt\n"
        r"after event 2: \['modified', 'moved', 'deleted'\]\n"
        r"watch: ended deleted\n"
    ),
    "configuration.py": r"running\ntimed out on the client side after 0.5 s\nrequests sent: \d+, first: POST /v1/sandboxes\n",
}


def run(args: list[str], server: LocalServer) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "CROWNEST_BASE_URL": server.base_url,
        "CROWNEST_API_KEY": server.api_key,
        "PORT": str(free_port()),  # previews.py serves on it: CrowNest Local's sandboxes share the host's ports
    }
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=GUIDES)


def test_every_guide_example_is_checked() -> None:
    assert set(EXPECTED) == {path.name for path in GUIDES.glob("*.py")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_guide_example(name: str, crownest_local: LocalServer) -> None:
    done = run([sys.executable, str(GUIDES / name)], crownest_local)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(EXPECTED[name], done.stdout), done.stdout


def test_configuration_example_logs_each_request(crownest_local: LocalServer) -> None:
    done = run([sys.executable, str(GUIDES / "configuration.py")], crownest_local)
    assert re.search(r"^crownest DEBUG POST /v1/sandboxes -> 201 request_id=req_\w+ attempt=1$", done.stderr, re.M)
    assert crownest_local.api_key not in done.stdout + done.stderr


def test_testing_guide_suite_passes(crownest_local: LocalServer) -> None:
    """The testing guide's pytest file, run by pytest as a user would (its own server, through the plugin)."""
    done = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(GUIDES / "testing")], crownest_local
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
