"""CrowNest Local's costs: `run("true")` end to end against spawning it directly, and sandbox capacity.

    .venv/bin/python benchmarks/local_server.py [--runs 200] [--capacity 400]

Prints medians of `commands.run("true")` through the SDK over loopback HTTP
(isolated: nsenter into the sandbox's network, bubblewrap, seccomp) and of
`/bin/sh -c true` spawned directly, both in this run; then starts sandboxes that each keep a command running
(`sleep 600`), in steps, until `--capacity` or the first failure, timing a
`sandboxes.get` at each step.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--capacity", type=int, default=400)
    args = parser.parse_args()
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
