"""The product page's examples, run unchanged (examples/product_page/)."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx

from conftest import API_KEY
from crownest import SyncPager
from fake_api import BASE_URL, FakeApi

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "product_page"
PRIMES = "2\n3\n5\n7\n11\n13\n17\n19\n23\n29\n31\n37\n41\n43\n47"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    monkeypatch.setenv("CROWNEST_API_KEY", API_KEY)
    api = FakeApi()
    with respx.mock(base_url=BASE_URL, assert_all_called=False) as router:
        router.route().mock(side_effect=api)
        yield api
    api.close()


def run(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_worked_example(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    out = run("worked_example.py", capsys)
    assert out == f"exit code: 0\nwrote primes.txt\n\n{PRIMES}\n"
    [sandbox] = fake.sandboxes.values()
    assert sandbox["status"] == "killed"
    assert sandbox["metadata"] == {"job": "primes-demo"} and sandbox["ttlMs"] == 600000


def test_async_example(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("async_client.py", capsys) == "0 42\n\n"
    assert [s["status"] for s in fake.sandboxes.values()] == ["killed"]


def test_error_handling_example(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("error_handling.py", capsys) == "404 sandbox_not_found Sandbox sbx_does_not_exist does not exist.\n"


def test_sandbox_handle_example(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = run("sandbox_handle.py", capsys).splitlines()
    assert first.startswith("sbx_1 running ") and "'expiresAt'" in first
    assert second == "hi"


def test_create_client_example(fake: FakeApi) -> None:
    names = runpy.run_path(str(EXAMPLES / "create_client.py"))
    assert names["client"].base_url == "https://api.crownest.dev"
    assert names["client"].timeout.read == 660 and names["client"].timeout.connect == 5
    assert isinstance(names["sandboxes"], SyncPager)  # a lazy list: pages are fetched as it is iterated
