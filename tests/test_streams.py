"""Streamed answers: live command output, byte streams, upload progress, and their recovery.

The end-to-end tests run against CrowNest Local with `cut_streams`, which
breaks every streamed answer's connection after a number of body bytes; the
edge cases that only a mock can make (a server that ignores Range, a stream
that breaks before any whole event) use an httpx MockTransport.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import payloads
from conftest import API_KEY, BASE_URL, Breaks, sha
from crownest import AsyncCrowNest, CrowNest, CrowNestConnectionError, CrowNestError, OutputChunk
from crownest._streams import EventResume
from crownest_local import LocalServer

# Prints 80,000 numbered lines (5.3 MB) on stdout and a marker on stderr.
BIG_OUTPUT = (
    "python3 -c \"import sys\nfor i in range(80000): sys.stdout.write('%065d\\n' % i)\nsys.stderr.write('end')\""
)
EXPECTED_STDOUT = "".join(f"{i:065d}\n" for i in range(80000)).encode()
CUT = 1_500_000  # bytes per connection: more than the exit event (the Command carries 1 MiB of stdout)


@pytest.fixture(scope="module")
def cutting_server() -> Iterator[LocalServer]:
    with LocalServer(cut_streams=CUT) as server:
        yield server


def joined(chunks: list[OutputChunk], stream: str) -> bytes:
    return "".join(c.data for c in chunks if c.stream == stream).encode()


# Live command output


def test_output_is_exact_across_broken_connections_sync(cutting_server: LocalServer) -> None:
    before = cutting_server.stats.get("streamCommandEvents", 0)
    with cutting_server.client() as client:
        sandbox = client.sandboxes.create(template="python")
        handle = sandbox.commands.start(BIG_OUTPUT)
        with handle.output() as output:
            chunks = list(output)
        sandbox.kill()
    assert sha(joined(chunks, "stdout")) == sha(EXPECTED_STDOUT)
    assert joined(chunks, "stderr") == b"end"
    assert (handle.status, handle.exit_code) == ("succeeded", 0)
    assert cutting_server.stats["streamCommandEvents"] - before >= len(EXPECTED_STDOUT) // CUT + 1  # it did reconnect


async def test_output_is_exact_across_broken_connections_async(cutting_server: LocalServer) -> None:
    before = cutting_server.stats.get("streamCommandEvents", 0)
    async with cutting_server.async_client() as client:
        sandbox = await client.sandboxes.create(template="python")
        handle = await sandbox.commands.start(BIG_OUTPUT)
        async with handle.output() as output:
            chunks = [chunk async for chunk in output]
        await sandbox.kill()
    assert sha(joined(chunks, "stdout")) == sha(EXPECTED_STDOUT)
    assert joined(chunks, "stderr") == b"end"
    assert handle.status == "succeeded"
    assert cutting_server.stats["streamCommandEvents"] - before >= len(EXPECTED_STDOUT) // CUT + 1


def test_run_callbacks_see_all_output_before_run_returns(cutting_server: LocalServer) -> None:
    out: list[str] = []
    err: list[str] = []
    with cutting_server.client() as client:
        sandbox = client.sandboxes.create(template="python")
        result = sandbox.commands.run(BIG_OUTPUT, on_stdout=out.append, on_stderr=err.append)
        sandbox.kill()
    assert len(out) > 1  # called as output arrived, not once at the end
    assert sha("".join(out).encode()) == sha(EXPECTED_STDOUT) and err == ["end"]
    assert result.status == "succeeded" and result.stdout_truncated  # the final Command, 1 MiB cap and all


async def test_run_callbacks_async(cutting_server: LocalServer) -> None:
    out: list[str] = []
    async with cutting_server.async_client() as client:
        sandbox = await client.sandboxes.create(template="python")
        result = await sandbox.commands.run("printf 'a\\nb\\n'; exit 2", on_stdout=out.append)
        await sandbox.kill()
    assert "".join(out) == "a\nb\n" and result.exit_code == 2


def test_leaving_the_output_loop_early_closes_the_stream(cutting_server: LocalServer) -> None:
    with cutting_server.client() as client:
        sandbox = client.sandboxes.create(template="python")
        handle = sandbox.commands.start("while true; do echo tick; sleep 0.05; done")
        with handle.output() as output:
            first = next(output)
        assert first == OutputChunk("stdout", "tick\n")
        with pytest.raises(StopIteration):
            next(output)
        handle.kill()
        assert handle.status == "killed"
        sandbox.kill()


def test_wrong_callback_fails_before_any_request() -> None:
    with CrowNest(api_key=API_KEY, base_url="http://127.0.0.1:9", max_retries=0) as client:
        with pytest.raises(TypeError, match="on_stdout must be callable"):
            client.commands.run("sbx_1", "true", on_stdout="print")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="check must be bool"):
            client.commands.run("sbx_1", "true", check="yes")  # type: ignore[arg-type]


# Byte streams and downloads


def test_file_stream_and_download_are_exact_across_broken_connections(
    cutting_server: LocalServer, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 16_384  # 4 MiB
    with cutting_server.client() as client:
        sandbox = client.sandboxes.create(template="base")
        sandbox.files.write("big.bin", payload)
        before = cutting_server.stats.get("readFile", 0)
        with sandbox.files.stream("big.bin") as chunks:
            streamed = b"".join(chunks)
        assert cutting_server.stats["readFile"] - before >= 3
        assert sandbox.files.download("big.bin", tmp_path / "big.bin") == len(payload)
        artifact = sandbox.artifacts.create(path="big.bin")
        with client.artifacts.stream(artifact["id"]) as chunks:
            exported = b"".join(chunks)
        sandbox.kill()
    assert sha(streamed) == sha(payload) == sha((tmp_path / "big.bin").read_bytes()) == sha(exported)


async def test_file_stream_async(cutting_server: LocalServer, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 16_384
    async with cutting_server.async_client() as client:
        sandbox = await client.sandboxes.create(template="base")
        await sandbox.files.write("big.bin", payload)
        async with sandbox.files.stream("big.bin") as chunks:
            streamed = b"".join([chunk async for chunk in chunks])
        artifact = await sandbox.artifacts.create(path="big.bin")
        assert await client.artifacts.download_to(artifact.id, tmp_path / "a.bin") == len(payload)
        await sandbox.kill()
    assert sha(streamed) == sha(payload) == sha((tmp_path / "a.bin").read_bytes())


def range_ignored(etags: tuple[str, str]) -> httpx.MockTransport:
    """The first answer breaks after 3 bytes; the second ignores Range and sends all of it."""
    answers = iter(
        [
            httpx.Response(200, headers={"ETag": etags[0]}, stream=Breaks(b"abc")),
            httpx.Response(200, headers={"ETag": etags[1]}, content=b"abcdef"),
        ]
    )
    return httpx.MockTransport(lambda request: next(answers))


def test_a_stream_resumed_from_the_start_skips_what_it_already_gave() -> None:
    http = httpx.Client(transport=range_ignored(('"v1"', '"v1"')))
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, http_client=http) as client, http:
        assert b"".join(client.files.stream("sbx_1", "f")) == b"abcdef"


def test_a_stream_whose_content_changed_midway_fails() -> None:
    http = httpx.Client(transport=range_ignored(('"v1"', '"v2"')))
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, http_client=http) as client, http:
        stream = client.files.stream("sbx_1", "f")
        assert next(stream) == b"abc"
        with pytest.raises(CrowNestConnectionError, match="could not send the rest of the same content"):
            next(stream)


def test_an_event_stream_that_never_completes_an_event_gives_up() -> None:
    """Retries are reset only by progress: a partial event is none, so the stream cannot loop forever."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Breaks(b"event: out"))

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with (
        CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=2, http_client=http) as client,
        http,
        pytest.raises(CrowNestConnectionError),
    ):
        list(client.commands.events("sbx_1", "cmd_1"))
    assert len(sent) == 3


async def test_an_event_stream_resumes_after_the_last_whole_event() -> None:
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if len(sent) == 1:
            return httpx.Response(200, stream=Breaks(b"id: 3\ndata: {}\n\nid: 9\ndata: {"))
        return httpx.Response(200, content=b"id: 9\r\ndata: {}\r\n\r\n")

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    async with AsyncCrowNest(api_key=API_KEY, base_url=BASE_URL, http_client=http) as client, http:
        events = [event async for event in client.commands.events("sbx_1", "cmd_1")]
    assert [e.id for e in events] == ["3", "9"]
    assert "last-event-id" not in sent[0].headers and sent[1].headers["last-event-id"] == "3"


def test_an_output_stream_that_ends_without_exit_and_without_events_fails() -> None:
    answers = iter([b'id: 1\ndata: {"stream": "stdout", "data": "x"}\nevent: output\n\n', b""])

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(200, content=next(answers))
        return httpx.Response(200, json=payloads.command(status="running", exitCode=None, finishedAt=None))

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, http_client=http) as client, http:
        handle = client.commands.get("sbx_1", "cmd_1")
        output = handle.output()
        assert next(output) == OutputChunk("stdout", "x")
        with pytest.raises(CrowNestError, match="ended before its exit event"):
            next(output)


# The event decoder


def decode(*chunks: bytes) -> list[dict[str, str | int]]:
    resume = EventResume(None)
    return [event for chunk in chunks for event in resume.feed(chunk)]


def test_events_are_decoded_as_eventsource_does() -> None:
    assert decode(b"event: exit\r\nid: 7\r\nretry: 50\r\ndata: a\r\ndata: b\r\n\r\n") == [
        {"event": "exit", "id": "7", "retry": 50, "data": "a\nb"}
    ]
    assert decode(b": keep-alive\n\n", b"data:x\r", b"\n\r", b"\n") == [{"event": "message", "data": "x"}]
    assert decode(b"data: one\rdata: two\r\r") == [{"event": "message", "data": "one\ntwo"}]
    assert decode(b"id: 1\0\ndata: x\n\n") == [{"event": "message", "data": "x"}]  # an id with NUL is ignored
    assert decode(b"data: caf\xc3", b"\xa9\n\n") == [{"event": "message", "data": "café"}]
    assert decode(b"id: 5\n\n") == []  # no data: nothing is dispatched


def test_the_last_event_id_moves_only_with_whole_events() -> None:
    resume = EventResume("2")
    resume.feed(b"id: 4\ndata: x\n\nid: 6\ndata: y")
    assert resume.position() == "4"
    resume.begin(httpx.Response(200))  # a new connection: the partial event is dropped
    assert resume.feed(b"\n\n") == []


# Upload progress


def test_upload_progress_reports_every_chunk(crownest_local: LocalServer, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096 * 3  # 3 MiB: several chunks
    path = tmp_path / "up.bin"
    path.write_bytes(payload)
    with crownest_local.client() as client:
        sandbox = client.sandboxes.create(template="base")
        from_bytes: list[tuple[int, int | None]] = []
        from_path: list[tuple[int, int | None]] = []
        sandbox.files.write("a.bin", payload, progress=lambda done, total: from_bytes.append((done, total)))
        sandbox.files.write("b.bin", path, progress=lambda done, total: from_path.append((done, total)))
        assert sha(sandbox.files.read("b.bin")) == sha(payload)
        sandbox.kill()
    for reports in (from_bytes, from_path):
        assert reports[0] == (0, len(payload)) and reports[-1] == (len(payload), len(payload))
        assert len(reports) > 3 and [done for done, _ in reports] == sorted(done for done, _ in reports)


async def test_upload_progress_async_runs_on_the_event_loop(crownest_local: LocalServer, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 4096 * 2
    path = tmp_path / "up.bin"
    path.write_bytes(payload)
    reports: list[tuple[int, int | None, int]] = []
    async with crownest_local.async_client() as client:
        sandbox = await client.sandboxes.create(template="base")
        await sandbox.files.write(
            "a.bin", path, progress=lambda done, total: reports.append((done, total, threading.get_ident()))
        )
        assert sha(await sandbox.files.read("a.bin")) == sha(payload)
        await sandbox.kill()
    assert reports[0][:2] == (0, len(payload)) and reports[-1][:2] == (len(payload), len(payload))
    assert {thread for _, _, thread in reports} == {threading.get_ident()}  # the loop's thread, not a worker


def test_upload_progress_starts_again_on_a_retry() -> None:
    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        request.read()
        sent.append(len(request.content))
        if len(sent) == 1:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy"}})
        return httpx.Response(200, json=payloads.file_info())

    reports: list[tuple[int, int | None]] = []
    http = httpx.Client(transport=httpx.MockTransport(answer))
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, http_client=http) as client, http:
        client.files.write("sbx_1", "f", b"abc", progress=lambda done, total: reports.append((done, total)))
    assert sent == [3, 3] and reports == [(0, 3), (3, 3), (0, 3), (3, 3)]


def test_a_wrong_progress_fails_before_any_request() -> None:
    with (
        CrowNest(api_key=API_KEY, base_url="http://127.0.0.1:9", max_retries=0) as client,
        pytest.raises(TypeError, match="progress must be callable"),
    ):
        client.files.write("sbx_1", "f", b"abc", progress=3)  # type: ignore[arg-type]


def test_events_payload_is_json_for_each_output_event(cutting_server: LocalServer) -> None:
    with cutting_server.client() as client:
        sandbox = client.sandboxes.create(template="base")
        handle = sandbox.commands.start("echo hi")
        events = list(client.commands.events(sandbox.id, handle.id))
        sandbox.kill()
    assert [e.event for e in events] == ["output", "exit"]
    assert json.loads(events[0].data) == {"stream": "stdout", "data": "hi\n"}
