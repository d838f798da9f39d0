"""Every failure ends in a CrowNestError subclass with what was received."""

from __future__ import annotations

import httpx
import pytest
import respx

import crownest
import payloads as p
from conftest import API_KEY, BASE_URL
from crownest import AsyncCrowNest, CrowNest

STATUS_CLASSES = [
    (400, crownest.BadRequestError),
    (401, crownest.AuthenticationError),
    (403, crownest.PermissionDeniedError),
    (404, crownest.NotFoundError),
    (405, crownest.CrowNestApiError),
    (409, crownest.ConflictError),
    (413, crownest.CrowNestApiError),
    (429, crownest.RateLimitError),
    (500, crownest.InternalServerError),
    (503, crownest.InternalServerError),
    (520, crownest.InternalServerError),
    (599, crownest.InternalServerError),
]


@pytest.mark.parametrize("status, cls", STATUS_CLASSES)
def test_json_error_maps_to_its_class(api: respx.MockRouter, client: CrowNest, status: int, cls: type) -> None:
    api.get("/v1/sandboxes/sbx_x").mock(
        return_value=httpx.Response(status, json=p.error("some_new_code", "Nope.", field="ttlMs"))
    )
    with pytest.raises(cls) as info:
        client.sandboxes.get("sbx_x")
    e = info.value
    assert type(e) is cls and isinstance(e, crownest.CrowNestApiError)
    assert (e.status, e.code, str(e), e.details, e.request_id) == (
        status,
        "some_new_code",
        "Nope.",
        {"field": "ttlMs"},
        "req_1",
    )
    assert e.response.status_code == status


@pytest.mark.parametrize(
    "response, code, text",
    [
        (httpx.Response(502, html="<html><body>Bad Gateway</body></html>"), "http_502", "Bad Gateway"),
        (httpx.Response(504), "http_504", "empty body"),
        (httpx.Response(520, text="origin error"), "http_520", "origin error"),
        (httpx.Response(500, json={"message": "other shape"}), "http_500", "other shape"),
        (httpx.Response(400, json={"error": "just a string"}), "http_400", "just a string"),
        (httpx.Response(404, json={"error": {"code": 7}}), "http_404", "HTTP 404"),
        (httpx.Response(409, content=b'{"error": {"code": "trunc'), "http_409", "trunc"),
    ],
)
def test_non_envelope_bodies_still_raise_api_errors(
    api: respx.MockRouter, client: CrowNest, response: httpx.Response, code: str, text: str
) -> None:
    api.get("/v1/sandboxes/sbx_x").mock(return_value=response)
    with pytest.raises(crownest.CrowNestApiError) as info:
        client.sandboxes.get("sbx_x")
    assert info.value.status == response.status_code
    assert info.value.code == code
    assert info.value.details == {}
    assert text in str(info.value)


def test_error_details_are_never_none(api: respx.MockRouter, client: CrowNest) -> None:
    body = {"error": {"code": "internal_error", "message": "x", "details": None}}
    api.get("/v1/sandboxes/sbx_x").mock(return_value=httpx.Response(500, json=body))
    with pytest.raises(crownest.InternalServerError) as info:
        client.sandboxes.get("sbx_x")
    assert info.value.details == {}


@pytest.mark.parametrize(
    "body",
    [
        b"<html>oops</html>",
        b"",
        b'{"id": "sbx_1", "templ',
        b"[1, 2]",
        b'{"id": "sbx_1"}',
        b'{"id": 5, "template": "python", "status": 3, "metadata": {}, "ttlMs": 1, "createdAt": "x", "expiresAt": "y", "endedAt": null}',
    ],
)
def test_a_2xx_body_that_is_not_the_model_raises_response_validation_error(
    api: respx.MockRouter, client: CrowNest, body: bytes
) -> None:
    api.get("/v1/sandboxes/sbx_1").mock(return_value=httpx.Response(200, content=body))
    with pytest.raises(crownest.ResponseValidationError) as info:
        client.sandboxes.get("sbx_1")
    assert info.value.status == 200
    assert isinstance(info.value, crownest.CrowNestError)


def test_connection_failure_is_a_connection_error(api: respx.MockRouter, client: CrowNest) -> None:
    api.get("/v1/sandboxes/sbx_1").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(crownest.CrowNestConnectionError) as info:
        client.sandboxes.get("sbx_1")
    assert not isinstance(info.value, (crownest.CrowNestApiError, crownest.CrowNestTimeoutError))


async def test_timeout_is_a_timeout_error(api: respx.MockRouter, async_client: AsyncCrowNest) -> None:
    api.get("/v1/sandboxes/sbx_1").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(crownest.CrowNestTimeoutError):
        await async_client.sandboxes.get("sbx_1")


async def test_async_errors_map_the_same(api: respx.MockRouter, async_client: AsyncCrowNest) -> None:
    api.get("/v1/sandboxes/sbx_x").mock(return_value=httpx.Response(404, json=p.error("sandbox_not_found")))
    with pytest.raises(crownest.NotFoundError) as info:
        await async_client.sandboxes.get("sbx_x")
    assert info.value.code == "sandbox_not_found"


def test_a_failed_command_is_not_an_error(api: respx.MockRouter, client: CrowNest) -> None:
    api.post("/v1/sandboxes/sbx_1/commands/run").mock(
        return_value=httpx.Response(200, json=p.command(status="failed", exitCode=3))
    )
    result = client.commands.run("sbx_1", "exit 3")
    assert (result["exitCode"], result["status"]) == (3, "failed")


def test_no_api_key_is_a_clear_error_at_construction() -> None:
    with pytest.raises(crownest.CrowNestError, match="CROWNEST_API_KEY"):
        CrowNest(base_url=BASE_URL)
    with pytest.raises(crownest.CrowNestError, match="CROWNEST_API_KEY"):
        AsyncCrowNest(base_url=BASE_URL)


def test_environment_supplies_key_and_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWNEST_API_KEY", API_KEY)
    monkeypatch.setenv("CROWNEST_BASE_URL", "http://127.0.0.1:9/")
    client = CrowNest()
    assert client.base_url == "http://127.0.0.1:9"
    monkeypatch.delenv("CROWNEST_BASE_URL")
    assert CrowNest().base_url == "https://api.crownest.dev"


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda c: c.sandboxes.get(""), "sandbox_id"),
        (lambda c: c.sandboxes.get(None), "sandbox_id"),
        (lambda c: c.sandboxes.create(template=3), "template"),
        (lambda c: c.sandboxes.create(template="python", ttl_ms="10"), "ttl_ms"),
        (lambda c: c.sandboxes.create(template="python", ttl_ms=True), "ttl_ms"),
        (lambda c: c.sandboxes.create(template="python", metadata={"a": 1}), "metadata"),
        (lambda c: c.files.write("sbx_1", "a.txt", 12), "data"),
        (lambda c: c.commands.run("sbx_1", ["ls"]), "command"),
        (lambda c: c.sandboxes.get("sbx_1", timeout=-1), "timeout"),
        (lambda c: c.sandboxes.get("sbx_1", max_retries=-1), "max_retries"),
    ],
)
def test_a_wrong_argument_fails_before_any_request(
    api: respx.MockRouter, client: CrowNest, call: object, name: str
) -> None:
    with pytest.raises((TypeError, ValueError), match=name):
        call(client)  # type: ignore[operator]
    assert not api.calls


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"max_retries": -1}, {"base_url": "ftp://x"}])
def test_a_wrong_client_argument_fails_at_construction(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        CrowNest(api_key=API_KEY, **kwargs)  # type: ignore[arg-type]


def test_path_parameters_are_percent_encoded(api: respx.MockRouter, client: CrowNest) -> None:
    route = api.get(url__regex=r".*/v1/sandboxes/.+").mock(return_value=httpx.Response(200, json=p.sandbox()))
    client.sandboxes.get("a/../b?c")
    assert route.calls.last.request.url.raw_path == b"/v1/sandboxes/a%2F..%2Fb%3Fc"
