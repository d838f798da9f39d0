"""Inputs that must not change where a call goes, or leak a secret: refused before any request.

Path parameters that URL normalisation would remove (`.`, `..`), IDs holding `/`,
header values that would break the header, and API keys that cannot be sent as they are.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import respx

from crownest import AsyncCrowNest, CrowNest, NotFoundError
from crownest_local import LocalServer


@pytest.fixture(scope="module")
def local() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.mark.parametrize("bad", [".", "..", ""])
def test_dot_segments_are_refused_before_any_request(api: respx.MockRouter, client: CrowNest, bad: str) -> None:
    route = api.route().respond(200, json={})
    calls = [
        lambda: client.sandboxes.get(bad),
        lambda: client.previews.delete("sbx_1", bad),
        lambda: client.commands.get(bad, "cmd_1"),
        lambda: client.artifacts.download(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="must be a non-empty string other than"):
            call()
    assert route.call_count == 0


async def test_dot_segments_are_refused_async(api: respx.MockRouter, async_client: AsyncCrowNest) -> None:
    route = api.route().respond(200, json={})
    with pytest.raises(ValueError, match="preview_id"):
        await async_client.previews.delete("sbx_1", "..")
    assert route.call_count == 0


def test_dots_inside_an_id_are_sent_as_they_are(api: respx.MockRouter, client: CrowNest) -> None:
    route = api.get(url__regex=r"/v1/sandboxes/[^/]+$").respond(404, json={"error": {"code": "sandbox_not_found"}})
    for value in ("...", ".x", "a..b"):
        with pytest.raises(NotFoundError):
            client.sandboxes.get(value)
    assert [c.request.url.raw_path for c in route.calls] == [
        b"/v1/sandboxes/...",
        b"/v1/sandboxes/.x",
        b"/v1/sandboxes/a..b",
    ]


@pytest.mark.parametrize("value", ["a/b", "a b", "a\x00b", "a\nb", "ü", "a?b=c", "a#b", "%2F", "a%2E%2E"])
def test_odd_ids_reach_local_as_one_segment(local: LocalServer, value: str) -> None:
    """Whatever an ID holds, it is one path segment: the server says that sandbox does not exist."""
    with local.client(max_retries=0) as client:
        with pytest.raises(NotFoundError) as caught:
            client.sandboxes.get(value)
        assert caught.value.code == "sandbox_not_found"
        assert caught.value.details.get("sandboxId") == value


def test_dot_dot_cannot_kill_the_sandbox(local: LocalServer) -> None:
    with local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        try:
            with pytest.raises(ValueError):
                sandbox.previews.delete("..")
            assert client.sandboxes.get(sandbox.id).status == "running"
        finally:
            sandbox.kill()


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "ü", " 7", "7 ", "", "a\tb"])
def test_header_arguments_that_cannot_be_sent_are_refused(api: respx.MockRouter, client: CrowNest, value: str) -> None:
    route = api.route().respond(200, json={})
    with pytest.raises(ValueError, match="last_event_id must be 1 or more printable ASCII"):
        next(iter(client.commands.events("sbx_1", "cmd_1", last_event_id=value)))
    with pytest.raises(ValueError, match="idempotency_key must be"):
        client.sandboxes.create(template="base", idempotency_key=value)
    assert route.call_count == 0
