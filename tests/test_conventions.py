"""Results as users of other SDKs expect them: typed mapping access with helpful key errors,
frozen, map fields that are dicts, `to_dict()`/`to_json()` round trips, and the request ID of the
answer on every parsed result, sync and async, against CrowNest Local.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import attrs
import pytest

import payloads as p
from crownest import AsyncCrowNest, BadRequestError, CrowNest, NotFoundError
from crownest._generated.resources import CLIENT_RESOURCES
from crownest._handle import AsyncSandboxHandle, SandboxHandle
from crownest.models import Command, EnvVars, Metadata, Preview, Sandbox
from crownest_local import LocalServer


def test_a_python_name_as_key_names_the_wire_key_and_the_attribute() -> None:
    command = Command.from_dict(p.command())
    with pytest.raises(KeyError) as caught:
        command["exit_code"]  # type: ignore[call-overload]
    assert str(caught.value) == "'exit_code': keys are the API's names; did you mean 'exitCode' or .exit_code?"


def test_a_misspelt_key_names_the_closest_key() -> None:
    command = Command.from_dict(p.command())
    with pytest.raises(KeyError, match="did you mean 'exitCode'") as caught:
        command["exitcode"]  # type: ignore[call-overload]
    assert "Its keys: id, sandboxId" in str(caught.value)


def test_an_optional_field_the_server_left_out_says_so() -> None:
    body = p.preview(visibility="public")
    del body["token"]
    with pytest.raises(KeyError, match="the server did not send it"):
        Preview.from_dict(body)["token"]


def test_results_are_frozen_with_a_message() -> None:
    sandbox = Sandbox.from_dict(p.sandbox())
    with pytest.raises(AttributeError, match=r"Sandbox is read-only: .*attrs.evolve\(result, status=...\)"):
        sandbox.status = "killed"  # type: ignore[misc, assignment]
    with pytest.raises(AttributeError, match="read-only"):
        del sandbox.id
    changed = attrs.evolve(sandbox, ttl_ms=5000)
    assert changed.ttl_ms == 5000 and sandbox.ttl_ms != 5000


def test_map_fields_are_dicts() -> None:
    sandbox = Sandbox.from_dict(p.sandbox(metadata={"job": "x"}))
    assert sandbox.metadata == {"job": "x"}
    assert repr(sandbox.metadata) == "{'job': 'x'}"
    assert "metadata={'job': 'x'}" in repr(sandbox)
    assert isinstance(sandbox.metadata, dict) and isinstance(sandbox.metadata, Metadata)
    assert EnvVars.from_dict({"A": "1"}) == {"A": "1"}


def test_to_dict_and_to_json_round_trip() -> None:
    body = p.command(cpuMs=3)
    command = Command.from_dict(body)
    assert Command.from_dict(command.to_dict()) == command
    assert command.to_dict()["cpuMs"] == 3 and command.to_dict()["exitCode"] == body["exitCode"]
    assert Command.from_dict(json.loads(command.to_json())) == command
    sandbox = Sandbox.from_dict(p.sandbox(metadata={"job": "x"}))
    assert Sandbox.from_dict(json.loads(sandbox.to_json(indent=2))) == sandbox


def test_every_result_carries_its_request_id(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base", metadata={"job": "ids"})
        assert sandbox._request_id and sandbox._request_id.startswith("req_")
        first = sandbox._request_id
        sandbox.refresh()
        assert sandbox._request_id and sandbox._request_id != first
        command = sandbox.commands.run("echo hi")
        assert command._request_id and command._request_id.startswith("req_")
        assert all(item._request_id for item in sandbox.files.list("/home/user"))
        assert sandbox.metadata == {"job": "ids"}
        sandbox.kill()
    assert Command.from_dict(p.command())._request_id is None


async def test_every_async_result_carries_its_request_id(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        sandbox = await client.sandboxes.create(template="base")
        assert sandbox._request_id and sandbox._request_id.startswith("req_")
        command = await sandbox.commands.run("echo hi")
        assert command._request_id and command._request_id != sandbox._request_id
        with pytest.raises(AttributeError, match="read-only"):
            command.exit_code = 3  # type: ignore[misc]
        await sandbox.kill()


def test_clients_are_named_in_the_package() -> None:
    assert CrowNest.with_options.__doc__ and AsyncCrowNest.with_options.__doc__


def test_with_raw_response_gives_status_headers_request_id_and_the_result(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        raw = client.with_raw_response.sandboxes.create(template="base")
        assert raw.status_code == 201
        assert raw.request_id and raw.request_id == raw.headers["x-request-id"]
        assert raw.http_response.request.method == "POST"
        sandbox = raw.parse()
        assert isinstance(sandbox, SandboxHandle) and sandbox._request_id == raw.request_id
        assert f"[201] POST /v1/sandboxes request_id={raw.request_id}" in repr(raw)
        written = client.with_raw_response.files.write(sandbox.id, "/home/user/a.txt", b"hi")
        assert written.status_code == 200
        read = client.with_raw_response.files.read_text(sandbox.id, "/home/user/a.txt")
        assert read.parse() == "hi" and read.request_id
        killed = client.with_raw_response.sandboxes.kill(sandbox.id)
        assert killed.status_code == 204 and killed.parse() is None and killed.request_id
        assert client.with_raw_response is client.with_raw_response


async def test_async_with_raw_response(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        raw = await client.with_raw_response.sandboxes.create(template="base")
        sandbox = raw.parse()
        assert raw.status_code == 201 and isinstance(sandbox, AsyncSandboxHandle)
        assert sandbox._request_id == raw.request_id
        got = await client.with_raw_response.sandboxes.get(sandbox.id, extra_headers={"X-Trace": "t"})
        assert got.http_response.request.headers["x-trace"] == "t"
        assert got.parse().id == sandbox.id
        await sandbox.kill()


def test_raw_twins_cover_every_method_that_sends_when_called(client: CrowNest) -> None:
    for resource in CLIENT_RESOURCES:
        methods = {n for n in dir(getattr(client, resource)) if not n.startswith("_")}
        raw = {n for n in vars(getattr(client.with_raw_response, resource)) if not n.startswith("_")}
        lazy = {n for n in methods if _is_lazy(getattr(getattr(client, resource), n))}
        assert raw == methods - lazy, resource


def _is_lazy(method: Any) -> bool:
    """A method that sends its request when iterated (a pager, a stream) or into a file or folder (a download)."""
    returns = str(inspect.signature(method).return_annotation)
    parameters = inspect.signature(method).parameters
    return (
        "Pager" in returns
        or "Stream" in returns
        or "to" in parameters
        or ("local_dir" in parameters and returns == "int")
    )


def test_an_argument_error_names_the_python_argument(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        with pytest.raises(BadRequestError) as caught:
            sandbox.set_ttl(5)
        assert str(caught.value).startswith("ttl_ms must be at least ")
        assert str(caught.value).endswith("(the API calls it ttlMs)")
        assert caught.value.message.startswith("ttlMs must be at least ")
        assert caught.value.details["field"] == "ttlMs"
        sandbox.kill()


def test_with_streaming_response_gives_the_answer_then_the_items(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        sandbox.files.write("/home/user/big.bin", b"x" * 100_000)
        with client.with_streaming_response.files.stream(sandbox.id, "/home/user/big.bin") as response:
            assert response.status_code == 200 and response.request_id
            assert response.headers["content-length"] == "100000"
            assert b"".join(response) == b"x" * 100_000
        command = sandbox.commands.run("echo hi")
        with client.with_streaming_response.commands.events(sandbox.id, command.id) as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            assert [e.event for e in events][-1] == "exit"
        with pytest.raises(NotFoundError), client.with_streaming_response.files.stream(sandbox.id, "/home/user/x"):
            pass
        sandbox.kill()


async def test_async_with_streaming_response(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        sandbox = await client.sandboxes.create(template="base")
        await sandbox.files.write("/home/user/a.txt", b"hello")
        async with client.with_streaming_response.files.stream(sandbox.id, "/home/user/a.txt") as response:
            assert response.status_code == 200 and response.request_id
            assert b"".join([chunk async for chunk in response]) == b"hello"
        await sandbox.kill()
