"""CrowNest Local's costs: `run("true")` end to end against spawning it directly, and sandbox capacity.

    .venv/bin/python benchmarks/local_server.py [--runs 200] [--capacity 400] [--listing 200000]

Prints medians of `commands.run("true")` through the SDK over loopback HTTP
(isolated: nsenter into the sandbox's network, bubblewrap, seccomp) and of
`/bin/sh -c true` spawned directly, both in this run; then starts sandboxes that each keep a command running
(`sleep 600`), in steps, until `--capacity` or the first failure, timing a
`sandboxes.get` at each step. With `--listing N`, instead: how long listing a folder of N files
takes, and how late the server's event loop ran (its worst lag) while it was listed and removed:
the figure for "one sandbox never stalls another's calls" (the test checks only that this work is
off the loop, which holds on any machine).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from crownest import SandboxHandle
from crownest_local import LocalServer
from crownest_local._isolation import bubblewrap


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def timed(action: object, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        action()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return samples


def listing_lag(entries: int) -> None:
    shm = Path("/dev/shm")
    data_dir = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else None))  # many small files: fast in memory
    try:
        with LocalServer(data_dir=data_dir) as server, server.client() as client:
            sandbox = client.sandboxes.create(template="python", ttl_ms=600_000, disk_mb=4096)
            make = f"python -c \"import os; os.mkdir('many'); [open(f'many/{{i}}', 'w').close() for i in range({entries})]\""
            assert sandbox.commands.run(make, timeout_ms=600_000).status == "succeeded"
            time.sleep(1.0)
            idle = server.take_loop_lag()
            started = time.monotonic()
            # Read as bytes, not parsed: parsing here would hold this process's GIL, which the server's
            # event loop (a thread of this process) needs too.
            headers = {"Authorization": f"Bearer {server.api_key}"}
            with httpx.stream(
                "GET", f"{server.base_url}/v1/sandboxes/{sandbox.id}/files?path=many", headers=headers
            ) as r:
                size = sum(len(chunk) for chunk in r.iter_bytes())
            listing_s = time.monotonic() - started
            listing_lag = server.take_loop_lag()
            sandbox.kill()  # its files are removed
            time.sleep(1.0)
            removal_lag = server.take_loop_lag()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"listing {entries} entries ({size / 2**20:.1f} MiB of JSON): {listing_s:.1f} s")
    print(
        f"  event loop's worst lag: idle {idle * 1000:.0f} ms; while listing {listing_lag * 1000:.0f} ms;"
        f" while removing {removal_lag * 1000:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=400)
    parser.add_argument("--listing", type=int, default=0, metavar="N", help="measure a listing of N files instead")
    args = parser.parse_args()
    if args.listing:
        return listing_lag(args.listing)
    bwrap = bubblewrap()
    with LocalServer(max_sandboxes=args.capacity + 10) as server, server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        sandbox.commands.run("true")
        sdk = timed(lambda: sandbox.commands.run("true"), args.runs)
        shell = timed(lambda: subprocess.run(["/bin/sh", "-c", "true"], check=True), args.runs)
        print(f"isolation: {'bubblewrap ' + bwrap if bwrap else 'none (bubblewrap missing)'}; {args.runs} runs each")
        print(f"  commands.run('true') via SDK + HTTP : {median_ms(sdk):6.2f} ms median")
        print(f"  /bin/sh -c true spawned directly    : {median_ms(shell):6.2f} ms median")
        sandbox.kill()

        alive: list[SandboxHandle] = []
        step = 50
        try:
            while len(alive) < args.capacity:
                for _ in range(step):
                    held = client.sandboxes.create(template="base", ttl_ms=600_000)
                    held.commands.start("sleep 600")
                    alive.append(held)
                probe = timed(lambda: client.sandboxes.get(alive[0].id), 20)
                print(
                    f"  {len(alive):4d} sandboxes each running a command: sandboxes.get {median_ms(probe):.2f} ms median"
                )
        except Exception as exc:  # the capacity found: report it and what stopped it
            print(f"  stopped at {len(alive)} sandboxes: {type(exc).__name__}: {exc}")
        finally:
            for held in alive:
                held.kill()


if __name__ == "__main__":
    main()
