"""Sandboxes that last, sync and async, against CrowNest Local.

List filters and order, commands without a time limit (and the run cap),
metrics of one sandbox, and pause/resume with every process frozen where it is.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from crownest import CrowNestApiError
from crownest_local import LocalServer

T = TypeVar("T")
RUN_CAP_S = 1.0


async def done(value: T | Awaitable[T]) -> T:
    """The value of a sync call, or the awaited value of an async one."""
    return await value if inspect.isawaitable(value) else value


async def items(pager: Any) -> list[Any]:
    if hasattr(pager, "__aiter__"):
        return [item async for item in pager]
    return list(pager)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(run_cap=RUN_CAP_S) as running:
        yield running


@pytest.fixture(params=["sync", "async"])
async def client(request: pytest.FixtureRequest, server: LocalServer) -> AsyncIterator[Any]:
    if request.param == "sync":
        with server.client(max_retries=0) as sync_client:
            yield sync_client
    else:
        async with server.async_client(max_retries=0) as async_client:
            yield async_client


async def test_list_filters_by_template_and_creation_time_in_either_order(client: Any) -> None:
    label = {"run": datetime.datetime.now(datetime.UTC).isoformat()}
    first = await done(client.sandboxes.create(template="base", metadata=label))
    second = await done(client.sandboxes.create(template="python", metadata=label))
    third = await done(client.sandboxes.create(template="base", metadata=label))
    try:
        ids = [first.id, second.id, third.id]
        newest = await items(client.sandboxes.list(metadata=label))
        assert [s.id for s in newest] == ids[::-1]
        oldest = await items(client.sandboxes.list(metadata=label, order="asc", limit=1))  # pages of one, in order
        assert [s.id for s in oldest] == ids
        based = await items(client.sandboxes.list(metadata=label, template="base", order="asc"))
        assert [s.id for s in based] == [first.id, third.id]
        later = await items(client.sandboxes.list(metadata=label, created_after=first.created_at, order="asc"))
        assert [s.id for s in later] == [s.id for s in (second, third) if s.created_at > first.created_at]
        as_text = await items(client.sandboxes.list(metadata=label, created_after=first.created_at.isoformat()))
        assert [s.id for s in as_text] == [s.id for s in later][::-1]
        await done(client.sandboxes.kill(third.id))
        running = await items(client.sandboxes.list(metadata=label, status="running", template="base"))
        assert [s.id for s in running] == [first.id]
        for bad in ("yesterday", "2026-01-01T00:00:00"):
            with pytest.raises(CrowNestApiError) as caught:
                await items(client.sandboxes.list(created_after=bad))
            assert (caught.value.status, caught.value.code) == (400, "invalid_request")
        with pytest.raises(CrowNestApiError) as caught:
            await items(client.sandboxes.list(order="sideways"))
        assert caught.value.status == 400
        with pytest.raises(TypeError, match="created_after"):
            await items(client.sandboxes.list(created_after=3))
    finally:
        for sandbox in (first, second, third):
            await done(client.sandboxes.kill(sandbox.id))


async def test_a_started_command_without_a_limit_outlives_the_run_cap(client: Any, server: LocalServer) -> None:
    sandbox = await done(client.sandboxes.create(template="python"))
    try:
        web = await done(sandbox.commands.start("python3 -m http.server 8000", timeout_ms=0))
        assert web.timeout_ms == 0
        preview = await done(sandbox.previews.create(port=8000, visibility="public"))
        capped = await done(sandbox.commands.run("sleep 30", timeout_ms=0))
        # The run ended at the cap, and the server started before it is still serving.
        assert (capped.status, capped.timeout_ms) == ("timed_out", 0)
        assert capped.duration_ms is not None and capped.duration_ms >= RUN_CAP_S * 1000
        async with httpx.AsyncClient() as http:
            for _ in range(100):  # the server may still be binding its port on a busy machine
                answer = await http.get(preview.url)
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.1)
        assert answer.status_code == 200
        assert (await done(sandbox.commands.get(web.id))).status == "running"
    finally:
        await done(sandbox.kill())


async def test_metrics_rise_under_a_cpu_hog_and_fall_once_it_is_killed(client: Any) -> None:
    sandbox = await done(client.sandboxes.create(template="python", cpu_count=1, memory_mb=256))
    try:
        idle = await done(sandbox.metrics())
        assert (idle.process_count, idle.cpu_percent) == (0, 0)
        assert idle.limits == sandbox.limits and idle.limits.memory_mb == 256
        await done(sandbox.files.write("hog.py", "open('ready', 'w').close()\nwhile True:\n    pass\n"))
        hog = await done(sandbox.commands.start("python3 hog.py", timeout_ms=0))
        await done(sandbox.commands.run("while [ ! -e ready ]; do sleep 0.05; done", timeout_ms=30_000))
        busy = await done(sandbox.metrics())
        later = await done(sandbox.metrics())
        assert busy.process_count >= 1 and later.cpu_time_ms > busy.cpu_time_ms >= idle.cpu_time_ms
        assert later.cpu_percent > 0 and busy.memory_bytes > idle.memory_bytes
        await done(hog.kill(signal="SIGKILL"))
        assert hog.status == "killed"
        after = await done(sandbox.metrics())
        assert after.process_count == 0 and after.cpu_percent < later.cpu_percent  # only exit's accounting left
    finally:
        await done(sandbox.kill())
