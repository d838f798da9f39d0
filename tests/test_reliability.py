"""Calls that never hang and clients that scale: timeouts, keepalive, loops, redirects, closing."""

from __future__ import annotations

import asyncio
import gc
import socket
import sys
import warnings

import pytest
import respx

import payloads as p
from conftest import API_KEY, BASE_URL
from crownest import AsyncCrowNest, CrowNest, CrowNestApiError, CrowNestConnectionError, CrowNestTimeoutError
from crownest._transports import AsyncTransport
from crownest_local import LocalServer


def test_a_blocking_run_outlasts_the_clients_read_timeout(crownest_local: LocalServer) -> None:
    """`commands.run(timeout_ms=...)` stretches the read timeout to the command's time plus a margin."""
    with crownest_local.client(timeout=1, max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        result = sandbox.commands.run("sleep 1.5; echo done", timeout_ms=5000)
        assert (result.status, result.stdout) == ("succeeded", "done\n")
        with pytest.raises(CrowNestTimeoutError):  # an explicit per-call timeout is taken as given
            sandbox.commands.run("sleep 1.5", timeout_ms=5000, timeout=0.5)
        sandbox.kill()


def test_the_read_timeout_allowance_follows_timeout_ms(api: respx.MockRouter) -> None:
    route = api.post("/v1/sandboxes/sbx_1/commands/run").respond(200, json=p.command())
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, timeout=10) as client:
        client.commands.run("sbx_1", "true", timeout_ms=120_000)
        client.commands.run("sbx_1", "true")  # the server's default, 60 s
        client.commands.run("sbx_1", "true", timeout=None)
    reads = [call.request.extensions["timeout"]["read"] for call in route.calls]
    assert reads == [150.0, 90.0, None]
    wait = api.get("/v1/sandboxes/sbx_1/commands/cmd_1/wait").respond(200, json=p.command())
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, timeout=700) as client:
        client.commands.wait("sbx_1", "cmd_1", timeout_ms=1000)  # already covered: unchanged
    assert wait.calls[0].request.extensions["timeout"] == {"connect": 5.0, "read": 700.0, "write": 700.0, "pool": 700.0}


def test_connections_use_tcp_keepalive(crownest_local: LocalServer) -> None:
    with crownest_local.client() as client:
        client.templates.list()
        [connection] = client._http._transport._pool.connections  # type: ignore[attr-defined]
        sock: socket.socket = connection._connection._network_stream.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60


async def test_one_async_client_serves_500_concurrent_tasks(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        sandbox = await client.sandboxes.create(template="base")
        results = await asyncio.gather(*(client.sandboxes.get(sandbox.id) for _ in range(500)))
        assert {r.id for r in results} == {sandbox.id} and len(results) == 500
        await sandbox.kill()


async def test_async_connections_use_tcp_keepalive(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client() as client:
        await client.templates.list()
        [connection] = client._http._transport.connections  # type: ignore[attr-defined]
        sock: socket.socket = connection._transport.get_extra_info("socket")
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60


async def test_a_burst_of_concurrent_calls_leaves_its_connections_open_for_the_next(
    crownest_local: LocalServer,
) -> None:
    """Every connection of a burst stays open after it (httpx's default pool keeps 20), so a second
    burst reconnects nothing. The first burst's calls are held open by the server until all of them
    are on the wire, so it needs exactly `burst` connections whatever the machine's speed; the second
    burst then finds that many idle ones, and opens none."""
    burst = 30
    async with crownest_local.async_client(max_retries=0) as client:
        transport: AsyncTransport = client._http._transport  # type: ignore[assignment]
        assert transport._max_idle == 100
        sandbox = await client.sandboxes.create(template="base")
        gate = await sandbox.commands.start("read line")  # ends when it reads a line
        held = asyncio.gather(*(sandbox.commands.wait(gate.id, timeout_ms=120_000) for _ in range(burst)))
        # Every wait gets its own connection: the server holds each answer until the gate opens.
        while len(transport.connections) < burst and not held.done():
            await asyncio.sleep(0.01)
        opened = set(map(id, transport.connections))
        assert len(opened) == burst
        async with crownest_local.async_client(max_retries=0) as other:
            await other.commands.send_stdin(sandbox.id, gate.id, "go\n", eof=True)
        assert {c.status for c in await held} == {"succeeded"}
        assert set(map(id, transport.connections)) == opened  # all idle now, none closed
        await asyncio.gather(*(client.sandboxes.get(sandbox.id) for _ in range(burst)))
        assert set(map(id, transport.connections)) == opened  # reused, none opened
        await sandbox.kill()


class ImportSearches:
    """A meta path finder that records every module searched for (and finds none)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def find_spec(self, name: str, *args: object) -> None:
        self.names.append(name)


async def test_async_calls_search_for_no_module(crownest_local: LocalServer) -> None:
    """httpcore imports sniffio in every async request; if it is missing (anyio 4.11 stopped bringing
    it), each failed import searches sys.path again. The SDK depends on sniffio, so none does."""
    async with crownest_local.async_client(max_retries=0) as client:
        sandbox = await client.sandboxes.create(template="base")
        await client.sandboxes.get(sandbox.id)  # the SDK's own modules are loaded by now
        searches = ImportSearches()
        sys.meta_path.insert(0, searches)
        try:
            await asyncio.gather(*(client.sandboxes.get(sandbox.id) for _ in range(20)))
        finally:
            sys.meta_path.remove(searches)
        assert searches.names == []
        await sandbox.kill()


def test_an_async_client_across_two_event_loops_raises_a_clear_error(crownest_local: LocalServer) -> None:
    client = crownest_local.async_client()
    assert asyncio.run(client.templates.list())
    with pytest.raises(RuntimeError, match="first used in another event loop"):
        asyncio.run(client.templates.list())
    del client
    with warnings.catch_warnings():  # the first loop closed under the client's open connection: that is the misuse
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def test_closing_closes_every_connection(crownest_local: LocalServer) -> None:
    async def use_async() -> None:
        async with crownest_local.async_client() as client:
            await asyncio.gather(*(client.templates.list() for _ in range(20)))

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        with crownest_local.client() as client:
            client.templates.list()
            pool = client._http._transport._pool  # type: ignore[attr-defined]
            assert len(pool.connections) == 1
        assert pool.connections == []
        asyncio.run(use_async())
        gc.collect()


def test_authorization_never_follows_a_redirect(api: respx.MockRouter) -> None:
    """Redirects are not followed, so the key cannot be carried to another origin: the 3xx is an error."""
    api.get("/v1/templates").respond(307, headers={"Location": "https://elsewhere.test/v1/templates"})
    with (
        CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=0) as client,
        pytest.raises(CrowNestApiError) as caught,
    ):
        client.templates.list()
    assert caught.value.status == 307
    assert [str(call.request.url) for call in api.calls] == [f"{BASE_URL}/v1/templates"]


async def test_an_async_client_never_follows_a_redirect_either(api: respx.MockRouter) -> None:
    api.get("/v1/templates").respond(302, headers={"Location": "https://elsewhere.test/"})
    async with AsyncCrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=0) as client:
        with pytest.raises(CrowNestApiError) as caught:
            await client.templates.list()
    assert caught.value.status == 302
    assert [str(call.request.url) for call in api.calls] == [f"{BASE_URL}/v1/templates"]


def test_a_dead_server_fails_fast_instead_of_hanging() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    client = CrowNest(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=1)
    with client, pytest.raises(CrowNestConnectionError, match="ConnectError"):
        client.templates.list()
