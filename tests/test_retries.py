"""The retry rules, as pure functions and through the client."""

from __future__ import annotations

import email.utils

import httpx
import pytest
import respx

import crownest
import payloads as p
from conftest import API_KEY, BASE_URL
from crownest import CrowNest
from crownest._retries import backoff_delay, is_retryable_status, retry_delay, server_delay


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    assert is_retryable_status(status, "anything")


@pytest.mark.parametrize(
    "status, code", [(400, "invalid_request"), (404, "sandbox_not_found"), (409, "idempotency_key_reused"), (501, "x")]
)
def test_not_retryable(status: int, code: str) -> None:
    assert not is_retryable_status(status, code)
    assert is_retryable_status(409, "idempotency_key_in_use")


@pytest.mark.parametrize("retries_taken, low, high", [(0, 0.375, 0.5), (1, 0.75, 1.0), (3, 3.0, 4.0), (10, 6.0, 8.0)])
def test_backoff_is_exponential_with_jitter_and_capped(retries_taken: int, low: float, high: float) -> None:
    assert backoff_delay(retries_taken, jitter=lambda: 0.0) == high
    assert backoff_delay(retries_taken, jitter=lambda: 0.999999) == pytest.approx(low, rel=1e-5)


def test_server_delay_forms() -> None:
    assert server_delay(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert server_delay(httpx.Headers({"retry-after": "2"})) == 2.0
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert server_delay(httpx.Headers({"retry-after": date}), now=lambda: 1_000_000) == 30.0
    assert server_delay(httpx.Headers({"retry-after": "soon"})) is None
    assert server_delay(httpx.Headers()) is None


def test_over_the_cap_means_no_retry() -> None:
    assert retry_delay(0, httpx.Headers({"retry-after": "300"})) is None
    assert retry_delay(0, httpx.Headers({"retry-after": "60"})) == 60.0


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("time.sleep", slept.append)
    return slept


@pytest.mark.parametrize("max_retries", [0, 1, 2, 4])
def test_attempts_are_max_retries_plus_one(api: respx.MockRouter, sleeps: list[float], max_retries: int) -> None:
    route = api.get("/v1/sandboxes/sbx_1").mock(return_value=httpx.Response(503, json=p.error("unavailable")))
    with (
        CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=max_retries) as client,
        pytest.raises(crownest.InternalServerError),
    ):
        client.sandboxes.get("sbx_1")
    assert route.call_count == max_retries + 1
    assert len(sleeps) == max_retries


def test_retry_after_is_honoured_and_over_cap_stops_at_once(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get("/v1/sandboxes/sbx_1").mock(
        side_effect=[
            httpx.Response(429, json=p.error("rate_limited"), headers={"retry-after": "3"}),
            httpx.Response(429, json=p.error("rate_limited"), headers={"retry-after": "300"}),
        ]
    )
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=5) as client, pytest.raises(crownest.RateLimitError):
        client.sandboxes.get("sbx_1")
    assert route.call_count == 2
    assert sleeps == [3.0]


def test_a_client_error_is_not_retried(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get("/v1/sandboxes/sbx_1").mock(return_value=httpx.Response(404, json=p.error("sandbox_not_found")))
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=3) as client, pytest.raises(crownest.NotFoundError):
        client.sandboxes.get("sbx_1")
    assert route.call_count == 1 and sleeps == []


def test_per_call_max_retries_overrides_the_client(api: respx.MockRouter, sleeps: list[float]) -> None:
    route = api.get("/v1/sandboxes/sbx_1").mock(side_effect=httpx.ConnectError("refused"))
    with (
        CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=3) as client,
        pytest.raises(crownest.CrowNestConnectionError),
    ):
        client.sandboxes.get("sbx_1", max_retries=1)
    assert route.call_count == 2


@pytest.mark.parametrize(
    "timeout, expected",
    [
        (crownest.NOT_GIVEN, {"connect": 5.0, "read": 660.0, "write": 660.0, "pool": 660.0}),
        (30, {"connect": 5.0, "read": 30.0, "write": 30.0, "pool": 30.0}),
        (2, {"connect": 2.0, "read": 2.0, "write": 2.0, "pool": 2.0}),
        (None, {"connect": 5.0, "read": None, "write": None, "pool": None}),
        (httpx.Timeout(1.0, read=9.0), {"connect": 1.0, "read": 9.0, "write": 1.0, "pool": 1.0}),
        # The wait for a free connection is part of an attempt, whose budget is the read timeout.
        (httpx.Timeout(9.0, read=2.0), {"connect": 9.0, "read": 2.0, "write": 9.0, "pool": 2.0}),
        (httpx.Timeout(1.0, read=3.0, pool=None), {"connect": 1.0, "read": 3.0, "write": 1.0, "pool": 3.0}),
    ],
)
def test_timeouts_per_call(
    api: respx.MockRouter, client: CrowNest, timeout: object, expected: dict[str, object]
) -> None:
    route = api.get("/v1/sandboxes/sbx_1").mock(return_value=httpx.Response(200, json=p.sandbox()))
    client.sandboxes.get("sbx_1", timeout=timeout)  # type: ignore[arg-type]
    assert route.calls.last.request.extensions["timeout"] == expected
