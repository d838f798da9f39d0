"""Uploads from paths, files and streams: byte-exact, streamed, and retried only when they can be replayed."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx

import payloads as p
from conftest import API_KEY, BASE_URL, sha
from crownest import BodyNotReplayableError, CrowNest, InternalServerError
from crownest._uploads import CHUNK
from crownest_local import LocalServer

SIZE = 3 * CHUNK + 12345  # several chunks and a partial one


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("uploads") / "blob.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def test_paths_files_and_streams_arrive_byte_exact(crownest_local: LocalServer, blob: Path) -> None:
    expected = sha(blob.read_bytes())
    with crownest_local.client() as client:
        sandbox = client.sandboxes.create(template="base")
        assert sandbox.files.write("from-path", blob).size_bytes == SIZE
        with blob.open("rb") as f:
            assert sandbox.files.write("from-file", f).size_bytes == SIZE
        with blob.open("rb") as f:
            sandbox.files.write("from-stream", iter(lambda: f.read(1000), b""))
        for name in ("from-path", "from-file", "from-stream"):
            assert sha(sandbox.files.read(name)) == expected, name
        assert sandbox.artifacts.create(path="from-path").sha256 == expected
        sandbox.kill()


async def test_async_uploads_arrive_byte_exact(crownest_local: LocalServer, blob: Path) -> None:
    expected = sha(blob.read_bytes())
    async with crownest_local.async_client() as client:
        sandbox = await client.sandboxes.create(template="base")
        await sandbox.files.write("from-path", blob)
        with blob.open("rb") as f:
            await sandbox.files.write("from-file", f)
        for name in ("from-path", "from-file"):
            assert sha(await sandbox.files.read(name)) == expected, name
        await sandbox.kill()


def test_a_seekable_file_is_sent_from_its_current_position(api: respx.MockRouter, client: CrowNest) -> None:
    route = api.put("/v1/sandboxes/sbx_1/files/content").respond(200, json=p.file_info())
    f = io.BytesIO(b"skip-this|send-this")
    f.seek(10)
    client.files.write("sbx_1", "x", f)
    assert route.calls.last.request.content == b"send-this"
    assert route.calls.last.request.headers["content-length"] == "9"


def test_a_path_or_seekable_file_is_read_again_on_retry(api: respx.MockRouter, blob: Path) -> None:
    route = api.put("/v1/sandboxes/sbx_1/files/content")
    route.side_effect = [
        httpx.Response(503, json={"error": {"code": "unavailable", "message": "", "details": {}}}),
        httpx.Response(200, json=p.file_info()),
    ] * 2
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=1) as client:
        client.files.write("sbx_1", "x", blob)
        with blob.open("rb") as f:
            client.files.write("sbx_1", "x", f)
    bodies = [call.request.content for call in route.calls]
    assert len(bodies) == 4 and all(body == blob.read_bytes() for body in bodies)


def test_a_one_shot_stream_is_not_retried_once_sent(api: respx.MockRouter) -> None:
    route = api.put("/v1/sandboxes/sbx_1/files/content").respond(
        503, json={"error": {"code": "unavailable", "message": "busy", "details": {}}}
    )

    def chunks() -> Iterator[bytes]:
        yield b"one-"
        yield b"shot"

    with (
        CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=3) as client,
        pytest.raises(BodyNotReplayableError) as caught,
    ):
        client.files.write("sbx_1", "x", chunks())
    assert route.call_count == 1 and route.calls.last.request.content == b"one-shot"
    assert isinstance(caught.value.__cause__, InternalServerError)
    assert "one-shot upload stream" in str(caught.value) and "503" in str(caught.value)


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (io.StringIO("text"), TypeError, "binary mode"),
        ({"not": "bytes"}, TypeError, "data must be str, bytes, a path or a binary file, got dict"),
        (Path("/no/such/file"), FileNotFoundError, "data: no file at '/no/such/file'"),
        (12, TypeError, "got int"),
    ],
)
def test_wrong_upload_arguments_fail_before_any_request(
    api: respx.MockRouter, client: CrowNest, data: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        client.files.write("sbx_1", "x", data)  # type: ignore[arg-type]
    assert not api.calls
