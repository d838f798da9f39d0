"""Per-call options on every method (`extra_headers`, `extra_query`, `extra_body`, beside `timeout`
and `max_retries`), on the clients' resources, the sandbox-scoped resources and the handles, and
`client.with_options(...)`.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import httpx
import pytest
import respx

import payloads as p
from crownest import AsyncCrowNest, CrowNest
from crownest._handle import AsyncCommandHandle, AsyncSandboxHandle, CommandHandle, SandboxHandle
from crownest.models import Command, Sandbox
from crownest_local import LocalServer
from test_endpoints import BOUND, CASES, OWN, SBX, Case, _async_result, _result, _route

EXTRAS = {"extra_headers": {"X-Trace": "t1"}, "extra_query": {"trace": "q1"}, "extra_body": {"note": "b1"}}
OPTIONS = ("timeout", "max_retries", "extra_headers", "extra_query", "extra_body")


def _extras(case: Case) -> dict[str, Any]:
    """The extras a case can take: raw content (an upload) has no JSON body to add fields to."""
    if isinstance(case.body, bytes):
        return {k: v for k, v in EXTRAS.items() if k != "extra_body"}
    return EXTRAS


def _check_extras(route: respx.Route, case: Case) -> None:
    request = route.calls.last.request
    assert request.headers["x-trace"] == "t1"
    assert request.url.params["trace"] == "q1"
    for name, value in case.params.items():
        assert request.url.params.get_list(name) == (value if isinstance(value, list) else [value])
    if not isinstance(case.body, bytes):
        assert json.loads(request.content) == {**(case.body or {}), "note": "b1"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sync(api: respx.MockRouter, client: CrowNest, case: Case) -> None:
    route = _route(api, case)
    method = getattr(getattr(client, case.resource), case.method)
    result = _result(method(*case.args, **case.kwargs, **_extras(case)))
    _check_extras(route, case)
    assert case.check(result)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_async(api: respx.MockRouter, async_client: AsyncCrowNest, case: Case) -> None:
    route = _route(api, case)
    method = getattr(getattr(async_client, case.resource), case.method)
    result = await _async_result(method(*case.args, **case.kwargs, **_extras(case)))
    _check_extras(route, case)
    assert case.check(result)


@pytest.mark.parametrize("case", BOUND, ids=lambda c: c.id)
def test_sync_sandbox_scoped(api: respx.MockRouter, client: CrowNest, case: Case) -> None:
    sandbox = SandboxHandle(client, Sandbox.from_dict(p.sandbox()))
    route = _route(api, case)
    method = getattr(getattr(sandbox, case.resource), case.method)
    _result(method(*case.args[1:], **case.kwargs, **_extras(case)))
    _check_extras(route, case)


@pytest.mark.parametrize("case", BOUND, ids=lambda c: c.id)
async def test_async_sandbox_scoped(api: respx.MockRouter, async_client: AsyncCrowNest, case: Case) -> None:
    sandbox = AsyncSandboxHandle(async_client, Sandbox.from_dict(p.sandbox()))
    route = _route(api, case)
    method = getattr(getattr(sandbox, case.resource), case.method)
    await _async_result(method(*case.args[1:], **case.kwargs, **_extras(case)))
    _check_extras(route, case)


@pytest.mark.parametrize("case", OWN, ids=lambda c: c.id)
async def test_sandbox_handle_methods(
    api: respx.MockRouter, client: CrowNest, async_client: AsyncCrowNest, case: Case
) -> None:
    route = _route(api, case)
    sandbox = SandboxHandle(client, Sandbox.from_dict(p.sandbox()))
    getattr(sandbox, str(case.handle_method))(*case.args[1:], **case.kwargs, **_extras(case))
    _check_extras(route, case)
    async_sandbox = AsyncSandboxHandle(async_client, Sandbox.from_dict(p.sandbox()))
    await getattr(async_sandbox, str(case.handle_method))(*case.args[1:], **case.kwargs, **_extras(case))
    _check_extras(route, case)


COMMAND_CALLS = [
    ("refresh", (), "GET", "/v1/sandboxes/sbx_1/commands/cmd_1", None),
    ("wait", (), "GET", "/v1/sandboxes/sbx_1/commands/cmd_1/wait", None),
    ("kill", (), "POST", "/v1/sandboxes/sbx_1/commands/cmd_1/kill", {}),
    ("send_stdin", ("hi",), "POST", "/v1/sandboxes/sbx_1/commands/cmd_1/stdin", {"data": "hi"}),
]


@pytest.mark.parametrize("call", COMMAND_CALLS, ids=lambda c: c[0])
async def test_command_handle_methods(
    api: respx.MockRouter, client: CrowNest, async_client: AsyncCrowNest, call: tuple[Any, ...]
) -> None:
    name, args, http, path, body = call
    answer = httpx.Response(204) if name == "send_stdin" else httpx.Response(200, json=p.command(status="killed"))
    route = api.route(method=http, path=path).mock(return_value=answer)
    case = Case("commands", name, (), http, path, answer, body=body)
    for handle in (CommandHandle(client, Command.from_dict(p.command())),):
        getattr(handle, name)(*args, **EXTRAS)
        _check_extras(route, case)
    async_handle = AsyncCommandHandle(async_client, Command.from_dict(p.command()))
    await getattr(async_handle, name)(*args, **EXTRAS)
    _check_extras(route, case)


def test_every_method_takes_the_per_call_options(client: CrowNest) -> None:
    sandbox = SandboxHandle(client, Sandbox.from_dict(p.sandbox()))
    command = CommandHandle(client, Command.from_dict(p.command()))
    holders: list[Any] = [sandbox, command]
    holders += [getattr(client, c.resource) for c in CASES] + [getattr(sandbox, c.resource) for c in BOUND]
    for holder in holders:
        for name, method in inspect.getmembers(holder, inspect.ismethod):
            if name.startswith("_") or name in {"to_dict", "from_dict", "get", "keys", "items", "values"}:
                continue
            if name in {"check_returncode", "output", "follow", "to_json"}:
                continue
            assert set(OPTIONS) <= set(inspect.signature(method).parameters), f"{holder!r}.{name}"


def test_extra_headers_win_over_the_sdks_own(api: respx.MockRouter, client: CrowNest) -> None:
    route = api.post("/v1/sandboxes").mock(return_value=httpx.Response(201, json=p.sandbox()))
    client.sandboxes.create(template="base", extra_headers={"Idempotency-Key": "mine", "User-Agent": "me/1"})
    assert route.calls.last.request.headers["idempotency-key"] == "mine"
    assert route.calls.last.request.headers["user-agent"] == "me/1"


def test_extra_body_on_an_upload_is_refused_before_sending(api: respx.MockRouter, client: CrowNest) -> None:
    route = api.put("/v1/sandboxes/sbx_1/files/content").mock(return_value=httpx.Response(200, json=p.file_info()))
    with pytest.raises(TypeError, match="extra_body"):
        client.files.write(SBX, "/a", b"x", extra_body={"a": 1})
    with pytest.raises(TypeError, match="extra_headers must be a dict of str to str"):
        client.files.write(SBX, "/a", b"x", extra_headers={"a": 1})  # type: ignore[dict-item]
    assert route.call_count == 0


def test_with_options_shares_the_pool_and_changes_only_the_copy(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        quick = client.with_options(timeout=5, max_retries=0)
        assert quick._http is client._http
        assert quick.timeout.read == 5 and client.timeout.read == 660
        assert quick.templates.list()
        labelled = client.with_options(default_headers={"X-Team": "a"}, max_retries=1)
        assert labelled.max_retries == 1 and client.max_retries == 0
        assert labelled.templates is not client.templates
        assert labelled.templates.list()
        labelled.close()  # the copy does not own the pool: the original goes on working
        assert client.templates.list()
        with pytest.raises(ValueError, match="max_retries"):
            client.with_options(max_retries=-1)


def test_with_options_default_headers_and_timeout_are_sent(api: respx.MockRouter, client: CrowNest) -> None:
    route = api.get("/v1/templates").mock(return_value=httpx.Response(200, json={"data": []}))
    client.with_options(timeout=5).templates.list()
    assert route.calls.last.request.extensions["timeout"]["read"] == 5
    client.templates.list(timeout=7)
    assert route.calls.last.request.extensions["timeout"]["read"] == 7
    client.with_options(default_headers={"X-Team": "a"}).templates.list()
    assert route.calls.last.request.headers["x-team"] == "a"
    assert route.calls.last.request.headers["authorization"].startswith("Bearer ")
    client.templates.list()
    assert "x-team" not in route.calls.last.request.headers


async def test_async_with_options(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        quick = client.with_options(timeout=5)
        assert quick._http is client._http
        assert await quick.templates.list()
        await quick.close()
        assert await client.templates.list()
