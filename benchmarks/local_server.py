"""CrowNest Local's costs: `run("true")` end to end against spawning it directly, and sandbox capacity.

    .venv/bin/python benchmarks/local_server.py [--runs 200] [--capacity 400] [--listing 200000]

Prints medians of `commands.run("true")` through the SDK over loopback HTTP
(isolated: nsenter into the sandbox's network, bubblewrap, seccomp) and of
`/bin/sh -c true` spawned directly, both in this run; then starts sandboxes that each keep a command running
(`sleep 600`), in steps, until `--capacity` or the first failure, timing a
`sandboxes.get` at each step. With `--listing N`, instead: how long listing a folder of N files
takes, and how long another sandbox's calls took while it was listed and removed: the figure for
"one sandbox never stalls another's calls by more than 100 ms" (the test checks only that this
work is off the loop, which holds on any machine).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import threading
import time
from collections.abc import Callable

from bench import local_server_process

from crownest import CrowNest, SandboxHandle
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
    """A folder of `entries` files in one sandbox is listed (by curl, in its own process) and then
    removed with its sandbox, while this process times `files.info` calls on a second sandbox: how
    long one sandbox's slow work holds up another's calls. The server runs in its own process, as
    `crownest-local serve` does, so that no client here shares its GIL."""
    with (
        local_server_process() as (base_url, api_key, _),
        CrowNest(api_key=api_key, base_url=base_url, max_retries=0) as client,
    ):
        _listing_lag(client, base_url, api_key, entries)


def _listing_lag(client: CrowNest, base_url: str, api_key: str, entries: int) -> None:
    big = client.sandboxes.create(template="python", ttl_ms=600_000, disk_mb=4096)
    make = f"python -c \"import os; os.mkdir('many'); [open(f'many/{{i}}', 'w').close() for i in range({entries})]\""
    assert big.commands.run(make, timeout_ms=600_000).status == "succeeded"
    neighbour = client.sandboxes.create(template="base", ttl_ms=600_000)
    neighbour.files.write("probe.txt", "x")
    samples: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            neighbour.files.info("probe.txt")
            samples.append(time.perf_counter() - started)

    def phase(seconds_or_action: float | Callable[[], object]) -> list[float]:
        first = len(samples)
        if callable(seconds_or_action):
            seconds_or_action()
        else:
            time.sleep(seconds_or_action)
        return samples[first:]

    url = f"{base_url}/v1/sandboxes/{big.id}/files?path=many"
    listing = [
        "curl",
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "-H",
        f"Authorization: Bearer {api_key}",
        url,
    ]
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        idle = phase(2.0)
        size = 0

        def list_many() -> None:
            nonlocal size
            size = int(subprocess.run(listing, check=True, capture_output=True, text=True).stdout)

        started = time.perf_counter()
        during_listing = phase(list_many)
        listing_s = time.perf_counter() - started

        def remove_many() -> None:
            big.kill()  # its files are removed in the background
            time.sleep(2.0)

        during_removal = phase(remove_many)
    finally:
        stop.set()
        prober.join()
        neighbour.kill()
    idle_ms = median_ms(idle)
    print(f"listing {entries} entries ({size / 2**20:.1f} MiB of JSON) took {listing_s:.1f} s")
    print(f"  another sandbox's files.info: idle median {idle_ms:.1f} ms, worst {max(idle) * 1000:.1f} ms")
    for name, phase_samples in (("listing", during_listing), ("removal", during_removal)):
        worst = max(phase_samples) * 1000
        print(
            f"  during the {name}: {len(phase_samples)} calls, median {median_ms(phase_samples):.1f} ms,"
            f" worst {worst:.1f} ms (held up {worst - idle_ms:.1f} ms; bound 100 ms)"
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
