"""The SDK against a server no one here wrote: Prism, mocking `openapi.yaml` with request validation on.

Prism answers 422 to any request that does not match the spec (a wrong path,
a missing header, a body of the wrong shape) and otherwise returns a response
made from the spec's schemas and examples. Every public operation is called
here, sync and async, on the client, on the sandbox handle's resources and as
the handle's own methods, and the SDK
must parse every answer. The cases (arguments) are test_endpoints.CASES, so
a new operation cannot be left out.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port
from crownest import AsyncCrowNest, AsyncPager, AsyncStream, CrowNest, Stream, SyncPager
from test_endpoints import BOUND, CASES, OWN, Case

ROOT = Path(__file__).resolve().parent.parent
PRISM = ROOT / "node_modules" / ".bin" / "prism"
SBX = "sbx_contract"


@pytest.fixture(scope="module")
def prism() -> Iterator[str]:
    assert PRISM.exists(), "run `make contract` (or `npm ci`) to install Prism into node_modules"
    port = free_port()
    command = [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), "--errors", str(ROOT / "openapi.yaml")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "Prism did not start"
                time.sleep(0.2)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()


def first_items(result: Any) -> Any:
    """A pager's first page (Prism's made-up cursor would never end), a stream's items, or the result."""
    if isinstance(result, SyncPager):
        return result.first_page().data
    if isinstance(result, Stream):
        with result:
            return list(result)
    return result


async def async_first_items(result: Any) -> Any:
    if isinstance(result, AsyncPager):
        return (await result.first_page()).data
    if isinstance(result, AsyncStream):
        async with result:
            return [item async for item in result]
    return await result


@pytest.fixture
def client(prism: str) -> Iterator[CrowNest]:
    with CrowNest(api_key="cn_test_contract", base_url=prism, max_retries=0) as client:
        yield client


@pytest.fixture
async def async_client(prism: str) -> Any:
    async with AsyncCrowNest(api_key="cn_test_contract", base_url=prism, max_retries=0) as client:
        yield client


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sync(client: CrowNest, case: Case) -> None:
    first_items(getattr(getattr(client, case.resource), case.method)(*case.args, **case.kwargs))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_async(async_client: AsyncCrowNest, case: Case) -> None:
    await async_first_items(getattr(getattr(async_client, case.resource), case.method)(*case.args, **case.kwargs))


@pytest.mark.parametrize("case", BOUND, ids=lambda c: c.id)
def test_sync_handle(client: CrowNest, case: Case) -> None:
    sandbox = client.sandboxes.get(SBX)
    first_items(getattr(getattr(sandbox, case.resource), case.method)(*case.args[1:], **case.kwargs))


@pytest.mark.parametrize("case", BOUND, ids=lambda c: c.id)
async def test_async_handle(async_client: AsyncCrowNest, case: Case) -> None:
    sandbox = await async_client.sandboxes.get(SBX)
    await async_first_items(getattr(getattr(sandbox, case.resource), case.method)(*case.args[1:], **case.kwargs))


@pytest.mark.parametrize("case", OWN, ids=lambda c: c.id)
def test_sync_handle_own_method(client: CrowNest, case: Case) -> None:
    sandbox = client.sandboxes.get(SBX)
    getattr(sandbox, str(case.handle_method))(*case.args[1:], **case.kwargs)


@pytest.mark.parametrize("case", OWN, ids=lambda c: c.id)
async def test_async_handle_own_method(async_client: AsyncCrowNest, case: Case) -> None:
    sandbox = await async_client.sandboxes.get(SBX)
    await getattr(sandbox, str(case.handle_method))(*case.args[1:], **case.kwargs)


def test_prism_rejects_requests_the_spec_does_not_allow(prism: str) -> None:
    """The check has teeth: a body of the wrong shape or a missing key is refused, not mocked."""
    auth = {"Authorization": "Bearer cn_test_contract"}
    assert httpx.post(f"{prism}/v1/sandboxes", json={"ttlMs": 5}, headers=auth).status_code == 422
    assert httpx.get(f"{prism}/v1/sandboxes/{SBX}").status_code == 401
    assert (
        httpx.get(f"{prism}/v1/artifacts/art_1/content", headers={**auth, "Accept": "application/json"}).status_code
        == 406
    )
