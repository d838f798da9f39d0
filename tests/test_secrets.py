"""The API key (and preview tokens) never show in repr(), str() of errors, or error messages."""

from __future__ import annotations

import httpx
import pytest
import respx

import crownest
import payloads as p
from conftest import API_KEY, BASE_URL
from crownest import AsyncCrowNest, CrowNest
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
