"""CrowNest Local's lifecycle costs: pause, resume, snapshot, and sandboxes started from a snapshot.

    .venv/bin/python benchmarks/lifecycle.py [--runs 5] [--mib 100]

Prints the median wall time through the SDK over loopback HTTP of: creating a
sandbox of a plain template and of a built one; pausing and resuming one whose process counts; taking a
snapshot of a sandbox holding `--mib` MiB of files; creating a sandbox from
that snapshot; and forking it.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

from crownest_local import LocalServer


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=100)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    with LocalServer() as server, server.client() as client:
        big = client.sandboxes.create(template="python", disk_mb=4 * args.mib + 64)
        big.commands.run(f"head -c {args.mib << 20} /dev/urandom > blob.bin", check=True)
        counter = client.sandboxes.create(template="python")
        counter.commands.start("python3 -c 'while True: pass'", timeout_ms=0)
        client.templates.create("bench-built", files={"tool.py": "x = 1\n"}, commands=["python3 -m compileall -q ."])
        while client.templates.get("bench-built").status == "building":
            time.sleep(0.05)
        for _ in range(args.runs):
            took, plain = timed(lambda: client.sandboxes.create(template="python"))
            rows.setdefault("create (plain template)", []).append(took)
            plain.kill()
            took, built = timed(lambda: client.sandboxes.create(template="bench-built"))
            rows.setdefault("create (built template)", []).append(took)
            built.kill()
            rows.setdefault("pause (a busy process)", []).append(timed(counter.pause)[0])
            rows.setdefault("resume", []).append(timed(counter.resume)[0])
            took, snapshot = timed(lambda: big.snapshot())
            rows.setdefault(f"snapshot ({args.mib} MiB)", []).append(took)
            took, copy = timed(functools.partial(client.sandboxes.create, snapshot=snapshot.id))
            rows.setdefault(f"create from snapshot ({args.mib} MiB)", []).append(took)
            copy.kill()
            took, fork = timed(big.fork)
            rows.setdefault(f"fork ({args.mib} MiB)", []).append(took)
            fork.kill()
            client.snapshots.delete(snapshot.id)
        big.kill()
        counter.kill()
    for name, times in rows.items():
        print(f"{name:40} median {statistics.median(times) * 1000:8.1f} ms  max {max(times) * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
