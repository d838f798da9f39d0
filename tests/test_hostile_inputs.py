"""Inputs that must not change where a call goes, or leak a secret: refused before any request.

Path parameters that URL normalisation would remove (`.`, `..`), IDs holding `/`,
header values that would break the header, and API keys that cannot be sent as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
import respx

from conftest import API_KEY, BASE_URL
from crownest import AsyncCrowNest, CrowNest, CrowNestConnectionError, CrowNestError, NotFoundError
from crownest_local import LocalServer


@pytest.fixture(scope="module")
def local() -> Iterator[LocalServer]:
    with LocalServer() as server:
        yield server


@pytest.mark.parametrize("bad", [".", "..", ""])
def test_dot_segments_are_refused_before_any_request(api: respx.MockRouter, client: CrowNest, bad: str) -> None:
    route = api.route().respond(200, json={})
    calls: list[Callable[[], object]] = [
        lambda: client.sandboxes.get(bad),
        lambda: client.previews.delete("sbx_1", bad),
        lambda: client.commands.get(bad, "cmd_1"),
        lambda: client.artifacts.get(bad),
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


@pytest.mark.parametrize(
    "key", [API_KEY + "\n", API_KEY + " ", " " + API_KEY, API_KEY + "é", "cn a b", API_KEY + "\x00"]
)
def test_an_api_key_that_cannot_be_sent_is_refused_without_showing_it(
    key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for make in (
        lambda: CrowNest(api_key=key, base_url=BASE_URL),
        lambda: AsyncCrowNest(api_key=key, base_url=BASE_URL),
    ):
        with pytest.raises(CrowNestError, match="must be printable ASCII") as caught:
            make()
        assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value)
    if "\x00" not in key:  # an environment variable cannot hold NUL
        monkeypatch.setenv("CROWNEST_API_KEY", key)
        with pytest.raises(CrowNestError, match="strip it"):
            CrowNest(base_url=BASE_URL)


@pytest.mark.parametrize(
    "headers",
    [{"X-Token": "tok_secret_value\n"}, {"X-Token": "tok_secret_value\u00e9"}, {"X Token": "v"}, {"X-Token": 7}],
)
def test_default_headers_that_cannot_be_sent_are_refused_without_showing_the_value(headers: dict[str, object]) -> None:
    with pytest.raises(CrowNestError, match="default_headers") as caught:
        CrowNest(api_key=API_KEY, base_url=BASE_URL, default_headers=headers)  # type: ignore[arg-type]
    assert "tok_secret_value" not in str(caught.value)
    with (
        CrowNest(api_key=API_KEY, base_url=BASE_URL) as client,
        pytest.raises(CrowNestError, match="default_headers") as caught,
    ):
        client.with_options(default_headers=headers)  # type: ignore[arg-type]
    assert "tok_secret_value" not in str(caught.value)


def test_an_unsendable_header_of_your_http_client_is_not_retried_nor_quoted(local: LocalServer) -> None:
    """httpx says `Illegal header value b'...'`, quoting it: only the class name reaches our message."""
    secret = "tok_secret_value_42"
    with (
        httpx.Client(headers={"X-Token": secret + "\n"}) as http,
        local.client(http_client=http, max_retries=2) as client,
        pytest.raises(CrowNestError) as caught,
    ):
        client.templates.list()
    assert not isinstance(caught.value, CrowNestConnectionError)  # not retried: it would fail again
    assert "LocalProtocolError" in str(caught.value)
    assert secret not in str(caught.value) and secret not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
