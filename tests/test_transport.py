"""AsyncCrowNest's own transport (`crownest._transports`) on the wire.

Its failures reach the retry rules as the httpx exceptions httpx's own transport raises; a
cancelled call leaves no connection behind; a connection the server closed while idle is not
reused; a retry after a dropped connection carries the same idempotency key; a user's own
`httpx.AsyncClient` still works; and streamed transfers through it resume where they broke.
The servers here are asyncio servers in the test's own loop, speaking raw bytes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

import payloads as p
from conftest import API_KEY, sha
from crownest import (
    AsyncCrowNest,
    CrowNestConnectionError,
    CrowNestError,
    CrowNestTimeoutError,
    DefaultAsyncHttpxClient,
)
from crownest._transports import AsyncTransport
from crownest_local import LocalServer

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def answer(status: int, body: object, *, close: bool = False) -> bytes:
    data = json.dumps(body).encode()
    head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + data


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback server that runs `handler` for each connection, then closes it."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def read_head(reader: asyncio.StreamReader) -> dict[str, str]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")[1:]
    return {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    await reader.read()  # until the client gives up and closes


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)
    writer.write(b"this is not HTTP\r\n\r\n")
    await writer.drain()


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await read_head(reader)


@pytest.mark.parametrize(
    ("handler", "error", "message"),
    [
        (silent, CrowNestTimeoutError, "timed out"),  # the attempt's deadline, at its read timeout
        (garbage, CrowNestConnectionError, "RemoteProtocolError"),
        (hang_up, CrowNestConnectionError, "RemoteProtocolError: Server disconnected without sending a response"),
    ],
)
async def test_failures_reach_the_client_as_httpx_exceptions(
    handler: Handler, error: type[Exception], message: str
) -> None:
    async with (
        raw_server(handler) as url,
        AsyncCrowNest(api_key=API_KEY, base_url=url, max_retries=0, timeout=0.5) as client,
    ):
        with pytest.raises(error, match=message):
            await client.sandboxes.get("sbx_1")
        assert client._http._transport.connections == []  # type: ignore[attr-defined]


async def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
    async with AsyncCrowNest(api_key=API_KEY, base_url=f"http://127.0.0.1:{port}", max_retries=0) as client:
        with pytest.raises(CrowNestConnectionError, match="ConnectError"):
            await client.sandboxes.get("sbx_1")


async def test_a_retry_after_a_dropped_connection_sends_the_same_idempotency_key() -> None:
    keys: list[str] = []

    async def drop_the_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await read_head(reader)
        keys.append(head["idempotency-key"])
        await reader.readexactly(int(head["content-length"]))
        if len(keys) > 1:
            writer.write(answer(201, p.sandbox()))
            await writer.drain()

    async with (
        raw_server(drop_the_first) as url,
        AsyncCrowNest(api_key=API_KEY, base_url=url, max_retries=1) as client,
    ):
        sandbox = await client.sandboxes.create(template="base")
    assert sandbox.id == "sbx_1"
    assert len(keys) == 2 and keys[0] == keys[1]


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    closed = asyncio.Event()

    async def one_answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(answer(200, p.sandbox()))  # no "Connection: close": the client thinks it may keep it
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        closed.set()

    async with (
        raw_server(one_answer_then_close) as url,
        AsyncCrowNest(api_key=API_KEY, base_url=url, max_retries=0) as client,
    ):
        await client.sandboxes.get("sbx_1")
        await closed.wait()
        await asyncio.sleep(0)  # the loop sees the closed socket on its next turn
        assert (await client.sandboxes.get("sbx_1")).id == "sbx_1"


async def test_a_cancelled_call_closes_its_connection_and_the_client_goes_on() -> None:
    received = asyncio.Event()
    release = asyncio.Event()

    async def slow_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            received.set()
            await release.wait()
            writer.write(answer(200, p.sandbox()))
            await writer.drain()

    async with (
        raw_server(slow_first) as url,
        AsyncCrowNest(api_key=API_KEY, base_url=url, max_retries=0) as client,
    ):
        call = asyncio.create_task(client.sandboxes.get("sbx_1"))
        await received.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert client._http._transport.connections == []  # type: ignore[attr-defined]
        release.set()
        assert (await client.sandboxes.get("sbx_1")).id == "sbx_1"


async def test_an_httpx_async_client_you_pass_is_used_as_is(crownest_local: LocalServer) -> None:
    async with httpx.AsyncClient() as http:
        client = AsyncCrowNest(api_key=crownest_local.api_key, base_url=crownest_local.base_url, http_client=http)
        sandbox = await client.sandboxes.create(template="base")
        assert (await client.sandboxes.get(sandbox.id)).id == sandbox.id
        await sandbox.kill()
        await client.close()
        assert not http.is_closed  # yours: not closed by the SDK
    assert not isinstance(http, DefaultAsyncHttpxClient)


async def test_cookies_set_by_a_server_are_kept() -> None:
    """The default client's jar skips responses without Set-Cookie, and still reads those with one."""

    async def set_cookie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        body = json.dumps(p.sandbox()).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nSet-Cookie: lb=a1; Path=/\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async with raw_server(set_cookie) as url, AsyncCrowNest(api_key=API_KEY, base_url=url) as client:
        await client.sandboxes.get("sbx_1")
        assert client._http.cookies.get("lb") == "a1"


@pytest.fixture(scope="module")
def cutting_server() -> Iterator[LocalServer]:
    with LocalServer(cut_streams=300_000) as server:
        yield server


async def test_async_transfers_through_the_transport_resume_where_they_broke(
    cutting_server: LocalServer, tmp_path: Path
) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB: broken about three times on the way down

    def pieces() -> Iterator[bytes]:  # a one-shot stream of chunks (the SDK takes no async iterable)
        for start in range(0, len(payload), 65_536):
            yield payload[start : start + 65_536]

    progress: list[tuple[int, int | None]] = []
    async with cutting_server.async_client() as client:
        sandbox = await client.sandboxes.create(template="base")
        await sandbox.files.write("big.bin", pieces())
        before = cutting_server.stats.get("readFile", 0)
        written = await sandbox.files.download(
            "big.bin", tmp_path / "big.bin", progress=lambda done, total: progress.append((done, total))
        )
        assert cutting_server.stats["readFile"] - before >= 3
        await sandbox.kill()
    assert written == len(payload) and sha((tmp_path / "big.bin").read_bytes()) == sha(payload)
    assert progress[-1] == (len(payload), len(payload))


SANDBOX = json.dumps(p.sandbox()).encode()


def chunked(body: bytes) -> bytes:
    """`body` in 3 chunks, one with an extension, then a trailer."""
    third = len(body) // 3
    pieces = [body[:third], body[third : 2 * third], body[2 * third :]]
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(x), b";ext=1" if i == 1 else b"", x) for i, x in enumerate(pieces))
    return out + b"0\r\nX-Trailer: yes\r\n\r\n"


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
ANSWERS = {
    "chunked": HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(SANDBOX),
    "until the connection ends": HEAD + b"Connection: close\r\n\r\n" + SANDBOX,
    "after 100 Continue": b"HTTP/1.1 100 Continue\r\n\r\n"
    + HEAD
    + b"Content-Length: %d\r\n\r\n" % len(SANDBOX)
    + SANDBOX,
    "HTTP/1.0": b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + SANDBOX,
}


@pytest.mark.parametrize("framing", ANSWERS)
async def test_response_bodies_are_read_in_every_framing(framing: str) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(ANSWERS[framing])
        await writer.drain()
        if framing == "chunked":  # kept alive: a second request on the same connection
            await read_head(reader)
            writer.write(ANSWERS[framing])
            await writer.drain()

    async with raw_server(reply) as url, AsyncCrowNest(api_key=API_KEY, base_url=url, max_retries=0) as client:
        for _ in range(2 if framing == "chunked" else 1):
            sandbox = await client.sandboxes.get("sbx_1")  # the whole body, or its JSON would not parse
            assert (sandbox.id, sandbox["metadata"]["job"], sandbox["endedAt"]) == ("sbx_1", "primes-demo", None)


BROKEN = {
    "two lengths": HEAD + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "a bad chunk size": HEAD + b"Transfer-Encoding: chunked\r\n\r\n-1\r\nx\r\n",
    "a folded header": HEAD + b"X-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n",
    "a bad status line": b"HTTP/1.1 2000 OK\r\n\r\n",
    "a short body": HEAD + b"Content-Length: 100\r\n\r\n{}",
}


@pytest.mark.parametrize("broken", BROKEN)
async def test_a_malformed_response_is_a_remote_protocol_error(broken: str) -> None:
    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(BROKEN[broken])
        await writer.drain()

    async with raw_server(reply) as url, AsyncCrowNest(api_key=API_KEY, base_url=url, max_retries=0) as client:
        with pytest.raises(CrowNestConnectionError, match="RemoteProtocolError"):
            await client.sandboxes.get("sbx_1")


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    requests: list[dict[str, str]] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_head(reader))

    async with raw_server(record) as url:
        with pytest.raises(CrowNestError, match=r"default_headers\['X-A'\]"):
            AsyncCrowNest(api_key=API_KEY, base_url=url, default_headers={"X-A": "a\r\nX-B: b"})
        # Below the SDK's own checks, the transport refuses it too (a header from an event hook, say).
        transport = AsyncTransport(limits=httpx.Limits(max_connections=1))
        async with httpx.AsyncClient(transport=transport) as http:
            with pytest.raises(httpx.LocalProtocolError):
                await http.get(f"{url}/v1/sandboxes/sbx_1", headers={"X-A": "a\r\nX-B: b"})
    assert requests == []
