"""Downloads into local files: byte-exact, in chunks, resumed with Range after a broken transfer."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
import respx

from conftest import API_KEY, BASE_URL, Breaks
from crownest import AsyncCrowNest, CrowNest, NotFoundError
from crownest_local import LocalServer

CONTENT = bytes(range(256)) * 4  # 1 KiB
URL = "/v1/sandboxes/sbx_1/files/content"


def broken_then_resumed(request: httpx.Request, answers: list[httpx.Request]) -> httpx.Response:
    answers.append(request)
    if len(answers) == 1:
        headers = {"Content-Length": str(len(CONTENT)), "ETag": '"v1"'}
        return httpx.Response(200, headers=headers, stream=Breaks(CONTENT[:300]))
    start = int(request.headers["range"].removeprefix("bytes=").rstrip("-"))
    headers = {"Content-Range": f"bytes {start}-{len(CONTENT) - 1}/{len(CONTENT)}", "ETag": '"v1"'}
    return httpx.Response(206, headers=headers, stream=httpx.ByteStream(CONTENT[start:]))


def test_a_broken_download_resumes_where_it_stopped(tmp_path: Path) -> None:
    """An httpx MockTransport (respx reads a mocked body whole, so it cannot break one midway)."""
    seen: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: broken_then_resumed(request, seen))
    progress: list[tuple[int, int | None]] = []
    http = httpx.Client(transport=transport)
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=2, http_client=http) as client, http:
        written = client.files.download(
            "sbx_1", "f", tmp_path / "out", progress=lambda done, total: progress.append((done, total))
        )
    assert (tmp_path / "out").read_bytes() == CONTENT and written == len(CONTENT)
    assert "range" not in seen[0].headers
    assert (seen[1].headers["range"], seen[1].headers["if-range"]) == ("bytes=300-", '"v1"')
    assert progress[0] == (300, 1024) and progress[-1] == (1024, 1024)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


async def test_a_broken_async_download_resumes_too(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: broken_then_resumed(request, seen)))
    async with AsyncCrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=2, http_client=http) as client, http:
        assert await client.files.download("sbx_1", "f", tmp_path / "out") == len(CONTENT)
    assert (tmp_path / "out").read_bytes() == CONTENT and seen[1].headers["range"] == "bytes=300-"


def test_a_server_that_ignores_range_is_read_again_from_the_start(tmp_path: Path) -> None:
    answers = iter(
        [httpx.Response(200, stream=Breaks(b"stale-partial")), httpx.Response(200, stream=httpx.ByteStream(CONTENT))]
    )
    http = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=1, http_client=http) as client, http:
        client.files.download("sbx_1", "f", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == CONTENT


def test_a_failed_download_leaves_no_file(api: respx.MockRouter, tmp_path: Path) -> None:
    api.get(URL).respond(404, json={"error": {"code": "file_not_found", "message": "No file.", "details": {}}})
    with CrowNest(api_key=API_KEY, base_url=BASE_URL) as client, pytest.raises(NotFoundError):
        client.files.download("sbx_1", "f", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


async def test_downloads_from_crownest_local_are_byte_exact(crownest_local: LocalServer, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 77)
    with crownest_local.client() as client:
        sandbox = client.sandboxes.create(template="base")
        sandbox.files.write("big.bin", data)
        artifact = sandbox.artifacts.create(path="big.bin")
        assert sandbox.files.download("big.bin", tmp_path / "a") == len(data)
        assert client.artifacts.download_to(artifact.id, tmp_path / "b") == len(data)
    async with crownest_local.async_client() as aclient:
        await aclient.files.download(sandbox.id, "big.bin", tmp_path / "c")
        await aclient.artifacts.download_to(artifact.id, str(tmp_path / "d"))
        await aclient.sandboxes.kill(sandbox.id)
    for name in "abcd":
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == artifact.sha256, name
