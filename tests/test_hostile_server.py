"""A hostile or broken server never hangs a call, fills the memory, or escapes as a non-CrowNestError.

Each test runs a small raw-socket HTTP server on 127.0.0.1 that misbehaves one way:
trickling headers or a body one byte at a time, a gzip bomb made on the fly, a huge
Content-Length, JSON nested too deeply, an SSE line without an end. The time bounds
asserted are generous ceilings (a call must end), never measurements.
"""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import crownest._deadlines
import payloads as p
from crownest import (
    AsyncCrowNest,
    CrowNest,
    CrowNestApiError,
    CrowNestTimeoutError,
    DefaultHttpxClient,
    ResponseTooLargeError,
    ResponseValidationError,
)

Handler = Callable[[socket.socket, "RawServer"], None]
EventHandler = Callable[[socket.socket, "RawServer", bytes], None]
CEILING = 10.0  # seconds any call here must end within; the timeouts used are 1 s


class RawServer:
    """An HTTP/1.1 server that reads each request's head and hands the socket to `handler`."""

    def __init__(self, handler: Handler | EventHandler, with_head: bool = False) -> None:
        self.handler = handler
        self.with_head = with_head
        self.stopped = threading.Event()
        self.requests = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        return
                    head += data
                self.requests += 1
                if self.with_head:
                    self.handler(conn, self, head)  # type: ignore[call-arg]
                else:
                    self.handler(conn, self)  # type: ignore[call-arg]
            except OSError:
                pass  # the client went away: what the tests make it do

    def close(self) -> None:
        self.stopped.set()
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def trickle(self, conn: socket.socket, data: bytes, every: float = 0.05) -> None:
        """Send `data` one byte at a time, then keep sending filler until stopped or the client leaves."""
        for i in range(len(data)):
            if self.stopped.wait(every):
                return
            conn.sendall(data[i : i + 1])


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def start(handler: Handler | EventHandler, with_head: bool = False) -> RawServer:
        servers.append(RawServer(handler, with_head))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def head(status: str = "200 OK", **headers: str) -> bytes:
    # The server answers one request per connection and then closes it, so it says so: a client
    # told nothing may send its next request on the connection just as the close arrives.
    headers = {"connection": "close", **headers}
    lines = [f"HTTP/1.1 {status}", *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


SANDBOX = json.dumps(p.sandbox()).encode()
ENDLESS_HEADERS = b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"a" * 100000


def sync_client(server: RawServer, **options: Any) -> CrowNest:
    return CrowNest(api_key="cn_test_hostile", base_url=server.url, **{"timeout": 1, "max_retries": 0, **options})


# The sync client keeps the deadline two ways: the sockets of its own transport end each step at
# the deadline, while behind any other transport (a user's `http_client`, or a `DefaultHttpxClient`
# given a transport or a proxy) the attempt runs in a worker thread.
SYNC_TRANSPORTS = ["sdk transport", "user's http_client", "default client, user's transport"]


@pytest.fixture(params=SYNC_TRANSPORTS)
def sync_options(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    if request.param == "sdk transport":

        def no_thread(job: object) -> None:
            raise AssertionError("the SDK's own transport keeps the deadline without a worker thread")

        monkeypatch.setattr(crownest._deadlines.WORKERS, "submit", no_thread)
        yield {}
    elif request.param == "user's http_client":
        with httpx.Client() as http_client:
            yield {"http_client": http_client}
    else:
        with DefaultHttpxClient(transport=httpx.HTTPTransport()) as http_client:
            yield {"http_client": http_client}


def async_client(server: RawServer, **options: Any) -> AsyncCrowNest:
    return AsyncCrowNest(api_key="cn_test_hostile", base_url=server.url, **{"timeout": 1, "max_retries": 0, **options})


def bounded(call: Callable[[], Any], error: type[Exception]) -> Exception:
    started = time.monotonic()
    with pytest.raises(error) as caught:
        call()
    assert time.monotonic() - started < CEILING
    return caught.value


async def abounded(call: Callable[[], Any], error: type[Exception]) -> Exception:
    started = time.monotonic()
    with pytest.raises(error) as caught:
        await call()
    assert time.monotonic() - started < CEILING
    return caught.value


# -- time: each attempt has a deadline for its whole exchange -------------------------------------


def trickled_headers(conn: socket.socket, server: RawServer) -> None:
    server.trickle(conn, ENDLESS_HEADERS)


def trickled_body(conn: socket.socket, server: RawServer) -> None:
    conn.sendall(head(content_type="application/json", content_length=str(len(SANDBOX) + 100000)))
    server.trickle(conn, SANDBOX + b" " * 100000)


@pytest.mark.parametrize("handler", [trickled_headers, trickled_body])
def test_a_trickle_cannot_stretch_a_call_past_its_deadline(
    serve: Any, handler: Handler, sync_options: dict[str, Any]
) -> None:
    server = serve(handler)
    with sync_client(server, **sync_options) as client:
        error = bounded(lambda: client.sandboxes.get("sbx_1"), CrowNestTimeoutError)
    assert "took more than 1 s" in str(error)


@pytest.mark.parametrize("handler", [trickled_headers, trickled_body])
async def test_a_trickle_cannot_stretch_an_async_call_past_its_deadline(serve: Any, handler: Handler) -> None:
    server = serve(handler)
    async with async_client(server) as client:
        error = await abounded(lambda: client.sandboxes.get("sbx_1"), CrowNestTimeoutError)
    assert "took more than 1 s" in str(error)


def test_retries_of_a_trickle_stay_within_the_documented_bound(serve: Any, sync_options: dict[str, Any]) -> None:
    """(max_retries + 1) * timeout plus the backoff waits (0.5 s, 1 s): under 6 s here."""
    server = serve(trickled_headers)
    with sync_client(server, max_retries=2, **sync_options) as client:
        started = time.monotonic()
        with pytest.raises(CrowNestTimeoutError):
            client.sandboxes.get("sbx_1")
        assert time.monotonic() - started < 3 * 1 + 0.5 + 1 + 2  # the bound, plus slack for a busy machine
    assert server.requests == 3


def test_a_stream_whose_headers_trickle_times_out(serve: Any, sync_options: dict[str, Any]) -> None:
    server = serve(trickled_headers)
    with sync_client(server, **sync_options) as client:
        bounded(lambda: list(client.files.stream("sbx_1", "f")), CrowNestTimeoutError)
        bounded(lambda: list(client.commands.events("sbx_1", "cmd_1")), CrowNestTimeoutError)


async def test_an_async_stream_whose_headers_trickle_times_out(serve: Any) -> None:
    server = serve(trickled_headers)

    async def read_all() -> None:
        async for _ in client.files.stream("sbx_1", "f"):
            pass

    async with async_client(server) as client:
        await abounded(read_all, CrowNestTimeoutError)


# -- memory: answers read whole have a size limit, decoded ----------------------------------------


def gzip_bomb(conn: socket.socket, server: RawServer) -> None:
    """1 GiB of spaces after `[`, gzipped as it is sent (about 1 MiB on the wire)."""
    conn.sendall(head(content_type="application/json", content_encoding="gzip", transfer_encoding="chunked"))
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)

    def send(data: bytes) -> None:
        if data:
            conn.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    send(packer.compress(b"["))
    for _ in range(1024):
        send(packer.compress(block))
    send(packer.flush())
    conn.sendall(b"0\r\n\r\n")


def huge_length(conn: socket.socket, server: RawServer) -> None:
    conn.sendall(head(content_type="application/octet-stream", content_length=str(10 << 30)))
    server.stopped.wait(30)  # sends nothing more: a client that waited for the body would time out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_gzip_bomb_is_refused_in_bounded_memory(serve: Any) -> None:
    server = serve(gzip_bomb)
    before = peak_rss_mib()
    with CrowNest(api_key="cn_test_hostile", base_url=server.url, timeout=30, max_retries=0) as client:
        for call in (lambda: client.sandboxes.get("sbx_1"), lambda: client.files.read("sbx_1", "f")):
            error = bounded(call, ResponseTooLargeError)
            assert "64 MiB" in str(error)
    assert peak_rss_mib() - before < 400  # 1 GiB decoded would be over 1000


async def test_an_async_gzip_bomb_is_refused(serve: Any) -> None:
    server = serve(gzip_bomb)
    async with AsyncCrowNest(api_key="cn_test_hostile", base_url=server.url, timeout=30, max_retries=0) as client:
        await abounded(lambda: client.sandboxes.get("sbx_1"), ResponseTooLargeError)


def test_a_huge_content_length_is_refused_before_reading(serve: Any) -> None:
    server = serve(huge_length)
    with CrowNest(api_key="cn_test_hostile", base_url=server.url, timeout=30, max_retries=0) as client:
        error = bounded(lambda: client.files.read("sbx_1", "f"), ResponseTooLargeError)
    assert f"its Content-Length is {10 << 30} bytes" in str(error)


async def test_a_huge_content_length_is_refused_before_reading_async(serve: Any) -> None:
    server = serve(huge_length)
    async with AsyncCrowNest(api_key="cn_test_hostile", base_url=server.url, timeout=30, max_retries=0) as client:
        await abounded(lambda: client.files.read("sbx_1", "f"), ResponseTooLargeError)


def test_an_error_answer_is_cut_at_one_mib(serve: Any) -> None:
    def big_error(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(head("502 Bad Gateway", content_type="text/html", content_length=str(100 << 20)))
        conn.sendall(b"x" * (100 << 20))

    server = serve(big_error)
    with sync_client(server, timeout=30) as client:
        error = bounded(lambda: client.sandboxes.get("sbx_1"), CrowNestApiError)
    assert isinstance(error, CrowNestApiError) and error.code == "http_502"
    assert len(error.response.content) == 1 << 20


def test_an_endless_sse_line_is_refused_in_linear_time(serve: Any) -> None:
    def endless_line(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(head(content_type="text/event-stream", transfer_encoding="chunked"))
        chunk = b"data: " + b"a" * (1 << 20)
        while not server.stopped.is_set():
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            chunk = b"a" * (1 << 20)

    server = serve(endless_line)
    with sync_client(server, timeout=30) as client:
        started = time.process_time()
        bounded(lambda: list(client.commands.events("sbx_1", "cmd_1")), ResponseTooLargeError)
        assert time.process_time() - started < CEILING


# -- parsing: JSON nested too deeply is a CrowNestError -------------------------------------------

DEEP = b"[" * 200000 + b"]" * 200000


def answer(status: str, body: bytes, content_type: str = "application/json") -> Handler:
    def handler(conn: socket.socket, server: RawServer) -> None:
        conn.sendall(head(status, content_type=content_type, content_length=str(len(body))) + body)

    return handler


def test_deep_json_in_a_2xx_body_is_a_validation_error(serve: Any) -> None:
    server = serve(answer("200 OK", DEEP))
    with sync_client(server) as client:
        error = bounded(lambda: client.sandboxes.get("sbx_1"), ResponseValidationError)
    assert "expected JSON" in str(error)


async def test_deep_json_in_an_async_2xx_body_is_a_validation_error(serve: Any) -> None:
    server = serve(answer("200 OK", DEEP))
    async with async_client(server) as client:
        await abounded(lambda: client.sandboxes.get("sbx_1"), ResponseValidationError)


def test_deep_json_in_an_error_body_is_an_api_error(serve: Any) -> None:
    deep_details = b'{"error": {"code": "boom", "message": "m", "details": ' + DEEP + b"}}"
    server = serve(answer("400 Bad Request", deep_details))
    with sync_client(server) as client:
        error = bounded(lambda: client.sandboxes.get("sbx_1"), CrowNestApiError)
    assert isinstance(error, CrowNestApiError) and error.code == "http_400"


def test_deep_json_in_an_event_is_a_validation_error(serve: Any) -> None:
    def command_then_events(conn: socket.socket, server: RawServer, request: bytes) -> None:
        if b"/events " in request.split(b"\r\n", 1)[0]:
            answer("200 OK", b"event: exit\nid: 1\ndata: " + DEEP + b"\n\n", "text/event-stream")(conn, server)
        else:
            answer("200 OK", json.dumps(p.command(status="running")).encode())(conn, server)

    server = serve(command_then_events, with_head=True)
    with sync_client(server) as client:
        command = client.commands.get("sbx_1", "cmd_1")
        error = bounded(lambda: list(command.output()), ResponseValidationError)
    assert "'exit' event does not match the API" in str(error)
