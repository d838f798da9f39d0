"""The async transports the SDK chose between, side by side against CrowNest Local in its own process.

    .venv/bin/python benchmarks/transports.py [--tasks 500] [--rounds 4]

Each round builds a new client per candidate (in an order that rotates from round to round),
times a burst of `--tasks` concurrent `GET /v1/sandboxes/{id}` on it (cold: it opens its
connections), then a second burst (warm), and reads the client's CPU time over both. Candidates:
raw aiohttp (the reference, not under httpx), and `httpx.AsyncClient` over httpcore (httpx's
default), over httpcore behind a semaphore of 100 (an admission gate), over httpx-aiohttp's
`AiohttpTransport`, and over the SDK's own transport. Every httpx client gets the SDK's limits
(100 connections, all kept alive). `benchmarks/RESULTS.md` records a run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
from bench import local_server_process
from httpx_aiohttp import AiohttpTransport

from crownest import CrowNest
from crownest._base_client import DEFAULT_LIMITS, keepalive_options
from crownest._transports import AsyncTransport

CANDIDATES = ("aiohttp", "httpcore", "httpcore + gate", "httpx-aiohttp", "crownest")


class Gate(httpx.AsyncBaseTransport):
    """httpcore's pool with at most `permits` requests inside it at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport, permits: int) -> None:
        self._inner = inner
        self._permits = asyncio.Semaphore(permits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._permits:
            response = await self._inner.handle_async_request(request)
            await response.aread()  # the body too, so the permit covers the whole exchange
            return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def transport(candidate: str) -> httpx.AsyncBaseTransport:
    if candidate == "httpcore":
        return httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS, socket_options=keepalive_options())
    if candidate == "httpcore + gate":
        return Gate(httpx.AsyncHTTPTransport(limits=DEFAULT_LIMITS, socket_options=keepalive_options()), 100)
    if candidate == "httpx-aiohttp":
        return AiohttpTransport(limits=DEFAULT_LIMITS)
    return AsyncTransport(limits=DEFAULT_LIMITS, socket_options=keepalive_options())


async def bursts(candidate: str, url: str, api_key: str, tasks: int) -> tuple[float, float, float, int]:
    """(cold seconds, warm seconds, client CPU seconds, errors) of two bursts on one new client."""
    headers = {"Authorization": f"Bearer {api_key}"}
    get: Callable[[], Awaitable[Any]]
    if candidate == "aiohttp":
        session = aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=100))

        async def get_aiohttp() -> Any:
            async with session.get(url) as response:
                response.raise_for_status()
                return await response.json()

        get, close = get_aiohttp, session.close
    else:
        client = httpx.AsyncClient(
            headers=headers, timeout=httpx.Timeout(660, connect=5), transport=transport(candidate)
        )

        async def get_httpx() -> Any:
            return (await client.get(url)).raise_for_status().json()

        get, close = get_httpx, client.aclose
    cpu = time.process_time()
    seconds, errors = [], 0
    for _ in range(2):
        start = time.perf_counter()
        results = await asyncio.gather(*(get() for _ in range(tasks)), return_exceptions=True)
        seconds.append(time.perf_counter() - start)
        errors += sum(isinstance(result, BaseException) for result in results)
    cpu = time.process_time() - cpu
    await close()
    return seconds[0], seconds[1], cpu, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, float, float, int]]] = {candidate: [] for candidate in CANDIDATES}
    with local_server_process() as (base_url, api_key, _):
        with CrowNest(api_key=api_key, base_url=base_url) as client:
            url = f"{base_url}/v1/sandboxes/{client.sandboxes.create(template='base').id}"
        for i in range(args.rounds):
            for candidate in CANDIDATES[i % len(CANDIDATES) :] + CANDIDATES[: i % len(CANDIDATES)]:
                runs[candidate].append(asyncio.run(bursts(candidate, url, api_key, args.tasks)))
    print(f"{args.tasks} concurrent gets, {args.rounds} rounds: median (range) of each")
    print(f"{'candidate':16} | {'cold':22} | {'warm':22} | client CPU per request | errors")
    for candidate, results in runs.items():
        cells = []
        for phase in range(2):
            times = [result[phase] * 1000 for result in results]
            cells.append(f"{statistics.median(times):5.0f} ms ({min(times):.0f}-{max(times):.0f})")
        cpu_us = statistics.median(result[2] for result in results) / (2 * args.tasks) * 1e6
        errors = sum(result[3] for result in results)
        print(f"{candidate:16} | {cells[0]:22} | {cells[1]:22} | {cpu_us:6.0f} us | {errors}")


if __name__ == "__main__":
    main()
