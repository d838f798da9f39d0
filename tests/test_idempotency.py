"""Idempotency keys: automatic on the four creates, overridable, absent elsewhere, stable across retries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
import respx

import payloads as p
from conftest import API_KEY, BASE_URL
from crownest import AsyncCrowNest, CrowNest

CREATES: list[tuple[str, str, Callable[..., Any], dict[str, Any]]] = [
    ("POST", "/v1/sandboxes", lambda c, **kw: c.sandboxes.create(template="python", **kw), p.sandbox()),
    ("POST", "/v1/sandboxes/sbx_1/commands/run", lambda c, **kw: c.commands.run("sbx_1", "true", **kw), p.command()),
    ("POST", "/v1/sandboxes/sbx_1/commands", lambda c, **kw: c.commands.start("sbx_1", "true", **kw), p.command()),
    ("POST", "/v1/sandboxes/sbx_1/artifacts", lambda c, **kw: c.artifacts.create("sbx_1", "a", **kw), p.artifact()),
]


@pytest.mark.parametrize("method, path, call, body", CREATES, ids=lambda x: x if isinstance(x, str) else "")
def test_each_create_gets_a_fresh_key_per_call(
    api: respx.MockRouter, client: CrowNest, method: str, path: str, call: Callable[..., Any], body: dict[str, Any]
) -> None:
    route = api.route(method=method, path=path).mock(return_value=httpx.Response(201, json=body))
    call(client)
    call(client)
    first, second = (c.request.headers["idempotency-key"] for c in route.calls)
    assert first.startswith("crownest-python-") and first != second


@pytest.mark.parametrize("method, path, call, body", CREATES, ids=lambda x: x if isinstance(x, str) else "")
def test_an_explicit_key_is_sent_as_given(
    api: respx.MockRouter, client: CrowNest, method: str, path: str, call: Callable[..., Any], body: dict[str, Any]
) -> None:
    route = api.route(method=method, path=path).mock(return_value=httpx.Response(201, json=body))
    call(client, idempotency_key="my-key-1")
    assert route.calls.last.request.headers["idempotency-key"] == "my-key-1"


def test_no_key_on_operations_without_one(api: respx.MockRouter, client: CrowNest) -> None:
    api.post("/v1/sandboxes/sbx_1/previews").mock(return_value=httpx.Response(201, json=p.preview()))
    api.post("/v1/sandboxes/sbx_1/ttl").mock(return_value=httpx.Response(200, json=p.sandbox()))
    client.previews.create("sbx_1", 8080)
    client.sandboxes.set_ttl("sbx_1", 5000)
    assert all("idempotency-key" not in call.request.headers for call in api.calls)


def test_the_key_stays_the_same_on_every_retry(api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    route = api.post("/v1/sandboxes").mock(
        side_effect=[httpx.Response(503), httpx.ConnectError("reset"), httpx.Response(201, json=p.sandbox())]
    )
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=2) as client:
        client.sandboxes.create(template="python")
    keys = {c.request.headers["idempotency-key"] for c in route.calls}
    assert route.call_count == 3 and len(keys) == 1


async def test_async_key_is_the_same_on_every_retry(api: respx.MockRouter, monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr("asyncio.sleep", no_sleep)
    route = api.post("/v1/sandboxes/sbx_1/commands/run").mock(
        side_effect=[httpx.Response(409, json=p.error("idempotency_key_in_use")), httpx.Response(200, json=p.command())]
    )
    async with AsyncCrowNest(api_key=API_KEY, base_url=BASE_URL) as client:
        await client.commands.run("sbx_1", "true")
    keys = {c.request.headers["idempotency-key"] for c in route.calls}
    assert route.call_count == 2 and len(keys) == 1
