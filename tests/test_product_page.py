"""The product page's examples, run unchanged (examples/product_page/) against CrowNest Local."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from crownest import SyncPager
from crownest_local import LocalServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "product_page"
PRIMES = "2\n3\n5\n7\n11\n13\n17\n19\n23\n29\n31\n37\n41\n43\n47"


@pytest.fixture(autouse=True)
def _env(crownest_local: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples take the base URL and the key from the environment, as a user's would."""
    monkeypatch.setenv("CROWNEST_API_KEY", crownest_local.api_key)
    monkeypatch.setenv("CROWNEST_BASE_URL", crownest_local.base_url)


def run(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_worked_example(crownest_local: LocalServer, capsys: pytest.CaptureFixture[str]) -> None:
    out = run("worked_example.py", capsys)
    assert out == f"exit code: 0\nwrote primes.txt\n\n{PRIMES}\n"
    with crownest_local.client() as client:
        [sandbox] = client.sandboxes.list(metadata={"job": "primes-demo"})
    assert sandbox.status == "killed" and sandbox.ttl_ms == 600000


def test_async_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("async_client.py", capsys) == "0 42\n\n"


def test_error_handling_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("error_handling.py", capsys) == "404 sandbox_not_found Sandbox sbx_does_not_exist does not exist.\n"


def test_sandbox_handle_example(capsys: pytest.CaptureFixture[str]) -> None:
    first, second = run("sandbox_handle.py", capsys).splitlines()
    assert re.fullmatch(r"sbx_[0-9a-f]{16} running 20\d\d-.* \[.*'createdAt', .*'expiresAt'.*\]", first)
    assert second == "hi"


def test_create_client_example() -> None:
    names = runpy.run_path(str(EXAMPLES / "create_client.py"))
    assert names["client"].base_url.startswith("http://127.0.0.1:")  # the `with CrowNest()` client, from the env
    assert names["client"].timeout.read == 660 and names["client"].timeout.connect == 5
    assert isinstance(names["sandboxes"], SyncPager)  # a lazy list: pages are fetched as it is iterated


def test_make_demo_runs_both_examples() -> None:
    """`make demo` runs examples/demo.py: its own server, the page's code, the page's output."""
    demo = EXAMPLES.parent / "demo.py"
    out = subprocess.run([sys.executable, str(demo)], capture_output=True, text=True, timeout=120, check=True).stdout
    assert f"exit code: 0\nwrote primes.txt\n\n{PRIMES}\n" in out
    assert out.endswith("$ python examples/product_page/async_client.py\n0 42\n\n\n")
