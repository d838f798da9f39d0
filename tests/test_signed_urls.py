"""Signed URLs (issue 17): files and artifacts reached with a plain HTTP client, no API key, until expiry."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from crownest._handle import SandboxHandle
from crownest_local import LocalServer, _signed

OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture
def sandbox(crownest_local: LocalServer) -> Iterator[SandboxHandle]:
    with crownest_local.client(max_retries=0) as client:
        handle = client.sandboxes.create(template="base")
        try:
            yield handle
        finally:
            handle.kill()


def altered(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return urlunsplit(parts._replace(query=urlencode(query)))


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_get_url_reads_without_the_key(sandbox: SandboxHandle) -> None:
    sandbox.files.write("data/report.csv", "a,b\n1,2\n")
    signed = sandbox.files.url("data/report.csv")
    assert signed.method == "GET" and "Authorization" not in signed.url
    got = httpx.get(signed.url)
    assert (got.status_code, got.content) == (200, b"a,b\n1,2\n")
    assert httpx.get(signed.url, headers={"Range": "bytes=2-"}).content == b"b\n1,2\n"
    assert httpx.get(signed.url).status_code == 200  # a GET URL works until it expires
    assert code(httpx.put(signed.url, content=b"x", headers=OCTETS)) == (403, "signed_url_invalid")


def test_put_url_writes_once(sandbox: SandboxHandle) -> None:
    signed = sandbox.files.url("up/load.bin", method="PUT", expires_in_s=60)
    assert httpx.put(signed.url, content=bytes(range(256)), headers=OCTETS).status_code == 200
    assert sandbox.files.read("up/load.bin") == bytes(range(256))
    assert code(httpx.put(signed.url, content=b"again", headers=OCTETS)) == (409, "signed_url_used")
    assert sandbox.files.read("up/load.bin") == bytes(range(256))
    assert code(httpx.get(signed.url)) == (403, "signed_url_invalid")  # a PUT URL does not read


def test_a_failed_put_leaves_the_url_usable(sandbox: SandboxHandle) -> None:
    signed = sandbox.files.url("x.txt", method="PUT")
    assert code(httpx.put(signed.url, content=b"x", headers={"Content-Type": "text/plain"}))[0] == 415
    assert httpx.put(signed.url, content=b"x", headers=OCTETS).status_code == 200


def test_altered_urls_are_refused(sandbox: SandboxHandle) -> None:
    sandbox.files.write("mine.txt", "mine")
    sandbox.files.write("other.txt", "other")
    signed = sandbox.files.url("mine.txt", expires_in_s=60)
    expires = dict(parse_qsl(urlsplit(signed.url).query))["expires"]
    for url in [
        altered(signed.url, path="/home/user/other.txt"),
        altered(signed.url, method="PUT"),
        altered(signed.url, expires=str(int(expires) + 3600)),
        altered(signed.url, sig="0" * 64),
        altered(signed.url, nonce="other"),
        signed.url.replace(sandbox.id, "sbx_other"),
        signed.url.split("?")[0],
    ]:
        assert code(httpx.get(url)) == (403, "signed_url_invalid"), url
    assert httpx.get(signed.url).content == b"mine"


def test_expired_urls_are_refused(sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    sandbox.files.write("a.txt", "a")
    signed = sandbox.files.url("a.txt", expires_in_s=30)
    put = sandbox.files.url("b.txt", method="PUT", expires_in_s=30)
    real = _signed.clock
    monkeypatch.setattr(_signed, "clock", lambda: real() + 31)  # the server's clock, 31 s on
    assert code(httpx.get(signed.url)) == (403, "signed_url_expired")
    assert code(httpx.put(put.url, content=b"b", headers=OCTETS)) == (403, "signed_url_expired")
    assert not sandbox.files.exists("b.txt")


def test_the_file_api_path_rules_apply(sandbox: SandboxHandle) -> None:
    sandbox.commands.run("ln -s /etc out")
    signed = sandbox.files.url("out/passwd")
    assert code(httpx.get(signed.url)) == (400, "invalid_path")


async def test_artifact_url(crownest_local: LocalServer, monkeypatch: pytest.MonkeyPatch) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        sandbox = await client.sandboxes.create(template="base")
        await sandbox.files.write("out.txt", "artifact body")
        artifact = await sandbox.artifacts.create(path="out.txt")
        await sandbox.kill()
        signed = await client.artifacts.url(artifact.id, expires_in_s=60)
        async with httpx.AsyncClient() as http:
            got = await http.get(signed.url)
            assert (got.status_code, got.content) == (200, b"artifact body")
            assert code(await http.get(signed.url.replace(artifact.id, "art_other"))) == (403, "signed_url_invalid")
            real = _signed.clock
            monkeypatch.setattr(_signed, "clock", lambda: real() + 61)
            assert code(await http.get(signed.url)) == (403, "signed_url_expired")
