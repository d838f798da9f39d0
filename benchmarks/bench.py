"""`make bench`: what the SDK costs on top of raw httpx, measured side by side in one run.

Rows: import time (fresh interpreters, taking turns), per-call overhead
(sequential `sandboxes.get`, client CPU time), async bursts of 50, 100 and 500
concurrent `sandboxes.get` on a new client (cold) and again on the same one
(warm), with raw aiohttp as the reference beside raw httpx and the SDK; 100
sandboxes at once (create, run a command, write a file, kill) with client and
server CPU; the round trip of a key typed into a terminal (`sandbox.pty`) until its echo
arrives; a 1 GiB upload and download between a local path and CrowNest
Local (peak RSS growth and throughput, each run in its own process), and
`make generate` wall time. Per-call rows go to a minimal loopback HTTP server that answers a
canned Sandbox (so the SDK's own cost is not hidden by a server's) and to
CrowNest Local.

    .venv/bin/python benchmarks/bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SANDBOX = {
    "id": "sbx_bench",
    "template": "python",
    "status": "running",
    "metadata": {"job": "bench"},
    "ttlMs": 300000,
    "createdAt": "2026-11-26T12:00:00Z",
    "expiresAt": "2026-11-26T12:05:00Z",
    "endedAt": None,
    "limits": {
        "cpuCount": 1,
        "memoryMb": 512,
        "diskMb": 1024,
        "maxProcesses": 256,
        "enforcedBy": {"cpu": "cgroup-v1", "memory": "cgroup-v1", "disk": "usage-check", "processes": "cgroup-v1"},
    },
}
BODY = json.dumps(SANDBOX).encode()


class CannedSandbox(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 1024  # a burst of 100 connections must not wait on SYN retries
    daemon_threads = True


@contextlib.contextmanager
def minimal_server() -> Iterator[str]:
    """The canned-Sandbox server in its own process (in this one it would compete for the GIL)."""
    with subprocess.Popen([PY, __file__, "--serve-minimal"], stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        try:
            yield process.stdout.readline().strip()
        finally:
            process.terminate()


def serve_minimal() -> None:
    server = Server(("127.0.0.1", 0), CannedSandbox)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


def import_ms(modules: tuple[str, ...], runs: int) -> dict[str, float]:
    """Median time of `import <module>` in a fresh interpreter, per module, timed inside it (so the
    interpreter's own start-up, ~25 ms and as noisy, is left out). The modules take turns, so that
    a slow spell on this shared machine falls on all of them alike."""
    samples: dict[str, list[float]] = {module: [] for module in modules}
    # As an install has them (pip compiles a wheel's modules): an editable checkout's bytecode may be
    # stale, or never written (PYTHONDONTWRITEBYTECODE), and compiling at each import costs 10+ ms.
    compileall.compile_dir(str(ROOT / "src"), quiet=1)
    for _ in range(runs):
        for module in modules:
            code = f"import time; start = time.perf_counter(); import {module}; print(time.perf_counter() - start)"
            out = subprocess.run([PY, "-c", code], check=True, capture_output=True, text=True).stdout
            samples[module].append(float(out))
    return {module: statistics.median(times) * 1000 for module, times in samples.items()}


def per_call(base_url: str, api_key: str, calls: int, sandbox_id: str = "sbx_bench") -> tuple[float, float, float]:
    """Client CPU time (time.process_time) per sequential `sandboxes.get`, raw httpx and the SDK:
    the best block of 100 calls of each (us/call), and the median ratio of neighbouring blocks.

    The sides alternate block by block, in turn first, so a slow spell of this shared machine
    (wall time swings 0.9x to 1.3x run to run; even CPU time drifts by a fifth) falls on both.
    """
    import httpx

    from crownest import CrowNest

    block = 100
    headers = {"Authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=base_url, headers=headers) as raw, CrowNest(api_key=api_key, base_url=base_url) as sdk:

        def get_raw() -> object:
            return raw.get(f"/v1/sandboxes/{sandbox_id}").json()

        def get_sdk() -> object:
            return sdk.sandboxes.get(sandbox_id)

        def seconds(get: Callable[[], object]) -> float:
            start = time.process_time()
            for _ in range(block):
                get()
            return time.process_time() - start

        for _ in range(50):  # warm both pools
            get_raw()
            get_sdk()
        raw_blocks: list[float] = []
        ratios: list[float] = []
        best_sdk = float("inf")
        for turn in range(max(1, calls // block)):
            if turn % 2:
                raw_s, sdk_s = seconds(get_raw), seconds(get_sdk)
            else:
                sdk_s, raw_s = seconds(get_sdk), seconds(get_raw)
            raw_blocks.append(raw_s)
            best_sdk = min(best_sdk, sdk_s)
            ratios.append(sdk_s / raw_s)
    return min(raw_blocks) / block * 1e6, best_sdk / block * 1e6, statistics.median(ratios)


# Rounds per burst size: more for the short bursts, whose single ratios swing most on a shared machine.
FAN_OUT_ROUNDS = {50: 9, 100: 9, 500: 5}
# Raw httpx takes part in the first rounds only: it is the old baseline, seconds per burst, not the target.
HTTPX_ROUNDS = 3
# The three async clients the fan-out rows compare: raw aiohttp (the reference: the fastest asyncio
# client), raw httpx.AsyncClient (with the limits the SDK used to give it) and AsyncCrowNest as
# installed. Each burst's client is new (cold: it opens its connections) and then bursts again (warm).
ASYNC_SIDES = ("aiohttp", "httpx", "crownest")


async def _async_bursts(
    side: str, base_url: str, api_key: str, sandbox_id: str, tasks: int
) -> tuple[float, float, int]:
    """(cold seconds, warm seconds, errors) of two bursts of `tasks` concurrent gets on one new client."""
    import aiohttp
    import httpx

    from crownest import AsyncCrowNest

    url = f"{base_url}/v1/sandboxes/{sandbox_id}"
    headers = {"Authorization": f"Bearer {api_key}"}
    get: Callable[[], Awaitable[object]]
    if side == "aiohttp":
        session = aiohttp.ClientSession(headers=headers, connector=aiohttp.TCPConnector(limit=100))

        async def get_aiohttp() -> object:
            async with session.get(url) as response:
                response.raise_for_status()
                return await response.json()

        get, close = get_aiohttp, session.close
    elif side == "httpx":
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        raw = httpx.AsyncClient(headers=headers, limits=limits, timeout=httpx.Timeout(660, connect=5))

        async def get_httpx() -> object:
            return (await raw.get(url)).raise_for_status().json()

        get, close = get_httpx, raw.aclose
    else:
        sdk = AsyncCrowNest(api_key=api_key, base_url=base_url, max_retries=0)

        async def get_sdk() -> object:
            return await sdk.sandboxes.get(sandbox_id)

        get, close = get_sdk, sdk.close
    seconds, errors = [], 0
    for _ in range(2):
        start = time.perf_counter()
        results = await asyncio.gather(*(get() for _ in range(tasks)), return_exceptions=True)
        seconds.append(time.perf_counter() - start)
        errors += sum(isinstance(result, BaseException) for result in results)
    await close()
    return seconds[0], seconds[1], errors


def fan_out(
    base_url: str, api_key: str, sandbox_id: str, tasks: int, rounds: int
) -> dict[str, list[tuple[float, float, int]]]:
    """Per side, (cold, warm, errors) of each round. The sides take turns within a round, in an order
    that rotates from round to round, so a slow spell on this shared machine falls on all of them."""
    runs: dict[str, list[tuple[float, float, int]]] = {side: [] for side in ASYNC_SIDES}
    for i in range(rounds):
        sides = ASYNC_SIDES if i < HTTPX_ROUNDS else tuple(side for side in ASYNC_SIDES if side != "httpx")
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
            runs[side].append(asyncio.run(_async_bursts(side, base_url, api_key, sandbox_id, tasks)))
    return runs


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SANDBOXES = 100
FAN_OUT_SIDES = ("aiohttp", "httpx", "crownest")


async def _sandbox_fan_out(side: str, base_url: str, api_key: str) -> None:
    """`SANDBOXES` sandboxes created at once, each runs a short command and writes one file, then all
    are killed: with raw aiohttp (the same HTTP exchanges), with AsyncCrowNest over a stock
    httpx.AsyncClient, and with AsyncCrowNest as installed."""
    import aiohttp
    import httpx

    from crownest import AsyncCrowNest

    if side == "aiohttp":
        headers = {"Authorization": f"Bearer {api_key}"}
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(base_url, headers=headers, connector=connector, raise_for_status=True) as s:

            async def one() -> str:
                key = {"Idempotency-Key": os.urandom(16).hex()}  # as the SDK sends, one per call
                async with s.post("/v1/sandboxes", json={"template": "base"}, headers=key) as r:
                    sandbox_id: str = (await r.json())["id"]
                run, key = {"command": "echo hi"}, {"Idempotency-Key": os.urandom(16).hex()}
                async with s.post(f"/v1/sandboxes/{sandbox_id}/commands/run", json=run, headers=key) as r:
                    assert (await r.json())["exitCode"] == 0
                put = f"/v1/sandboxes/{sandbox_id}/files/content"
                async with s.put(put, params={"path": "out.txt"}, data=b"result"):
                    pass
                return sandbox_id

            async def kill(sandbox_id: str) -> None:
                async with s.delete(f"/v1/sandboxes/{sandbox_id}"):
                    pass

            ids = await asyncio.gather(*(one() for _ in range(SANDBOXES)))
            await asyncio.gather(*(kill(sandbox_id) for sandbox_id in ids))
        return
    http = None
    if side == "httpx":
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(660, connect=5))
    async with AsyncCrowNest(api_key=api_key, base_url=base_url, max_retries=0, http_client=http) as client:

        async def sdk_one() -> Any:
            sandbox = await client.sandboxes.create(template="base")
            assert (await sandbox.commands.run("echo hi")).exit_code == 0
            await sandbox.files.write("out.txt", b"result")
            return sandbox

        sandboxes = await asyncio.gather(*(sdk_one() for _ in range(SANDBOXES)))
        await asyncio.gather(*(sandbox.kill() for sandbox in sandboxes))
    if http is not None:
        await http.aclose()


def sandbox_fan_out(
    base_url: str, api_key: str, server_pid: int, rounds: int
) -> dict[str, list[tuple[float, float, float]]]:
    """Per side, (wall, client CPU, server CPU) seconds of each round, the sides taking turns."""
    runs: dict[str, list[tuple[float, float, float]]] = {side: [] for side in FAN_OUT_SIDES}
    for i in range(rounds):
        sides = FAN_OUT_SIDES if i < HTTPX_ROUNDS - 1 else tuple(side for side in FAN_OUT_SIDES if side != "httpx")
        for side in sides[i % len(sides) :] + sides[: i % len(sides)]:
            wall, cpu, server = time.perf_counter(), time.process_time(), cpu_seconds(server_pid)
            asyncio.run(_sandbox_fan_out(side, base_url, api_key))
            runs[side].append((time.perf_counter() - wall, time.process_time() - cpu, cpu_seconds(server_pid) - server))
    return runs


TRANSFER_SCRIPT = """
import resource, sys, time
side, base_url, key, sandbox_id, path = sys.argv[1:]
import httpx
from pathlib import Path
from crownest import CrowNest
url = f"{base_url}/v1/sandboxes/{sandbox_id}/files/content"
auth = {"Authorization": f"Bearer {key}"}
# The clock covers the transfer, not setting up a client (loading certificates, ~0.1 s on either side).
raw = httpx.Client(timeout=600)
sdk = CrowNest(api_key=key, base_url=base_url, timeout=600)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if side == "raw-up":
    def chunks():
        with open(path, "rb") as f:
            while chunk := f.read(256 * 1024):
                yield chunk
    # The same exchange as the SDK's: a declared Content-Length (the server can refuse an oversized
    # file before reading it), not chunked transfer encoding.
    headers = {**auth, "Content-Type": "application/octet-stream", "Content-Length": str(Path(path).stat().st_size)}
    raw.put(url, params={"path": "big.bin"}, headers=headers, content=chunks()).raise_for_status()
elif side == "raw-down":
    with raw.stream("GET", url, params={"path": "big.bin"}, headers=auth) as r, open(path + ".raw", "wb") as f:
        for chunk in r.iter_bytes():
            f.write(chunk)
elif side == "sdk-up":
    sdk.files.write(sandbox_id, "big.bin", Path(path))
else:
    sdk.files.download(sandbox_id, "big.bin", path + ".sdk")
elapsed = time.perf_counter() - start
print(elapsed, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


# Each side runs four times, in the order A B B A A B B A, so that neither gains from going first
# or second. The median run counts: a 1 GiB write's time depends on the shared disk, whose quiet
# spells make single fast runs on either side (3.5 to 5.4 s for the same upload).
TRANSFER_ORDER = tuple(
    side for raw, sdk in (("raw-up", "sdk-up"), ("raw-down", "sdk-down")) for side in (raw, sdk, sdk, raw) * 2
)


def transfers(size_mib: int) -> dict[str, tuple[float, float]]:
    """(seconds, peak RSS growth MiB) of a 1 GiB upload and download, raw httpx and SDK, each in a fresh process:
    the median of four runs, and the largest RSS growth."""
    from crownest import CrowNestApiError
    from crownest_local import LocalServer

    runs: dict[str, list[tuple[float, float]]] = {side: [] for side in TRANSFER_ORDER}
    with tempfile.TemporaryDirectory() as folder, LocalServer() as server, server.client() as client:
        folder_path = Path(folder)
        path = folder_path / "big.bin"
        with path.open("wb") as f:
            block = os.urandom(1 << 20)
            for _ in range(size_mib):
                f.write(block)
        # Room for the file several times over: the default disk limit is 1 GiB, and the server's
        # reckoning of a deleted file's space can lag behind the next upload.
        sandbox = client.sandboxes.create(template="base", disk_mb=4 * size_mib + 1024)
        for side in TRANSFER_ORDER:
            # Every run starts from the same state: an upload creates the file (replacing one frees
            # 1 GiB first), a download writes a new local file, and no earlier run's writes are
            # still being flushed to disk.
            if side.endswith("-up"):
                with contextlib.suppress(CrowNestApiError):
                    sandbox.files.delete("big.bin")
            for output in folder_path.glob("big.bin.*"):
                output.unlink()
            os.sync()
            run = subprocess.run(
                [PY, "-c", TRANSFER_SCRIPT, side, server.base_url, server.api_key, sandbox.id, str(path)],
                capture_output=True,
                text=True,
            )
            if run.returncode != 0:
                sys.exit(f"the {side} transfer failed:\n{run.stderr}")
            seconds, rss_mib = run.stdout.split()
            runs[side].append((float(seconds), float(rss_mib)))
        sandbox.kill()
    return {
        side: (statistics.median(seconds for seconds, _ in times), max(rss for _, rss in times))
        for side, times in runs.items()
    }


@contextlib.contextmanager
def local_server_process() -> Iterator[tuple[str, str, int]]:
    """`crownest-local serve` in its own process, so that it does not share this one's GIL."""
    with tempfile.TemporaryDirectory() as folder:
        command = [
            PY,
            "-m",
            "crownest_local",
            "serve",
            "--port",
            "0",
            "--data-dir",
            folder,
            "--api-key",
            "cn_test_bench",
            "--max-sandboxes",
            str(SANDBOXES + 10),
        ]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
            assert process.stdout is not None
            url = process.stdout.readline() and process.stdout.readline().split("=", 1)[1].strip()
            try:
                yield url, "cn_test_bench", process.pid
            finally:
                process.terminate()


def pty_round_trip_ms(base_url: str, api_key: str, keys: int) -> tuple[float, float]:
    """Median and 90th percentile, in ms, of one key sent to a terminal until its echo comes back
    through the output stream (the terminal's own echo: `cat` reads the keys without printing them)."""
    from crownest import CrowNest

    samples: list[float] = []
    with CrowNest(api_key=api_key, base_url=base_url) as client:
        sandbox = client.sandboxes.create(template="base")
        pty = sandbox.pty.create(command="stty -icanon; echo ready; cat > /dev/null")
        with pty.output() as chunks:
            seen = b""
            while b"ready" not in seen:
                seen += next(chunks)
            for i in range(keys):
                key = bytes([ord("a") + i % 26])
                start = time.perf_counter()
                pty.send(key)
                echo = b""
                while key not in echo:
                    echo += next(chunks)
                samples.append(time.perf_counter() - start)
        sandbox.kill()
    return statistics.median(samples) * 1000, statistics.quantiles(samples, n=10)[-1] * 1000


def generate_seconds() -> float:
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([PY, str(ROOT / "generator" / "generate.py"), "--out", f"{folder}/_generated"], check=True)
        return time.perf_counter() - start


Row = tuple[str, str, str, str, str, str]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def fan_out_rows(tasks: int, runs: dict[str, list[tuple[float, float, int]]]) -> list[Row]:
    """A cold and a warm row: each side's median, and the median of the rounds' crownest / aiohttp ratios."""
    rows: list[Row] = []
    for phase, label in ((0, "cold (new client)"), (1, "warm (its second burst)")):
        cells = {}
        for side in ASYNC_SIDES:
            errors = sum(run[2] for run in runs[side])
            median = statistics.median(run[phase] for run in runs[side])
            cells[side] = ms(median) + (f", {errors} errors" if errors else "")
        ratios = [sdk[phase] / ref[phase] for ref, sdk in zip(runs["aiohttp"], runs["crownest"], strict=True)]
        ratio = f"{statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f})"
        what = f"{tasks} concurrent gets, {label}"
        rows.append((what, cells["aiohttp"], cells["httpx"], cells["crownest"], ratio, "<= 1.5x, 0 errors"))
    return rows


def sandbox_rows(runs: dict[str, list[tuple[float, float, float]]]) -> list[Row]:
    rows: list[Row] = []
    for i, what in enumerate(("wall", "client CPU", "server CPU")):
        cells = {side: statistics.median(run[i] for run in runs[side]) for side in FAN_OUT_SIDES}
        ratio = f"{cells['crownest'] / cells['aiohttp']:.2f}x"
        label = f"{SANDBOXES} sandboxes at once (create, run, write, kill): {what}"
        rows.append(
            (label, f"{cells['aiohttp']:.2f} s", f"{cells['httpx']:.2f} s", f"{cells['crownest']:.2f} s", ratio, "")
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs and a 64 MiB upload, to check the script")
    parser.add_argument("--serve-minimal", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_minimal:
        return serve_minimal()
    runs, calls, size = (5, 400, 64) if args.quick else (31, 6000, 1024)
    rounds = {tasks: 2 for tasks in FAN_OUT_ROUNDS} if args.quick else FAN_OUT_ROUNDS
    rows: list[Row] = []

    imports = import_ms(("httpx", "crownest"), runs)
    httpx_ms, crownest_ms = imports["httpx"], imports["crownest"]
    rows.append(
        ("import", "", f"{httpx_ms:.0f} ms", f"{crownest_ms:.0f} ms", f"{crownest_ms / httpx_ms:.2f}x", "<= 1.2x")
    )

    with minimal_server() as url:
        raw_us, sdk_us, ratio = per_call(url, "k", calls)
    rows.append(
        (
            f"{calls} sequential gets, client CPU (minimal server)",
            "",
            f"{raw_us:.0f} us/call",
            f"{sdk_us:.0f} us/call",
            f"{ratio:.2f}x",
            "<= 1.10x httpx",
        )
    )

    with local_server_process() as (local_url, key, server_pid):
        from crownest import CrowNest

        with CrowNest(api_key=key, base_url=local_url) as client:
            sandbox_id = client.sandboxes.create(template="base").id
        raw_us, sdk_us, ratio = per_call(local_url, key, calls // 2, sandbox_id)
        rows.append(
            (
                f"{calls // 2} sequential gets, client CPU (CrowNest Local)",
                "",
                f"{raw_us:.0f} us/call",
                f"{sdk_us:.0f} us/call",
                f"{ratio:.2f}x",
                "<= 1.10x httpx",
            )
        )
        for tasks, tasks_rounds in rounds.items():
            rows.extend(fan_out_rows(tasks, fan_out(local_url, key, sandbox_id, tasks, tasks_rounds)))
        rows.extend(sandbox_rows(sandbox_fan_out(local_url, key, server_pid, 1 if args.quick else 3)))
        median_ms, p90_ms = pty_round_trip_ms(local_url, key, 50 if args.quick else 300)
        rows.append(
            (
                "pty round trip (send a key, read its echo)",
                "",
                "",
                f"median {median_ms:.1f} ms, p90 {p90_ms:.1f} ms",
                "",
                "median < 15 ms",
            )
        )

    moved = transfers(size)
    for verb, raw_side, sdk_side in (("upload", "raw-up", "sdk-up"), ("download", "raw-down", "sdk-down")):
        (raw_t, raw_rss), (sdk_t, sdk_rss) = moved[raw_side], moved[sdk_side]
        rows.append(
            (
                f"{verb} {size} MiB (path to path): time",
                "",
                f"{raw_t:.1f} s",
                f"{sdk_t:.1f} s",
                f"{raw_t / sdk_t:.2f}x throughput",
                ">= 0.8x httpx",
            )
        )
        rows.append(
            (f"{verb} {size} MiB: peak RSS growth", "", f"{raw_rss:.0f} MiB", f"{sdk_rss:.0f} MiB", "", "<= 32 MiB")
        )
    rows.append(("make generate", "", "", f"{generate_seconds():.1f} s", "", ""))

    header = ("benchmark", "raw aiohttp", "raw httpx", "crownest", "ratio (to aiohttp if given, else httpx)", "target")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)), flush=True)


if __name__ == "__main__":
    main()
