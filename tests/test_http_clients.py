"""`crownest.DefaultHttpxClient` / `DefaultAsyncHttpxClient`: the SDK's connection defaults for an
httpx client you configure yourself (a proxy, certificates), and what the SDK makes for itself."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
import respx

from crownest import AsyncCrowNest, CrowNest, DefaultAsyncHttpxClient, DefaultHttpxClient
from crownest_local import LocalServer


def _pool(client: httpx.Client | httpx.AsyncClient) -> object:
    return client._transport._pool  # type: ignore[union-attr]


def test_the_defaults() -> None:
    with DefaultHttpxClient() as client:
        pool = _pool(client)
        assert pool._max_connections == pool._max_keepalive_connections == 100  # type: ignore[attr-defined]
        assert pool._socket_options  # type: ignore[attr-defined]  # TCP keepalive
        assert client.timeout == httpx.Timeout(660, connect=5)
        assert client.follow_redirects is False


def test_httpx_arguments_win_and_reach_the_transport() -> None:
    context = ssl.create_default_context()
    with DefaultHttpxClient(
        timeout=3, limits=httpx.Limits(max_connections=7), verify=context, proxy="http://127.0.0.1:9"
    ) as client:
        assert client.timeout == httpx.Timeout(3)
        assert _pool(client)._max_connections == 7  # type: ignore[attr-defined]
        assert _pool(client)._ssl_context is context  # type: ignore[attr-defined]
        [proxied] = client._mounts.values()  # every URL goes through the proxy, with the same pool options
        assert type(proxied._pool).__name__ == "HTTPProxy"  # type: ignore[union-attr]
        assert proxied._pool._ssl_context is context  # type: ignore[union-attr]


def test_the_sdks_own_clients_are_default_clients() -> None:
    with CrowNest(api_key="k", base_url="http://127.0.0.1:1") as client:
        assert type(client._http) is DefaultHttpxClient
    assert type(AsyncCrowNest(api_key="k", base_url="http://127.0.0.1:1")._http) is DefaultAsyncHttpxClient


def test_a_default_client_you_pass_is_used(crownest_local: LocalServer) -> None:
    with DefaultHttpxClient(headers={"X-Mine": "1"}) as http:
        with crownest_local.client(http_client=http, max_retries=0) as client:
            assert client.templates.list()
        assert not http.is_closed  # yours: the SDK does not close it


async def test_an_async_default_client_you_pass_is_used(crownest_local: LocalServer) -> None:
    async with DefaultAsyncHttpxClient() as http:
        async with crownest_local.async_client(http_client=http, max_retries=0) as client:
            assert await client.templates.list()
        assert not http.is_closed


def test_a_sync_default_client_keeps_cookies_a_server_sets() -> None:
    """The jar skips answers without Set-Cookie (a sixth of httpx's cost per call) and reads the rest."""
    with respx.mock(base_url="http://127.0.0.1:1") as api, DefaultHttpxClient(base_url="http://127.0.0.1:1") as http:
        api.get("/set").respond(200, headers={"Set-Cookie": "lb=a1; Path=/"})
        seen = api.get("/next").respond(200)
        http.get("/set")
        http.get("/next")
        http.get("/next")
        assert http.cookies.get("lb") == "a1"
        assert seen.calls.last.request.headers["cookie"] == "lb=a1"


def test_only_the_sdks_own_transport_keeps_deadlines_without_a_thread() -> None:
    with DefaultHttpxClient() as plain, DefaultHttpxClient(verify=False, timeout=3) as configured:
        assert plain.keeps_attempt_deadlines and configured.keeps_attempt_deadlines
    others: list[dict[str, Any]] = [
        {"proxy": "http://127.0.0.1:9"},
        {"transport": httpx.HTTPTransport()},
        {"mounts": {}},
    ]
    for other in others:
        with DefaultHttpxClient(**other) as client:
            assert not client.keeps_attempt_deadlines, other
