"""Sandboxes that last, sync and async, against CrowNest Local.

List filters and order, commands without a time limit (and the run cap),
metrics of one sandbox, and pause/resume with every process frozen where it is.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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


COUNTER = """
import os, time
i = 0
while True:
    i += 1
    with open("count.tmp", "w") as f:
        f.write(f"{os.getpid()} {i}")
    os.replace("count.tmp", "count")
    time.sleep(0.005)
"""


async def count(sandbox: Any, *, paused: bool = False) -> tuple[int, int]:
    """(pid, count) the counter last wrote, once it has written: read by a command, or the file API if paused.

    (The file API reads a file that is replaced as it is read at its own risk; a paused counter replaces nothing.)
    """
    for _ in range(600):
        if paused:
            text = await done(sandbox.files.read_text("count"))
        else:
            text = (await done(sandbox.commands.run("cat count 2>/dev/null", timeout_ms=30_000))).stdout
        if text:
            pid, value = text.split()
            return int(pid), int(value)
        await asyncio.sleep(0.05)
    raise AssertionError("the counter never wrote")


async def counted_past(sandbox: Any, value: int) -> tuple[int, int]:
    for _ in range(600):
        now = await count(sandbox)
        if now[1] > value:
            return now
        await asyncio.sleep(0.05)
    raise AssertionError(f"the counter did not pass {value}")


async def test_a_paused_sandbox_freezes_where_it_is_and_resumes_from_there(client: Any) -> None:
    sandbox = await done(client.sandboxes.create(template="python", ttl_ms=120_000))
    try:
        await done(sandbox.files.write("counter.py", COUNTER))
        counter = await done(sandbox.commands.start("python3 counter.py", timeout_ms=0))
        pid, _ = await counted_past(sandbox, 0)
        expires = sandbox.expires_at
        await done(sandbox.pause())
        assert sandbox.status == "paused" and sandbox.paused_at is not None
        assert sandbox.expires_at - sandbox.paused_at == datetime.timedelta(hours=24)  # the pause retention
        at_pause = await count(sandbox, paused=True)  # reads work while paused
        await asyncio.sleep(0.3)
        assert await count(sandbox, paused=True) == at_pause  # frozen: not one more step
        metrics = await done(sandbox.metrics())
        assert metrics.process_count >= 1 and metrics.cpu_percent == 0
        assert (await done(client.sandboxes.get(sandbox.id))).status == "paused"
        assert sandbox.id in {s.id for s in await items(client.sandboxes.list(status="paused"))}
        assert (await done(sandbox.commands.get(counter.id))).status == "running"
        actions: list[Callable[[], Any]] = [
            lambda: sandbox.commands.run("true"),
            lambda: sandbox.files.write("x.txt", "x"),
            lambda: sandbox.set_ttl(60_000),
            lambda: sandbox.previews.create(port=8000),
            lambda: client.commands.kill(sandbox.id, counter.id),
        ]
        for action in actions:
            with pytest.raises(CrowNestApiError) as caught:
                await done(action())
            assert (caught.value.status, caught.value.code) == (409, "sandbox_paused")
        await done(sandbox.pause())  # pausing a paused sandbox is fine
        assert sandbox.status == "paused"

        await done(sandbox.resume())
        assert sandbox.status == "running" and sandbox.paused_at is None
        assert sandbox.expires_at > expires  # the TTL clock stood still while paused
        after = await counted_past(sandbox, at_pause[1])
        assert after[0] == pid == at_pause[0]  # the same process went on counting from where it was
        assert (await done(sandbox.commands.get(counter.id))).status == "running"
        await done(sandbox.resume())  # resuming a running sandbox is fine
        assert sandbox.status == "running"
        await done(sandbox.pause())
    finally:
        await done(sandbox.kill())  # a paused sandbox can be killed
    assert (await done(client.sandboxes.get(sandbox.id))).status == "killed"
    assert (await done(client.commands.wait(sandbox.id, counter.id, timeout_ms=30_000))).status == "killed"
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.sandboxes.resume(sandbox.id))
    assert (caught.value.status, caught.value.code) == (409, "sandbox_not_running")


async def paused_by_its_ttl(sandbox: Any) -> None:
    """Wait (reading the sandbox only: a command in flight would wait out the pause) until it is paused."""
    for _ in range(1200):
        await done(sandbox.refresh())
        if sandbox.status != "running":
            break
        await asyncio.sleep(0.05)
    assert sandbox.status == "paused"


async def test_on_timeout_pause_pauses_at_the_ttl_and_resume_gives_the_ttl_again(client: Any) -> None:
    sandbox = await done(client.sandboxes.create(template="python", ttl_ms=120_000, on_timeout="pause"))
    try:
        assert sandbox.on_timeout == "pause"
        await done(sandbox.files.write("counter.py", COUNTER))
        await done(sandbox.commands.start("python3 counter.py", timeout_ms=0))
        pid, _ = await counted_past(sandbox, 0)
        await done(sandbox.set_ttl(1000))
        await paused_by_its_ttl(sandbox)
        at_pause = await count(sandbox, paused=True)
        await done(client.sandboxes.resume(sandbox.id))  # its TTL (1 s) again, then paused again
        await paused_by_its_ttl(sandbox)
        again = await count(sandbox, paused=True)
        assert again[0] == pid and again[1] > at_pause[1]
    finally:
        await done(client.sandboxes.kill(sandbox.id))


def test_a_paused_sandbox_ends_after_the_pause_retention_and_commands_time_out_only_while_running() -> None:
    with LocalServer(pause_retention=1) as server, server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        sleeper = sandbox.commands.start("sleep 30", timeout_ms=1500)
        sandbox.pause()
        assert isinstance(sandbox.paused_at, datetime.datetime)
        assert sandbox.expires_at - sandbox.paused_at == datetime.timedelta(seconds=1)
        assert sleeper.wait(timeout_ms=30_000).status == "killed"  # ended with its sandbox, not timed out
        expired = client.sandboxes.get(sandbox.id)
        assert (expired.status, expired.paused_at) == ("expired", None)


async def test_without_cgroups_pause_stops_and_continues_each_process(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="crownest_local")
    with LocalServer(cgroups=False) as server, server.client(max_retries=0) as client:
        assert "sandboxes paused by: SIGSTOP/SIGCONT" in caplog.text
        with client.sandboxes.create(template="python") as sandbox:
            sandbox.files.write("counter.py", COUNTER)
            sandbox.commands.start("python3 counter.py", timeout_ms=0)
            pid, _ = await counted_past(sandbox, 0)
            sandbox.pause()
            at_pause = await count(sandbox, paused=True)
            await asyncio.sleep(0.3)
            assert await count(sandbox, paused=True) == at_pause
            sandbox.resume()
            assert (await counted_past(sandbox, at_pause[1]))[0] == pid


def owned_by_its_sandbox(server: LocalServer, sandbox_id: str) -> bool:
    """Whether every entry in a sandbox's folder (links themselves) has the folder's owner."""
    folder = server.sandbox_folder(sandbox_id)
    owner = folder.lstat().st_uid, folder.lstat().st_gid
    return all((p.lstat().st_uid, p.lstat().st_gid) == owner for p in folder.rglob("*"))


async def test_a_snapshot_restores_exact_files_into_new_sandboxes_and_outlives_its_sandbox(
    client: Any, server: LocalServer
) -> None:
    original = await done(client.sandboxes.create(template="python", metadata={"role": "original"}))
    try:
        make = (
            "import os, hashlib\n"
            "os.makedirs('data/deep', exist_ok=True)\n"
            "open('data/deep/blob.bin', 'wb').write(os.urandom(3 << 20))\n"
            "open('/tmp/scratch.txt', 'w').write('in tmp')\n"
            "os.symlink('deep/blob.bin', 'data/link')\n"
            "os.chmod('data/deep/blob.bin', 0o640)\n"
        )
        await done(original.files.write("make.py", make))
        assert (await done(original.commands.run("python3 make.py"))).status == "succeeded"
        digest = "sha256sum data/deep/blob.bin /tmp/scratch.txt; stat -c %a data/deep/blob.bin; readlink data/link"
        before = (await done(original.commands.run(digest))).stdout
        snapshot = await done(original.snapshot(name="with blob"))
        assert (snapshot.name, snapshot.sandbox_id, snapshot.template) == ("with blob", original.id, "python")
        assert snapshot.id.startswith("snp_") and snapshot.size_bytes >= 3 << 20
        assert (await done(client.snapshots.get(snapshot.id))).to_dict() == snapshot.to_dict()
        assert snapshot.id in {s.id for s in await items(client.snapshots.list(sandbox_id=original.id))}
        # The original changes after the snapshot; the copy does not.
        await done(original.commands.run("echo changed > data/deep/blob.bin; rm /tmp/scratch.txt"))
        copy = await done(client.sandboxes.create(snapshot=snapshot.id))
        try:
            assert (copy.template, copy.snapshot_id) == ("python", snapshot.id)
            assert (await done(copy.commands.run(digest))).stdout == before
            assert owned_by_its_sandbox(server, copy.id)  # under root, the copy's own user, not the original's
            changed = await done(copy.commands.run("echo more >> data/deep/blob.bin && rm data/link && echo ok"))
            assert changed.stdout == "ok\n", changed.stderr
            await done(copy.files.write("only-in-copy.txt", "x"))
        finally:
            await done(copy.kill())
        await done(original.kill())
        forked_later = await done(client.sandboxes.create(template="python", snapshot=snapshot.id))
        try:  # the snapshot outlives both sandboxes and is what it was
            assert (await done(forked_later.commands.run(digest))).stdout == before
            listing = await done(forked_later.files.list("."))
            assert "only-in-copy.txt" not in {entry.name for entry in listing}
        finally:
            await done(forked_later.kill())
        with pytest.raises(CrowNestApiError) as caught:
            await done(client.sandboxes.create(template="base", snapshot=snapshot.id))
        assert (caught.value.status, caught.value.code) == (400, "invalid_request")
        await done(client.snapshots.delete(snapshot.id))
        gone: list[Callable[[], Any]] = [
            lambda: client.snapshots.get(snapshot.id),
            lambda: client.sandboxes.create(snapshot=snapshot.id),
        ]
        for call in gone:
            with pytest.raises(CrowNestApiError) as caught:
                await done(call())
            assert (caught.value.status, caught.value.code) == (404, "snapshot_not_found")
        with pytest.raises(CrowNestApiError) as caught:
            await done(client.sandboxes.create())
        assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    finally:
        await done(original.kill())


async def test_fork_copies_the_files_and_settings_and_the_original_goes_on(client: Any) -> None:
    original = await done(client.sandboxes.create(template="python", memory_mb=256, env={"WHO": "twin"}))
    try:
        await done(original.files.write("state.txt", "before fork"))
        await done(original.files.write("counter.py", COUNTER))
        await done(original.commands.start("python3 counter.py", timeout_ms=0))
        await counted_past(original, 0)
        fork = await done(original.fork())
        try:
            assert fork.id != original.id and fork.status == "running" and original.status == "running"
            assert fork.limits.memory_mb == 256 and fork.snapshot_id is not None
            assert (await done(fork.commands.run("cat state.txt; echo; echo $WHO"))).stdout == "before fork\ntwin\n"
            await done(fork.files.write("state.txt", "fork's"))
            assert await done(original.files.read_text("state.txt")) == "before fork"
            assert (await done(original.metrics())).process_count >= 1  # the original's counter still runs
            assert (await done(fork.metrics())).process_count == 0  # files only: no process is copied
        finally:
            await done(fork.kill())
    finally:
        await done(original.kill())


async def wait_built(client: Any, name: str) -> Any:
    for _ in range(1200):
        template = await done(client.templates.get(name))
        if template.status != "building":
            return template
        await asyncio.sleep(0.05)
    raise AssertionError(f"template {name} is still building")


async def test_a_built_template_has_what_its_build_installed_without_network(client: Any, server: LocalServer) -> None:
    name = f"greeter-{secrets.token_hex(3)}"
    # A module written by the build into the user site (on python's path), which the template keeps.
    template = await done(
        client.templates.create(
            name,
            base="python",
            files={"src/greeter.py": "def hello():\n    return 'hello from the template'\n"},
            commands=[
                "echo building $STAGE",
                "echo '# the build may change what files= wrote' >> src/greeter.py",
                "mkdir -p $(python3 -m site --user-site) && cp src/greeter.py $(python3 -m site --user-site)/",
                "echo done > /tmp/built.txt",
            ],
            env={"STAGE": "one"},
        )
    )
    assert (template.id, template.status, template.base) == (name, "building", "python")
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.templates.create(name))
    assert (caught.value.status, caught.value.code) == (409, "template_exists")
    built = await wait_built(client, name)
    assert built.status == "ready"
    assert isinstance(built.build_sandbox_id, str) and isinstance(built.build_command_id, str)
    events = await items(client.commands.events(built.build_sandbox_id, built.build_command_id))
    assert "building one" in "".join(e.data for e in events if e.event == "output")
    assert name in {t.id for t in await done(client.templates.list())}
    sandbox = await done(client.sandboxes.create(template=name))
    try:
        assert sandbox.template == name
        check = "python3 -c 'import greeter; print(greeter.hello())'; cat /tmp/built.txt"
        result = await done(sandbox.commands.run(check))
        assert result.stdout == "hello from the template\ndone\n", result.stderr
        assert owned_by_its_sandbox(server, sandbox.id)
        changed = await done(sandbox.commands.run("echo again >> /tmp/built.txt && rm src/greeter.py && echo ok"))
        assert changed.stdout == "ok\n", changed.stderr
    finally:
        await done(sandbox.kill())

    failing = f"broken-{secrets.token_hex(3)}"
    await done(client.templates.create(failing, commands=["echo first", "exit 7", "echo never"]))
    broken = await wait_built(client, failing)
    assert broken.status == "failed"
    assert isinstance(broken.build_sandbox_id, str) and isinstance(broken.build_command_id, str)
    build = await done(client.commands.get(broken.build_sandbox_id, broken.build_command_id))
    assert (build.exit_code, build.stdout) == (7, "first\n")
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.sandboxes.create(template=failing))
    assert (caught.value.status, caught.value.code) == (409, "template_not_ready")
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.templates.delete("python"))
    assert caught.value.status == 403
    for gone in (name, failing):
        await done(client.templates.delete(gone))
        with pytest.raises(CrowNestApiError) as caught:
            await done(client.templates.get(gone))
        assert caught.value.code == "template_not_found"
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.templates.create("Bad Name"))
    assert caught.value.status == 400
    with pytest.raises(CrowNestApiError) as caught:  # maxItems: 64
        await done(client.templates.create(f"many-{secrets.token_hex(3)}", commands=["true"] * 65))
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
