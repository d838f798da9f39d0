"""CROWNEST_LOG: what is logged (method, path, status, request id, attempt, delay) and what never is."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings

import httpx
import pytest
import respx

import crownest
import payloads as p
from conftest import API_KEY, BASE_URL
from crownest import CrowNest


def test_requests_and_retries_are_logged_without_secrets_or_bodies(
    api: respx.MockRouter, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    api.post("/v1/sandboxes").mock(
        side_effect=[
            httpx.Response(503, json=p.error("unavailable"), headers={"retry-after": "1", "x-request-id": "req_a"}),
            httpx.Response(201, json=p.sandbox(), headers={"x-request-id": "req_b"}),
        ]
    )
    api.get("/v1/sandboxes/sbx_x").mock(return_value=httpx.Response(401, json=p.error("invalid_api_key")))
    caplog.set_level(logging.DEBUG, logger="crownest")
    with CrowNest(api_key=API_KEY, base_url=BASE_URL) as client:
        client.sandboxes.create(template="python", env={"TOKEN": "env-secret-value"})
        with pytest.raises(crownest.AuthenticationError):
            client.sandboxes.get("sbx_x")
    text = caplog.text
    assert "POST /v1/sandboxes -> 503 request_id=req_a attempt=1" in text
    assert "POST /v1/sandboxes failed (503 unavailable); retry 1 of 2 in 1.00 s" in text
    assert "POST /v1/sandboxes -> 201 request_id=req_b attempt=2" in text
    assert "GET /v1/sandboxes/sbx_x -> 401" in text
    for secret in (API_KEY, "env-secret-value", "primes-demo", "Bearer", "idempotency"):
        assert secret.lower() not in text.lower()


def test_crownest_log_env_turns_logging_on() -> None:
    code = (
        "import logging, crownest; crownest.CrowNest(api_key='k', base_url='https://x'); "
        "log = logging.getLogger('crownest'); print(log.level, len(log.handlers))"
    )
    for value, expected in (("debug", "10 1"), ("INFO", "20 1"), ("", "0 0")):
        env = {"CROWNEST_LOG": value, "PATH": ""}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.split() == expected.split()


@pytest.mark.parametrize("url", ["http://example.com", "http://10.0.0.5:8080"])
def test_plain_http_off_loopback_warns(url: str) -> None:
    with pytest.warns(UserWarning, match="unencrypted"):
        CrowNest(api_key=API_KEY, base_url=url)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8787", "http://localhost:1", "http://[::1]:2", "https://example.com"]
)
def test_loopback_or_https_does_not_warn(url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        CrowNest(api_key=API_KEY, base_url=url)
