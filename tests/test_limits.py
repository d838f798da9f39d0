"""CrowNest Local under attack from inside a sandbox and from keyless clients: it stays up and fair.

Sandboxes' limits (cgroups, rlimits, the disk check), the output log's cap
and constant-memory replay, the concurrent-command cap, retention of ended
sandboxes' records, header and body timeouts, connection caps, 413 before
reading, and an event loop that no request holds up.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from crownest import CrowNestApiError, CrowNestError
from crownest_local import LocalServer, _files, _listing, _service
from crownest_local._beneath import remove_path
from crownest_local._limits import Hierarchy, Limits, _inside, _mounts, _own_groups

MIB = 1 << 20
LOG_CAP = 64 * MIB


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer(header_timeout=1.0, body_timeout=1.0) as running:
        yield running


def timed_echo(sandbox: object, times: int) -> list[float]:
    """Wall times of `echo ok` run `times` times; each must succeed."""
    took = []
    for _ in range(times):
        started = time.perf_counter()
        result = sandbox.commands.run("echo ok")  # type: ignore[attr-defined]
        took.append(time.perf_counter() - started)
        assert (result.status, result.stdout) == ("succeeded", "ok\n")
    return took


def test_a_sandbox_under_attack_leaves_its_neighbour_usable(server: LocalServer) -> None:
    with server.client() as client:
        attacker = client.sandboxes.create(template="python", disk_mb=64, ttl_ms=120_000)
        neighbour = client.sandboxes.create(template="base")
        limits = attacker.limits
        assert (limits.cpu_count, limits.memory_mb, limits.disk_mb, limits.max_processes) == (1, 512, 64, 256)
        assert limits.enforced_by.memory.startswith("cgroup") and limits.enforced_by.processes.startswith("cgroup")
        idle = statistics.median(timed_echo(neighbour, 20))
        attacks = {
            "fork bomb": "bomb() { bomb | bomb & }; bomb; sleep 60",
            "memory hog": 'python -c "b = [bytearray(1 << 20) for _ in range(1500)]"',
            "disk filler": "head -c 200M /dev/zero > big; cat big big big > more; sleep 60",
            "output flood": "yes",
        }
        started = {name: attacker.commands.start(line, timeout_ms=60_000) for name, line in attacks.items()}
        time.sleep(1.0)
        busy = timed_echo(neighbour, 20)
        attacker.kill()
        ended = [client.commands.wait(attacker.id, command.id).status for command in started.values()]
        print(f"echo ok median idle {idle * 1000:.1f} ms, under attack {statistics.median(busy) * 1000:.1f} ms")
        assert statistics.median(busy) <= 3 * idle
        assert "running" not in ended
        neighbour.kill()


FORK_UNTIL_REFUSED = """python -c '
import os, time
forked = 0
try:
    while forked < 200:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        forked += 1
except OSError:
    pass
print(forked)
'"""


def test_memory_and_processes_are_limited_for_the_sandbox_as_a_whole(server: LocalServer) -> None:
    with server.client() as client:
        sandbox = client.sandboxes.create(template="python", memory_mb=128, max_processes=64)
        hog = sandbox.commands.run('python -c "b = [bytearray(1 << 20) for _ in range(1000)]"')
        assert (hog.status, hog.exit_code) == ("failed", 137)  # the kernel's OOM killer, in the sandbox's group
        forks = sandbox.commands.run(FORK_UNTIL_REFUSED)
        assert 10 < int(forks.stdout) < 64  # with the shell, bwrap and python, the group holds 64 at most
        sandbox.kill()


def test_the_disk_limit_caps_files_refuses_writes_and_kills(server: LocalServer) -> None:
    with server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base", disk_mb=16)
        one = sandbox.commands.run("head -c 40M /dev/zero > one; wc -c < one")
        assert one.stdout == f"{16 * MIB}\n"  # RLIMIT_FSIZE: no file past the sandbox's disk
        many = sandbox.commands.run("for i in 1 2 3; do head -c 10M /dev/zero > f$i; done; sleep 30", timeout_ms=30_000)
        assert many.status == "killed"  # the usage check found 46 MiB of 16
        with pytest.raises(CrowNestApiError) as caught:
            sandbox.files.write("more.txt", "x")
        assert (caught.value.status, caught.value.code) == (413, "disk_quota_exceeded")
        assert caught.value.details["limitBytes"] == 16 * MIB and caught.value.details["usedBytes"] > 16 * MIB
        sandbox.commands.run("rm -f one f1 f2 f3")
        deadline = time.monotonic() + 10
        while True:  # the next measurement sees the space again
            try:
                sandbox.files.write("more.txt", "x")
                break
            except CrowNestApiError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        sandbox.kill()


def test_uploads_past_the_disk_limit_are_refused_and_leave_nothing(server: LocalServer) -> None:
    with server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base", disk_mb=16)
        chunks = (b"y" * MIB for _ in range(40))
        for content in (b"x" * (40 * MIB), chunks):  # Content-Length, then chunked
            with pytest.raises(CrowNestApiError) as caught:
                sandbox.files.write("big.bin", content)
            assert (caught.value.status, caught.value.code) == (413, "disk_quota_exceeded")
        assert [entry.name for entry in sandbox.files.list("/home/user")] == []
        sandbox.files.write("fits.bin", b"z" * MIB)
        sandbox.kill()


def test_space_freed_by_a_delete_is_free_for_the_next_write(server: LocalServer) -> None:
    """A write counts its bytes until the next measurement; a delete must not leave them counted."""
    with server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base", disk_mb=16)
        for _ in range(3):
            sandbox.files.write("big.bin", b"x" * (10 * MIB))
            sandbox.files.delete("big.bin")
        sandbox.files.write("tree/big.bin", b"x" * (10 * MIB))
        sandbox.files.delete("tree", recursive=True)
        sandbox.files.write("a.bin", b"x" * (10 * MIB))
        sandbox.files.write("b.bin", b"x")
        sandbox.files.move("b.bin", "a.bin", overwrite=True)  # frees a.bin's 10 MiB
        assert sandbox.files.write("big.bin", b"x" * (10 * MIB)).size_bytes == 10 * MIB
        sandbox.kill()


def raw_answer(server: LocalServer, request: bytes) -> tuple[bytes, float]:
    """What the server answers to `request` sent at once, and how long it took."""
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(request)
        answer = b""
        while data := sock.recv(65536):  # until the server closes the connection
            answer += data
        return answer, time.monotonic() - started


def test_413_before_reading_a_body_that_says_it_is_too_big(server: LocalServer) -> None:
    with server.client() as client:
        sandbox = client.sandboxes.create(template="base", disk_mb=16)
    auth = f"Authorization: Bearer {server.api_key}\r\nHost: x\r\n"
    cases = [
        (f"PUT /v1/sandboxes/{sandbox.id}/files/content?path=a HTTP/1.1\r\n{auth}", 2 << 30, "payload_too_large"),
        (f"PUT /v1/sandboxes/{sandbox.id}/files/content?path=a HTTP/1.1\r\n{auth}", 17 * MIB, "disk_quota_exceeded"),
        (f"POST /v1/sandboxes HTTP/1.1\r\n{auth}Content-Type: application/json\r\n", 2 * MIB, "payload_too_large"),
    ]
    for head, length, code in cases:
        answer, took = raw_answer(server, f"{head}Content-Length: {length}\r\n\r\n".encode())
        status, _, rest = answer.partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 413") and b"connection: close" in rest.lower()
        assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == code
        assert took < 1.0  # answered without waiting for a body that never comes
    with server.client() as client:
        client.sandboxes.kill(sandbox.id)


def trickle(server: LocalServer, head: bytes, piece: bytes, every_s: float, limit_s: float) -> tuple[bytes, float]:
    """Send `head`, then `piece` every `every_s`; the answer and when the server ended the connection."""
    port = int(server.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(every_s)
        started = time.monotonic()
        sock.sendall(head)
        answer = b""
        while time.monotonic() - started < limit_s:
            try:
                sock.sendall(piece)
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            answer += data
        return answer, time.monotonic() - started


def test_slow_headers_and_bodies_are_cut(server: LocalServer) -> None:
    # The test server allows 1 s for headers and 1 KiB of body per second; these would go on for 60 s.
    request_line = b"GET /v1/templates HTTP/1.1\r\n"
    answer, took = trickle(server, request_line, b"X-Slow: 1\r\n", 0.2, 60)
    assert answer.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in answer and took < 5
    answer, took = trickle(server, b"", b"", 0.2, 60)  # a connection that never sends a byte
    assert answer.startswith(b"HTTP/1.1 408") and took < 5
    head = (
        f"POST /v1/sandboxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.api_key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer, took = trickle(server, head, b"1\r\n \r\n", 0.2, 60)  # a chunked body that never ends
    assert answer.startswith(b"HTTP/1.1 408") and took < 5
    with server.client() as client:  # the server is fine, and a normal client unaffected
        assert client.templates.get("base").id == "base"


def test_connections_are_capped_per_address_and_in_all() -> None:
    with LocalServer(max_connections=5, max_connections_per_client=3, header_timeout=60) as server:
        port = int(server.base_url.rsplit(":", 1)[1])

        def connect(source: str) -> socket.socket:
            sock = socket.socket()
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", port))
            sock.settimeout(5)
            return sock

        held = [connect("127.0.0.2") for _ in range(3)]
        time.sleep(0.2)
        refused = connect("127.0.0.2")
        answer = refused.recv(65536)
        assert answer.startswith(b"HTTP/1.1 503") and b'"too_many_connections"' in answer
        assert refused.recv(1) == b""  # and closed
        with server.client(max_retries=0) as client:
            assert client.templates.get("base").id == "base"  # another address still gets in
        held += [connect("127.0.0.3"), connect("127.0.0.3")]
        time.sleep(0.2)
        held.append(connect("127.0.0.4"))
        assert held[-1].recv(65536).startswith(b"HTTP/1.1 503")  # 5 open in all
        for sock in [*held, refused]:
            sock.close()
        with server.client() as client:  # retried (503 says Retry-After) until the server has seen them close
            assert client.templates.get("base").id == "base"


def test_the_output_log_is_capped_flagged_and_replayed_in_constant_memory(server: LocalServer) -> None:
    with server.client() as client, httpx.Client(base_url=server.base_url, timeout=60) as http:
        sandbox = client.sandboxes.create(template="base")
        result = sandbox.commands.run("head -c 80M /dev/zero | tr '\\0' x; echo done >&2", timeout_ms=120_000)
        assert result.status == "succeeded" and result.output_truncated and result.stderr == "done\n"
        assert not sandbox.commands.run("echo small").output_truncated
        url = f"/v1/sandboxes/{sandbox.id}/commands/{result.id}/events"
        headers = {"Authorization": f"Bearer {server.api_key}", "Last-Event-ID": str(MIB)}
        peak = PeakRss()
        with peak, http.stream("GET", url, headers=headers) as response:
            received = 0
            last = ""
            for line in response.iter_lines():
                if line.startswith('data: {"stream"'):
                    received += len(json.loads(line[6:])["data"])
                elif line.startswith("id: "):
                    last = line[4:]
        assert received == LOG_CAP - MIB and last == str(LOG_CAP)
        print(f"replaying 63 MiB of output grew this process by {peak.growth / MIB:.1f} MiB at most")
        assert peak.growth < 24 * MIB
        sandbox.kill()


class PeakRss:
    """How much this process's peak resident memory grew while the block ran.

    Writing 5 to /proc/self/clear_refs resets the peak (VmHWM), so that even a brief
    allocation (a whole log read and freed) shows.
    """

    def __init__(self) -> None:
        self.growth = 0

    @staticmethod
    def status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024
        raise AssertionError(f"no {key}")

    def __enter__(self) -> PeakRss:
        Path("/proc/self/clear_refs").write_text("5")
        self._base = self.status("VmRSS")
        return self

    def __exit__(self, *exc: object) -> None:
        self.growth = self.status("VmHWM") - self._base


def test_a_sandbox_runs_at_most_32_commands_at_once(server: LocalServer) -> None:
    with server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        running = [sandbox.commands.start("sleep 60") for _ in range(32)]
        with pytest.raises(CrowNestApiError) as caught:
            sandbox.commands.start("echo one too many")
        assert (caught.value.status, caught.value.code) == (409, "too_many_commands")
        assert caught.value.details["limit"] == 32
        running[0].kill(signal="SIGKILL")
        assert sandbox.commands.run("echo ok").stdout == "ok\n"
        sandbox.kill()


def test_an_ended_sandboxs_records_stay_readable_for_the_retention() -> None:
    with LocalServer(retention=5) as server, server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        sandbox.files.write("a.txt", "kept")
        artifact = sandbox.artifacts.create(path="a.txt")
        done = sandbox.commands.run("echo finished")
        handle = sandbox.commands.start("sleep 60")
        sandbox.kill()
        assert sandbox.commands.get(done.id).stdout == "finished\n"
        assert handle.wait().status == "killed"
        handle.refresh()
        sandbox.refresh()
        assert sandbox.status == "killed"
        assert {c.id for c in sandbox.commands.list()} == {done.id, handle.id}
        assert [a.id for a in sandbox.artifacts.list()] == [artifact.id]
        events = [event.event for event in sandbox.commands.events(done.id)]
        assert events == ["output", "exit"]
        for action in (
            lambda: sandbox.commands.run("true"),
            lambda: sandbox.files.write("b.txt", "x"),
            lambda: sandbox.set_ttl(60_000),
            lambda: handle.kill(),
        ):
            with pytest.raises(CrowNestApiError) as caught:
                action()
            assert (caught.value.status, caught.value.code) == (409, "sandbox_not_running")
        logs = list((server.data_dir / "commands").glob(f"{done.id}.*"))  # type: ignore[operator]
        assert logs
        assert sandbox.ended_at is not None
        time.sleep(max(0.0, (sandbox.ended_at - datetime.datetime.now(datetime.UTC)).total_seconds() + 5.5))
        for read in (lambda: sandbox.refresh(), lambda: sandbox.commands.get(done.id), lambda: handle.wait()):
            with pytest.raises(CrowNestApiError) as caught:
                read()
            assert (caught.value.status, caught.value.code) == (404, "sandbox_not_found")
        assert sandbox.id not in {listed.id for listed in client.sandboxes.list()}
        time.sleep(1.0)
        assert not any(path.exists() for path in logs)
        assert client.artifacts.download(artifact.id) == b"kept"  # artifacts outlive it until they expire


def test_big_listings_and_removals_run_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deterministic, whatever the machine's load: the listing and the removal are held inside their work,
    and meanwhile the server answers other calls. On the event loop, nothing could answer until they ended.
    (How late the loop runs during a real 200k-entry listing is a figure: benchmarks/local_server.py --listing.)"""
    listing_held, removal_held, release = threading.Event(), threading.Event(), threading.Event()
    entries = _listing.entries

    def held_listing(*args: Any) -> Iterator[dict[str, Any]]:
        listing_held.set()
        release.wait(60)
        return entries(*args)

    def held_removal(path: Path) -> None:
        removal_held.set()
        release.wait(60)
        remove_path(path)

    monkeypatch.setattr(_listing, "entries", held_listing)
    monkeypatch.setattr(_service, "remove_path", held_removal)
    with LocalServer() as server, server.client(max_retries=0, timeout=30) as client:
        busy, other = (client.sandboxes.create(template="base") for _ in range(2))
        busy.files.write("many/a", "x")
        with ThreadPoolExecutor(1) as pool:
            listing = pool.submit(busy.files.list, "many")
            assert listing_held.wait(30)
            assert other.files.write("note", "answered while a listing is at work").size_bytes == 35
            assert not listing.done()
            release.set()
            assert [entry.path for entry in listing.result()] == ["/home/user/many/a"]
            release.clear()
            killing = pool.submit(busy.kill)
            assert removal_held.wait(30)
            assert other.commands.run("echo ok").stdout == "ok\n"  # while the killed sandbox's files are removed
            release.set()
            killing.result()
        assert client.sandboxes.get(busy.id).status == "killed"


# A lister that waits for `release` to exist before listing (its process id in `pid`).
HELD_LISTER = """
import os, runpy, sys, time
folder = os.path.dirname(os.path.abspath(sys.argv[0]))
with open(os.path.join(folder, "pid.part"), "w") as f:
    f.write(str(os.getpid()))
os.rename(os.path.join(folder, "pid.part"), os.path.join(folder, "pid"))  # seen whole, or not at all
while not os.path.exists(os.path.join(folder, "release")):
    time.sleep(0.01)
sys.argv = [REAL] + sys.argv[1:]
runpy.run_path(REAL, run_name="__main__")
"""


def _held_lister(monkeypatch: pytest.MonkeyPatch, folder: Path) -> tuple[Path, Path]:
    script = folder / "lister.py"
    script.write_text(f"REAL = {_files.LISTING_SCRIPT!r}\n" + HELD_LISTER)
    monkeypatch.setattr(_files, "LISTING_SCRIPT", str(script))
    return folder / "pid", folder / "release"


def _wait_for(condition: Callable[[], object]) -> bool:
    for _ in range(1000):
        if condition():
            return True
        time.sleep(0.02)
    return False


def _alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not); it may be reaped while we look."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_a_big_folder_is_listed_by_a_process_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Above LISTED_APART_BYTES (6,000 entries: about 100 KiB on ext4 and tmpfs), a listing is made by
    `_listing` run as a script, whose GIL is not the server's: the same body as a thread makes, while
    the server answers others."""
    pid_file, release = _held_lister(monkeypatch, tmp_path)
    with LocalServer() as server, server.client(max_retries=0, timeout=60) as client:
        busy, other = (client.sandboxes.create(template="base") for _ in range(2))
        assert busy.commands.run("mkdir many && cd many && seq -w 6000 | xargs touch && mkdir sub").exit_code == 0
        big = os.stat(server.sandbox_folder(busy.id) / "home" / "many").st_size
        assert big > _files.LISTED_APART_BYTES
        with ThreadPoolExecutor(1) as pool:
            listing = pool.submit(busy.files.list, "many")
            assert _wait_for(pid_file.exists)
            assert other.files.write("note", "answered while a lister works").size_bytes == 29
            assert not listing.done()
            release.touch()
            listed = listing.result()
        monkeypatch.setattr(_files, "LISTED_APART_BYTES", big)  # the same folder, listed in a thread
        assert [entry.to_dict() for entry in busy.files.list("many")] == [entry.to_dict() for entry in listed]
        names = [entry.name for entry in listed]
        assert len(names) == 6001 and names == sorted(names) and names[0] == "0001"


def test_a_failing_lister_cuts_the_answer_and_a_gone_client_ends_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with LocalServer() as server, server.client(max_retries=0, timeout=30) as client:
        sandbox = client.sandboxes.create(template="base")
        sandbox.files.write("d/sub/f", "x")
        broken = tmp_path / "broken.py"
        broken.write_text('import sys\nsys.stdout.write(\'{"data": [{"path": \')\nsys.exit(3)\n')
        monkeypatch.setattr(_files, "LISTING_SCRIPT", str(broken))
        with pytest.raises(CrowNestError) as caught:  # a cut body, not a short listing
            sandbox.files.list("d", depth=2)
        assert not isinstance(caught.value, CrowNestApiError)

        pid_file, release = _held_lister(monkeypatch, tmp_path)
        url = f"{server.base_url}/v1/sandboxes/{sandbox.id}/files"
        headers = {"Authorization": f"Bearer {server.api_key}"}
        with httpx.stream("GET", url, params={"path": "d", "depth": 2}, headers=headers, timeout=30) as answer:
            assert answer.status_code == 200
            assert _wait_for(pid_file.exists)
        pid = int(pid_file.read_text())  # the client has gone: its lister is killed, never released
        assert _wait_for(lambda: not _alive(pid))
        release.touch()


def test_cgroup_paths_and_settings_for_v1_and_v2() -> None:
    mountinfo = (
        "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "41 23 0:38 /ctr /sys/fs/cgroup2 rw - cgroup2 cgroup2 rw\n"
    )
    mounts = _mounts(mountinfo)
    assert [(m[1], m[2]) for m in mounts] == [("/sys/fs/cgroup/memory", "cgroup"), ("/sys/fs/cgroup2", "cgroup2")]
    groups = _own_groups("4:memory:/jobs/a\n1:cpu,cpuacct:/\n0::/ctr/app\n")
    assert groups == {"memory": "/jobs/a", "cpu": "/", "cpuacct": "/", "": "/ctr/app"}
    assert _inside("/ctr", "/sys/fs/cgroup2", groups[""]) == Path("/sys/fs/cgroup2/app")
    assert _inside("/other", "/sys/fs/cgroup2", groups[""]) is None
    limits = Limits(cpu_count=2, memory_mb=256, disk_mb=64, max_processes=100)
    assert Hierarchy(2, Path("/x"), ("cpu", "memory", "pids")).settings(limits) == [
        ("cpu.max", "200000 100000"),
        ("memory.max", str(256 * MIB)),
        ("memory.swap.max", "0"),
        ("pids.max", "100"),
    ]
    assert Hierarchy(1, Path("/x"), ("cpu",)).settings(limits) == [
        ("cpu.cfs_period_us", "100000"),
        ("cpu.cfs_quota_us", "200000"),
    ]


def test_without_cgroups_limits_fall_back_to_rlimits() -> None:
    with LocalServer(cgroups=False) as server, server.client() as client:
        sandbox = client.sandboxes.create(template="python", memory_mb=128)
        assert sandbox.limits.enforced_by.memory == "rlimit" and sandbox.limits.enforced_by.cpu == "rlimit"
        hog = sandbox.commands.run('python -c "b = bytearray(300 << 20)"')
        assert hog.status == "failed" and "MemoryError" in hog.stderr
        assert sandbox.commands.run("echo ok").stdout == "ok\n"
        sandbox.kill()
