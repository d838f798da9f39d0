"""The soak: many `sandboxes.create` + `commands.run` + `artifacts.create` under injected faults.

CrowNest Local fails a share of requests on purpose (503, 429, a connection
dropped before the operation, or after it was done with the answer lost).
With retries and idempotency keys every call must succeed, and the server
must then hold exactly one sandbox, one command and one artifact per call.

`make soak` runs `python tests/soak.py --calls 2000` and prints the report;
`tests/test_soak.py` runs 200 calls in each mode.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from crownest import AsyncCrowNest, CrowNest
from crownest_local import LocalServer

FAULT_RATE = 0.3
MAX_RETRIES = 6
OPERATIONS = ("createSandbox", "runCommand", "createArtifact")


@dataclass
class Report:
    mode: str
    calls: int
    sandboxes: int = 0
    commands: int = 0
    artifacts: int = 0
    worst_wait_s: float = 0.0
    elapsed_s: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    retries: int = 0

    def __str__(self) -> str:
        faults = ", ".join(f"{k.removeprefix('fault:')} {v}" for k, v in sorted(self.faults.items()))
        return (
            f"{self.mode}: {self.calls} iterations ({3 * self.calls} calls) in {self.elapsed_s:.1f} s; "
            f"server holds {self.sandboxes} sandboxes, {self.commands} commands, {self.artifacts} artifacts; "
            f"faults injected: {sum(self.faults.values())} ({faults}); retries taken: {self.retries}; "
            f"duplicates: {max(self.sandboxes - self.calls, 0) + max(self.commands - self.calls, 0) + max(self.artifacts - self.calls, 0)}; "
            f"losses: {max(self.calls - self.sandboxes, 0) + max(self.calls - self.commands, 0) + max(self.calls - self.artifacts, 0)}; "
            f"worst wait for one call: {self.worst_wait_s:.2f} s"
        )


def _timed_sync(waits: list[float], call: Any) -> Any:
    start = time.perf_counter()
    result = call()
    waits.append(time.perf_counter() - start)
    return result


def _iteration_sync(client: CrowNest, tag: str, waits: list[float]) -> None:
    sandbox = _timed_sync(waits, lambda: client.sandboxes.create(template="base", metadata={"soak": tag}))
    result = _timed_sync(waits, lambda: sandbox.commands.run("echo soak > out.txt"))
    assert result.exit_code == 0, result
    _timed_sync(waits, lambda: sandbox.artifacts.create(path="out.txt"))


async def _timed_async(waits: list[float], call: Any) -> Any:
    start = time.perf_counter()
    result = await call()
    waits.append(time.perf_counter() - start)
    return result


async def _iteration_async(client: AsyncCrowNest, tag: str, waits: list[float], limit: asyncio.Semaphore) -> None:
    async with limit:
        sandbox = await _timed_async(waits, lambda: client.sandboxes.create(template="base", metadata={"soak": tag}))
        result = await _timed_async(waits, lambda: sandbox.commands.run("echo soak > out.txt"))
        assert result.exit_code == 0, result
        await _timed_async(waits, lambda: sandbox.artifacts.create(path="out.txt"))


def _count(server: LocalServer, tag: str, report: Report) -> None:
    faults, server.faults = server.faults, 0.0  # count what the server holds, without faults in the way
    with server.client() as client:
        sandboxes = list(client.sandboxes.list(metadata={"soak": tag}, limit=100))
        ids = {s.id for s in sandboxes}
        report.sandboxes = len(sandboxes)
        report.commands = sum(len(list(client.commands.list(sandbox_id, limit=100))) for sandbox_id in ids)
        report.artifacts = sum(1 for a in client.artifacts.list(limit=100) if a.sandbox_id in ids)
    server.faults = faults


def run_soak(server: LocalServer, calls: int, mode: str, concurrency: int = 16) -> Report:
    """Drive `calls` iterations through one client of `server`; count what the server then holds."""
    tag = uuid.uuid4().hex
    before = server.stats
    waits: list[float] = []
    start = time.perf_counter()
    if mode == "sync":
        with server.client(max_retries=MAX_RETRIES) as client, ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(_iteration_sync, client, tag, waits) for _ in range(calls)]:
                future.result()
    else:

        async def drive() -> None:
            limit = asyncio.Semaphore(concurrency)
            async with server.async_client(max_retries=MAX_RETRIES) as client:
                await asyncio.gather(*(_iteration_async(client, tag, waits, limit) for _ in range(calls)))

        asyncio.run(drive())
    after = server.stats
    report = Report(mode=mode, calls=calls, elapsed_s=time.perf_counter() - start, worst_wait_s=max(waits))
    report.faults = {k: after[k] - before.get(k, 0) for k in after if k.startswith("fault:")}
    report.retries = sum(after.get(op, 0) - before.get(op, 0) for op in OPERATIONS) - 3 * calls
    _count(server, tag, report)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with LocalServer(faults=FAULT_RATE, max_sandboxes=2 * args.calls + 10) as server:
        for mode in ("sync", "async"):
            print(run_soak(server, args.calls, mode), flush=True)


if __name__ == "__main__":
    main()
