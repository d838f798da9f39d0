"""Answers that would keep a loop going forever, or put a secret into an error message (respx:
only a mock answers this way on purpose)."""

from __future__ import annotations

import httpx
import pytest
import respx

import payloads as p
from crownest import AsyncCrowNest, CrowNest, CrowNestError, ResponseValidationError


def test_cursors_that_go_round_in_a_circle_cannot_make_a_pager_loop(api: respx.MockRouter, client: CrowNest) -> None:
    answers = {None: "a", "a": "b", "b": "a"}
    api.get("/v1/sandboxes").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"data": [p.sandbox()], "nextCursor": answers[request.url.params.get("cursor")]}
        )
    )
    with pytest.raises(CrowNestError, match="cursor 'a' again"):
        list(client.sandboxes.list())
    assert api.calls.call_count == 3


async def test_empty_pages_without_end_cannot_make_a_pager_loop(
    api: respx.MockRouter, async_client: AsyncCrowNest
) -> None:
    api.get("/v1/sandboxes").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"data": [], "nextCursor": "c" + request.url.params.get("cursor", "")}
        )
    )
    with pytest.raises(CrowNestError, match="101 empty pages in a row"):
        [s async for s in async_client.sandboxes.list()]


def test_a_wait_that_always_answers_running_ends(api: respx.MockRouter, client: CrowNest) -> None:
    running = p.command(status="running", exitCode=None, finishedAt=None, durationMs=None, timeoutMs=120000)
    api.get("/v1/sandboxes/sbx_1/commands/cmd_1").respond(200, json=running)
    api.get("/v1/sandboxes/sbx_1/commands/cmd_1/wait").respond(200, json=running)
    command = client.commands.get("sbx_1", "cmd_1")
    with pytest.raises(CrowNestError, match="still running after 4 waits, more than its timeout"):
        command.wait()
    assert api.calls.call_count == 1 + 4  # a command of 120 s fits in three waits of 60 s


async def test_an_async_wait_that_always_answers_running_ends(
    api: respx.MockRouter, async_client: AsyncCrowNest
) -> None:
    running = p.command(status="running", exitCode=None, finishedAt=None, durationMs=None, timeoutMs=1000)
    api.get("/v1/sandboxes/sbx_1/commands/cmd_1").respond(200, json=running)
    api.get("/v1/sandboxes/sbx_1/commands/cmd_1/wait").respond(200, json=running)
    command = await async_client.commands.get("sbx_1", "cmd_1")
    with pytest.raises(CrowNestError, match="still running after 2 waits"):
        await command.wait()


def test_a_metadata_filter_key_holding_a_colon_is_refused(api: respx.MockRouter, client: CrowNest) -> None:
    """`{"a:b": "c"}` would be sent as `a:b:c`, which the API reads as key `a`, value `b:c`."""
    route = api.get("/v1/sandboxes").respond(200, json={"data": [], "nextCursor": None})
    for bad in ({"a:b": "c"}, {"": "c"}):
        with pytest.raises(ValueError, match="metadata: each key must be non-empty and without ':'"):
            list(client.sandboxes.list(metadata=bad))
    assert route.call_count == 0
    assert list(client.sandboxes.list(metadata={"a": "b:c"})) == []  # a colon in a value is fine


def test_a_secret_field_is_not_quoted_in_a_validation_error(api: respx.MockRouter, client: CrowNest) -> None:
    api.post("/v1/sandboxes/sbx_1/previews").respond(201, json=p.preview(port="8080"))
    with pytest.raises(ResponseValidationError) as caught:
        client.previews.create("sbx_1", 8080, visibility="private")
    assert "tok_preview_secret" not in str(caught.value) and '"token": "[hidden]"' in str(caught.value)
