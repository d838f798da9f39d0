"""The API key (and preview tokens) never show in repr(), str() of errors, or error messages."""

from __future__ import annotations

import httpx
import pytest
import respx

import crownest
import payloads as p
from conftest import API_KEY, BASE_URL
from crownest import AsyncCrowNest, CrowNest
from crownest._generated.resources import CLIENT_RESOURCES, SANDBOX_RESOURCES
from crownest.models import Preview


def test_no_key_in_any_repr_or_error(api: respx.MockRouter, client: CrowNest) -> None:
    api.get("/v1/sandboxes/sbx_1").mock(return_value=httpx.Response(200, json=p.sandbox()))
    api.get("/v1/sandboxes/sbx_x").mock(return_value=httpx.Response(401, json=p.error("invalid_api_key")))
    api.get("/v1/sandboxes/sbx_y").mock(return_value=httpx.Response(502, html="<h1>Bad gateway</h1>"))
    api.get("/v1/sandboxes/sbx_z").mock(side_effect=httpx.ConnectError("refused"))
    api.get("/v1/sandboxes/sbx_w").mock(return_value=httpx.Response(200, content=b"not json"))
    sandbox = client.sandboxes.get("sbx_1")
    seen = [repr(client), str(client), repr(sandbox), repr(sandbox.commands), repr(client.sandboxes)]
    seen += [repr(AsyncCrowNest(api_key=API_KEY, base_url=BASE_URL))]
    for sid in ("sbx_x", "sbx_y", "sbx_z", "sbx_w"):
        with pytest.raises(crownest.CrowNestError) as info:
            client.sandboxes.get(sid)
        seen += [str(info.value), repr(info.value), str(info.value.args)]
    assert all(API_KEY not in text for text in seen), [t for t in seen if API_KEY in t]


def test_preview_token_is_not_in_repr() -> None:
    preview = Preview.from_dict(p.preview())
    assert preview.token == "tok_preview_secret"
    assert "tok_preview_secret" not in repr(preview)


def test_no_key_anywhere_across_every_object_error_and_log_line(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """Every client, resource (client and handle, both modes), every error class, a debug log of retries."""
    import logging

    from crownest._exceptions import _ERRORS_BY_STATUS, BodyNotReplayableError, ResponseValidationError
    from crownest_local import LocalServer

    statuses = [*_ERRORS_BY_STATUS, 418, 502, 599]
    for status in statuses:
        api.get(f"/v1/templates/t{status}").respond(status, json=p.error("some_code"))
    api.get("/v1/sandboxes/sbx_1").respond(200, json=p.sandbox())
    api.get("/v1/templates/flaky").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(503), httpx.Response(200, json=p.template())]
    )
    seen: list[str] = []
    caplog.set_level(logging.DEBUG, logger="crownest")
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=2) as client:
        sandbox = client.sandboxes.get("sbx_1")
        async_client = AsyncCrowNest(api_key=API_KEY, base_url=BASE_URL)
        for owner in (client, sandbox, async_client):
            for name in list(CLIENT_RESOURCES) + list(SANDBOX_RESOURCES):
                if hasattr(owner, name):
                    seen += [repr(getattr(owner, name)), str(getattr(owner, name))]
        seen += [repr(client), repr(sandbox), repr(async_client), str(sandbox.to_dict())]
        for status in statuses:
            with pytest.raises(crownest.CrowNestError) as info:
                client.templates.get(f"t{status}")
            seen += [str(info.value), repr(info.value), str(info.value.args)]
        client.templates.get("flaky")
    request = httpx.Request("GET", BASE_URL, headers={"Authorization": f"Bearer {API_KEY}"})
    for error in (
        ResponseValidationError("bad body", response=httpx.Response(200, request=request)),
        BodyNotReplayableError("no replay"),
    ):
        seen += [str(error), repr(error)]
    seen += [repr(LocalServer(api_key=API_KEY))]
    seen += [record.getMessage() for record in caplog.records] + [caplog.text]
    assert any("retry 2 of 2" in line for line in seen)  # the debug log did run
    assert all(API_KEY not in text for text in seen), [t for t in seen if API_KEY in t]
