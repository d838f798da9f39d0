"""Every public SDK method, sync and async, over real HTTP against CrowNest Local.

One scenario per mode drives the client through a recorder that notes each
method called; the scenario ends by checking that no public method of any
resource, scoped resource or handle was left out.
"""

from __future__ import annotations

import base64
import functools
import importlib
import inspect
import io
import json
import tarfile
import tempfile
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from conftest import free_port
from crownest import AsyncCrowNest, CommandFailedError, CrowNest, CrowNestApiError
from crownest._generated.resources import (
    RESOURCES,
    AsyncClientResources,
    AsyncSandboxScopes,
    ClientResources,
    SandboxScopes,
)
from crownest._handle import (
    AsyncCommandHandle,
    AsyncPtyHandle,
    AsyncSandboxHandle,
    CommandHandle,
    PtyHandle,
    SandboxHandle,
)
from crownest_local import LocalServer

T = TypeVar("T")


def public_methods(cls: type) -> set[str]:
    return {name for name, value in vars(cls).items() if not name.startswith("_") and callable(value)}


def handle_methods(handle: type) -> set[str]:
    """The public methods a handle adds to the model it is, generated from the spec or written by hand."""
    model = next(c for c in handle.__mro__ if c.__module__.startswith("crownest.models"))
    return {
        name
        for name in dir(handle)
        if not name.startswith("_") and name not in dir(model) and inspect.isfunction(getattr(handle, name))
    }


def expected_calls(resources: type, scopes: type, sandbox: type, command: type, pty: type) -> set[str]:
    """Every public method: of each client resource, each sandbox-scoped resource, and each handle."""
    names: set[str] = set()
    for prefix, holder in (("client", resources), ("sandbox", scopes)):
        for tag, prop in vars(holder).items():
            if isinstance(prop, property | functools.cached_property) and tag in RESOURCES:
                getter: Any = prop.fget if isinstance(prop, property) else prop.func
                module = importlib.import_module(f"crownest._generated.resources.{tag}")
                cls = getattr(module, inspect.signature(getter).return_annotation)
                names |= {f"{prefix}.{tag}.{m}" for m in public_methods(cls)}
    return names | {
        f"{prefix}.{m}"
        for prefix, handle in (("sandbox", sandbox), ("command", command), ("pty", pty))
        for m in handle_methods(handle)
    }


class Recorder:
    """Passes everything through to `target`, noting `<path>.<method>` for each public method called."""

    def __init__(self, target: Any, path: str, seen: set[str]) -> None:
        self._target, self._path, self._seen = target, path, seen

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name.startswith("_"):
            return value
        if type(value).__module__.startswith("crownest._generated.resources"):
            return Recorder(value, f"{self._path}.{name}", self._seen)
        if not inspect.ismethod(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            self._seen.add(f"{self._path}.{name}")
            result = value(*args, **kwargs)
            if inspect.isawaitable(result):
                return self._wrap_later(result)
            return self._wrap(result)

        return call

    async def _wrap_later(self, result: Awaitable[Any]) -> Any:
        return self._wrap(await result)

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, SandboxHandle | AsyncSandboxHandle):
            return Recorder(result, "sandbox", self._seen)
        if isinstance(result, CommandHandle | AsyncCommandHandle):
            return Recorder(result, "command", self._seen)
        if isinstance(result, PtyHandle | AsyncPtyHandle):
            return Recorder(result, "pty", self._seen)
        return result


async def done(value: T | Awaitable[T]) -> T:
    """The value of a sync call, or the awaited value of an async one."""
    return await value if inspect.isawaitable(value) else value


async def items(pager: Any) -> list[Any]:
    """Every item of a pager or stream, sync or async."""
    if hasattr(pager, "__aiter__"):
        return [item async for item in pager]
    return list(pager)


@pytest.fixture(params=["sync", "async"])
async def sdk(request: pytest.FixtureRequest, crownest_local: LocalServer) -> AsyncIterator[tuple[Any, set[str], str]]:
    seen: set[str] = set()
    if request.param == "sync":
        with crownest_local.client(max_retries=0) as client:
            yield Recorder(client, "client", seen), seen, "sync"
    else:
        async with crownest_local.async_client(max_retries=0) as aclient:
            yield Recorder(aclient, "client", seen), seen, "async"


async def test_every_method(sdk: tuple[Any, set[str], str]) -> None:
    client, seen, mode = sdk
    await templates(client)
    sandbox = await sandboxes(client)
    await commands(client, sandbox)
    await files(client, sandbox)
    await watches(client, sandbox)
    await artifacts(client, sandbox)
    await previews(client, sandbox)
    await terminals(client, sandbox)
    await done(sandbox.kill())
    assert (await done(client.sandboxes.get(sandbox.id))).status == "killed"
    expected = (
        expected_calls(ClientResources, SandboxScopes, SandboxHandle, CommandHandle, PtyHandle)
        if mode == "sync"
        else expected_calls(
            AsyncClientResources, AsyncSandboxScopes, AsyncSandboxHandle, AsyncCommandHandle, AsyncPtyHandle
        )
    )
    assert {
        "client.files.read_text",
        "sandbox.commands.events",
        "sandbox.kill",
        "command.follow",
        "pty.output",
    } <= expected
    assert expected - seen == set(), "public methods no end-to-end test calls"


async def templates(client: Any) -> None:
    built = await done(client.templates.create(f"e2e-{id(client)}", commands=["echo built > mark"]))
    assert built.status == "building"
    await done(client.templates.delete(built.id))
    listed = await done(client.templates.list())
    assert {"python", "base"} <= {t.id for t in listed}
    assert (await done(client.templates.get("python"))).description
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.templates.get("cobol"))
    assert (caught.value.status, caught.value.code) == (404, "template_not_found")


async def sandboxes(client: Any) -> Any:
    sandbox = await done(
        client.sandboxes.create(template="python", ttl_ms=120_000, metadata={"suite": "e2e"}, env={"GREETING": "hello"})
    )
    assert sandbox.status == "running" and sandbox.metadata["suite"] == "e2e"
    assert "env" not in (await done(client.sandboxes.get(sandbox.id))).to_dict()
    listed = await items(client.sandboxes.list(metadata={"suite": "e2e"}, status="running"))
    assert sandbox.id in {s.id for s in listed}
    extended = await done(client.sandboxes.set_ttl(sandbox.id, ttl_ms=600_000))
    assert extended.ttl_ms == 600_000 and extended.expires_at > sandbox.expires_at
    await done(sandbox.set_ttl(300_000))
    assert sandbox.ttl_ms == 300_000
    await done(sandbox.refresh())
    assert sandbox.status == "running"
    metrics = await done(sandbox.metrics())
    assert metrics.limits == sandbox.limits and metrics.process_count == 0
    assert (await done(client.sandboxes.metrics(sandbox.id))).disk_bytes >= 0
    await done(sandbox.pause())
    assert sandbox.status == "paused"
    assert (await done(client.sandboxes.resume(sandbox.id))).status == "running"
    assert (await done(client.sandboxes.pause(sandbox.id))).status == "paused"
    await done(sandbox.resume())
    assert sandbox.status == "running"
    snapshot = await done(client.sandboxes.snapshot(sandbox.id))
    assert (await done(sandbox.snapshot(name="again"))).name == "again"
    assert snapshot.id in {s.id for s in await items(client.snapshots.list())}
    assert (await done(client.snapshots.get(snapshot.id))).sandbox_id == sandbox.id
    fork = await done(sandbox.fork())
    assert fork.status == "running" and fork.id != sandbox.id
    await done(fork.kill())
    forked = await done(client.sandboxes.fork(sandbox.id))
    await done(forked.kill())
    await done(client.snapshots.delete(snapshot.id))
    other = await done(client.sandboxes.create(template="base"))
    await done(client.sandboxes.kill(other.id))
    await done(client.sandboxes.kill(other.id))  # killing an ended sandbox is also fine
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.commands.run(other.id, "true"))
    assert (caught.value.status, caught.value.code) == (409, "sandbox_not_running")
    return sandbox


async def commands(client: Any, sandbox: Any) -> None:
    result = await done(sandbox.commands.run("echo $GREETING $EXTRA; echo oops >&2; exit 3", env={"EXTRA": "there"}))
    assert (result.status, result.exit_code, result.stdout, result.stderr) == ("failed", 3, "hello there\n", "oops\n")
    timed = await done(client.commands.run(sandbox.id, "sleep 5", timeout_ms=200))
    assert timed.status == "timed_out" and timed.exit_code is None
    fed = await done(sandbox.commands.run("cat", stdin="fed in"))
    assert fed.stdout == "fed in"

    started = await done(client.commands.start(sandbox.id, "read line; echo got $line"))
    assert started.status == "running"
    await done(client.commands.send_stdin(sandbox.id, started.id, data="ping\n", eof=True))
    finished = await done(client.commands.wait(sandbox.id, started.id, timeout_ms=10_000))
    assert (finished.status, finished.stdout) == ("succeeded", "got ping\n")
    assert (await done(client.commands.get(sandbox.id, started.id))).stdout == "got ping\n"

    sleeper = await done(sandbox.commands.start("sleep 30"))
    assert (await done(sandbox.commands.wait(sleeper.id, timeout_ms=50))).status == "running"
    killed = await done(sandbox.commands.kill(sleeper.id))
    assert killed.status == "killed"
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.commands.kill(sandbox.id, sleeper.id, signal="SIGKILL"))
    assert caught.value.code == "command_not_running"

    talker = await done(sandbox.commands.start("cat"))
    await done(sandbox.commands.send_stdin(talker.id, data="a", eof=True))
    assert (await done(sandbox.commands.get(talker.id))).id == talker.id
    events = await items(sandbox.commands.events(started.id))
    assert [(e.event, e.id, json.loads(e.data)) for e in events] == [
        ("output", "9", {"stream": "stdout", "data": "got ping\n"}),  # id: the byte offset after the event
        ("exit", "9", finished.to_dict()),
    ]
    resumed = await items(client.commands.events(sandbox.id, started.id, last_event_id="4"))
    assert json.loads(resumed[0].data) == {"stream": "stdout", "data": "ping\n"}

    listed = await items(client.commands.list(sandbox.id, limit=2))
    assert len(listed) == 6 and listed[0].id == talker.id  # newest first, across pages
    assert [c.id for c in await items(sandbox.commands.list(status="killed"))] == [sleeper.id]
    await command_handles(sandbox)


async def terminals(client: Any, sandbox: Any) -> None:
    """The `pty` resource on the client and the sandbox, and the PtyHandle."""
    size = await done(client.pty.create(sandbox.id, command="read -r line; stty size; echo got $line", cols=90))
    resized = await done(sandbox.pty.resize(size.id, cols=91, rows=25))
    assert (resized.cols, resized.rows) == (91, 25)
    await done(client.pty.send(sandbox.id, size.id, data="ok\r"))  # after the resize: `stty size` follows the line
    assert (await done(client.pty.wait(sandbox.id, size.id, timeout_ms=10_000))).status == "succeeded"
    events = await items(sandbox.pty.events(size.id))
    output = b"".join(base64.b64decode(json.loads(e.data)["data"]) for e in events if e.event == "output")
    assert output.endswith(b"25 91\r\ngot ok\r\n") and events[-1].event == "exit"
    tail = await items(client.pty.events(sandbox.id, size.id, last_event_id=events[-2].id))
    assert [e.event for e in tail] == ["exit"]

    shell = await done(sandbox.pty.create())
    assert (await done(client.pty.resize(sandbox.id, shell.id, 132, 43))).cols == 132
    await done(sandbox.pty.send(shell.id, data=b"exit 4\r"))
    assert (await done(sandbox.pty.wait(shell.id))).exit_code == 4
    sleeper = await done(client.pty.create(sandbox.id, command="sleep 30"))
    assert (await done(client.pty.kill(sandbox.id, sleeper.id))).status == "killed"
    with pytest.raises(CrowNestApiError) as caught:
        await done(sandbox.pty.kill(sleeper.id, signal="SIGKILL"))
    assert (caught.value.status, caught.value.code) == (409, "pty_not_running")

    handle = await done(sandbox.pty.create(command="read -r line; stty size; echo got $line", rows=10))
    await done(handle.resize(50, 11))
    await done(handle.send("yes\r"))
    output = b"".join(await items(handle.output()))
    assert output.endswith(b"11 50\r\ngot yes\r\n") and handle.status == "succeeded"
    assert (await done(handle.wait())).exit_code == 0
    waiting = await done(sandbox.pty.create(command="sleep 30"))
    assert (await done(waiting.wait(timeout_ms=50))).status == "running"
    await done(waiting.kill())
    assert waiting.status == "killed"


async def command_handles(sandbox: Any) -> None:
    """The CommandHandle: live output, stdin, wait, kill, and `run`'s callbacks and `check`."""
    echo = await done(sandbox.commands.start("read a; echo out $a; echo err >&2"))
    await done(echo.send_stdin("x\n", eof=True))
    chunks = await items(echo.output())
    assert "".join(c.data for c in chunks if c.stream == "stdout") == "out x\n"
    assert "".join(c.data for c in chunks if c.stream == "stderr") == "err\n"
    assert (echo.status, echo.exit_code) == ("succeeded", 0)  # the exit event updated the handle
    assert (await done(echo.wait())).stdout == "out x\n"
    await done(echo.refresh())
    assert echo.finished_at is not None

    sleeper = await done(sandbox.commands.start("sleep 30"))
    assert (await done(sleeper.wait(timeout_ms=50))).status == "running"
    await done(sleeper.kill(signal="SIGTERM"))
    assert sleeper.status == "killed"
    with pytest.raises(CommandFailedError) as failed:
        sleeper.check_returncode()
    assert failed.value.result.id == sleeper.id and failed.value.result.status == "killed"

    later = await done(sandbox.commands.start("sleep 0.2; echo late"))
    seen: list[str] = []
    await done(later.follow(seen.append, None))
    assert seen == ["late\n"] and later.status == "succeeded"

    heard: list[tuple[str, str]] = []
    result = await done(
        sandbox.commands.run(
            "echo one; sleep 0.1; echo two >&2; cat",
            on_stdout=lambda text: heard.append(("out", text)),
            on_stderr=lambda text: heard.append(("err", text)),
        )
    )
    assert heard == [("out", "one\n"), ("err", "two\n")]  # all of it before run returned; stdin closed
    assert (result.status, result.stdout, result.stderr) == ("succeeded", "one\n", "two\n")
    with pytest.raises(CommandFailedError) as failed:
        await done(sandbox.commands.run("echo no >&2; exit 4", check=True))
    assert (failed.value.result.exit_code, failed.value.result.stderr) == (4, "no\n")
    assert (await done(failed.value.result.wait())).exit_code == 4  # the handle run() returns, bound to the client
    assert "exited with code 4" in str(failed.value)
    assert (await done(sandbox.commands.run("true", check=True))).exit_code == 0


async def watches(client: Any, sandbox: Any) -> None:
    watch = await done(sandbox.files.watch("/tmp"))
    other = await done(client.files.watch(sandbox.id, "/tmp", recursive=False))
    await done(sandbox.files.mkdir("/tmp/watched"))
    await done(sandbox.files.unwatch(watch.id))
    await done(client.files.unwatch(sandbox.id, other.id))
    events = await items(client.files.watch_events(sandbox.id, watch.id))
    assert [(e.event, e.id) for e in events] == [("change", "1"), ("end", "1")]
    assert json.loads(events[0].data) == {"type": "created", "path": "/tmp/watched", "newPath": None, "isDir": True}
    assert json.loads(events[1].data)["endReason"] == "deleted"
    assert [e.event for e in await items(sandbox.files.watch_events(other.id, last_event_id="1"))] == ["end"]


async def files(client: Any, sandbox: Any) -> None:
    info = await done(sandbox.files.write("notes/a.txt", "héllo"))
    assert (info.path, info.type_, info.size_bytes) == ("/home/user/notes/a.txt", "file", 6)
    await done(client.files.write(sandbox.id, "/tmp/raw.bin", bytes(range(256))))
    assert await done(client.files.read(sandbox.id, "/tmp/raw.bin")) == bytes(range(256))
    assert await done(sandbox.files.read_text("notes/a.txt")) == "héllo"
    assert await done(client.files.read_text(sandbox.id, "/home/user/notes/a.txt")) == "héllo"
    assert await done(sandbox.files.read("notes/a.txt")) == "héllo".encode()
    assert b"".join(await items(sandbox.files.stream("notes/a.txt"))) == "héllo".encode()
    assert b"".join(await items(client.files.stream(sandbox.id, "/tmp/raw.bin"))) == bytes(range(256))
    with tempfile.TemporaryDirectory() as folder:
        assert await done(sandbox.files.download("notes/a.txt", f"{folder}/a")) == 6
        assert await done(client.files.download(sandbox.id, "/tmp/raw.bin", Path(folder) / "raw")) == 256
        assert (Path(folder) / "raw").read_bytes() == bytes(range(256))
    made = await done(sandbox.files.mkdir("build/out"))
    assert made.type_ == "directory"
    await done(client.files.mkdir(sandbox.id, "build/more", parents=False))
    moved = await done(sandbox.files.move("notes/a.txt", "build/out/a.txt"))
    assert moved.path == "/home/user/build/out/a.txt"
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.files.move(sandbox.id, "build/out/a.txt", "build/out/a.txt"))
    assert caught.value.code == "file_exists"
    assert [e.name for e in await done(sandbox.files.list("build"))] == ["more", "out"]
    assert [e.name for e in await done(client.files.list(sandbox.id, "/home/user/build/out"))] == ["a.txt"]
    assert (await done(sandbox.files.info("build/out/a.txt"))).size_bytes == 6
    assert (await done(client.files.info(sandbox.id, "build"))).type_ == "directory"
    assert await done(sandbox.files.exists("build/out/a.txt")) is True
    assert await done(client.files.exists(sandbox.id, "build/nothing/here")) is False
    deep = await done(sandbox.files.list("build", depth=2))
    assert [e.path for e in deep] == ["/home/user/build/more", "/home/user/build/out", "/home/user/build/out/a.txt"]
    with pytest.raises(CrowNestApiError) as caught:
        await done(sandbox.files.delete("build"))
    assert caught.value.code == "directory_not_empty"
    await done(client.files.delete(sandbox.id, "build/more"))
    await done(sandbox.files.delete("build", recursive=True))
    with pytest.raises(CrowNestApiError) as caught:
        await done(sandbox.files.info("build"))
    assert (caught.value.status, caught.value.code) == (404, "file_not_found")
    with pytest.raises(CrowNestApiError) as caught:
        await done(sandbox.files.read("../../etc/passwd"))
    assert (caught.value.status, caught.value.code) == (400, "invalid_path")
    signed = await done(sandbox.files.url("/tmp/raw.bin", expires_in_s=60))
    async with httpx.AsyncClient() as http:
        assert (await http.get(signed.url)).content == bytes(range(256))
        upload = await done(client.files.url(sandbox.id, "/tmp/put.bin", method="PUT"))
        put = await http.put(upload.url, content=b"put", headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 200 and await done(sandbox.files.read("/tmp/put.bin")) == b"put"
    seen_by_command = await done(sandbox.commands.run("cat /tmp/raw.bin | wc -c"))
    assert seen_by_command.stdout.strip() == "256"
    await directories(client, sandbox)


def tar_contents(archive: bytes) -> dict[str, bytes | None]:
    """The members of a tar, each with its content (None for a folder)."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: f.read() if (f := tar.extractfile(m)) else None for m in tar.getmembers()}


async def directories(client: Any, sandbox: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "proj"
        (local / "src").mkdir(parents=True)
        (local / "src" / "main.py").write_text("print(1)\n")
        written = await done(sandbox.files.upload_dir(local, "proj"))
        assert (written.path, written.files, written.directories) == ("/home/user/proj", 1, 1)
        assert (await done(client.files.upload_dir(sandbox.id, local, "/tmp/proj"))).files == 1
        many = await done(sandbox.files.write_many({"proj/a.txt": "a", "proj/src/b.txt": b"b"}))
        assert (many.path, many.files) == ("/home/user/proj", 2)
        assert (await done(client.files.write_many(sandbox.id, {"/tmp/proj/c.txt": "c"}))).path == "/tmp/proj"
        assert await done(sandbox.files.download_dir("proj", Path(folder) / "back")) == 4
        assert (Path(folder) / "back" / "src" / "b.txt").read_bytes() == b"b"
        assert await done(client.files.download_dir(sandbox.id, "/tmp/proj", Path(folder) / "tmp")) == 3
        tar = await done(sandbox.files.read_archive("proj"))
        written = await done(client.files.write_archive(sandbox.id, "/tmp/copy", tar))
        assert (written.files, written.bytes_written) == (3, len("print(1)\n") + 2)
        copy = await done(client.files.read_archive(sandbox.id, "/tmp/copy"))
        assert tar_contents(copy) == tar_contents(tar)
        assert (await done(sandbox.files.write_archive("empty", b""))).files == 0


async def artifacts(client: Any, sandbox: Any) -> None:
    await done(sandbox.files.write("report/data.csv", "a,b\n1,2\n"))
    single = await done(sandbox.artifacts.create(path="report/data.csv"))
    assert (single.name, single.size_bytes, single.content_type) == ("data.csv", 8, "text/csv")
    folder = await done(client.artifacts.create(sandbox.id, path="report", name="report.tgz", ttl_ms=60_000))
    assert folder.name == "report.tgz" and folder.content_type == "application/gzip"
    assert await done(client.artifacts.download(single.id)) == b"a,b\n1,2\n"
    with tempfile.TemporaryDirectory() as local:
        assert await done(client.artifacts.download_to(single.id, Path(local) / "data.csv")) == 8
        assert (Path(local) / "data.csv").read_bytes() == b"a,b\n1,2\n"
    assert (await done(client.artifacts.download(folder.id)))[:2] == b"\x1f\x8b"
    assert b"".join(await items(client.artifacts.stream(single.id))) == b"a,b\n1,2\n"
    assert (await done(client.artifacts.get(single.id))).sha256 == single.sha256
    link = await done(client.artifacts.url(single.id))
    async with httpx.AsyncClient() as http:
        assert (await http.get(link.url)).content == b"a,b\n1,2\n"
    assert [a.id for a in await items(sandbox.artifacts.list())] == [folder.id, single.id]
    assert [a.id for a in await items(client.artifacts.list(sandbox_id=sandbox.id, limit=1))] == [folder.id, single.id]
    await done(client.artifacts.delete(folder.id))
    with pytest.raises(CrowNestApiError) as caught:
        await done(client.artifacts.get(folder.id))
    assert caught.value.code == "artifact_not_found"


async def previews(client: Any, sandbox: Any) -> None:
    port = free_port()
    await done(sandbox.files.write("site/index.html", "<h1>preview</h1>"))
    server = await done(sandbox.commands.start(f"cd site && exec python -m http.server {port} --bind 127.0.0.1"))
    private = await done(sandbox.previews.create(port=port))
    assert private.visibility == "private" and private.token
    assert (await done(client.previews.create(sandbox.id, port=port))).id == private.id  # one preview per port
    with pytest.raises(CrowNestApiError) as caught:
        await done(sandbox.previews.create(port=port, visibility="public"))
    assert (caught.value.status, caught.value.code) == (409, "preview_exists")
    assert "delete that preview" in str(caught.value)
    assert (await done(sandbox.previews.create(port=port, wait_ms=10_000))).id == private.id
    public = await done(
        client.previews.create(sandbox.id, port=port + 1 if port < 65535 else port - 1, visibility="public")
    )
    async with httpx.AsyncClient(timeout=10) as http:
        body = await fetch_when_up(http, private.url, {"X-CrowNest-Preview-Token": private.token})
        assert body == "<h1>preview</h1>"
        denied = await http.get(private.url)
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "permission_denied"
    assert {p.id for p in await done(sandbox.previews.list())} == {private.id, public.id}
    await done(sandbox.previews.delete(public.id))
    await done(client.previews.delete(sandbox.id, private.id))
    assert await done(client.previews.list(sandbox.id)) == []
    await done(sandbox.commands.kill(server.id))


async def fetch_when_up(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> str:
    """The preview's page once the server in the sandbox listens (it takes a moment to start)."""
    import asyncio

    for _ in range(100):
        response = await http.get(url, headers=headers)
        if response.status_code == 200:
            return response.text
        await asyncio.sleep(0.05)
    raise AssertionError(f"preview never answered: {response.status_code} {response.text}")


def test_clients_are_the_real_classes(crownest_local: LocalServer) -> None:
    with crownest_local.client() as client:
        assert isinstance(client, CrowNest) and client.base_url == crownest_local.base_url
    assert isinstance(crownest_local.async_client(), AsyncCrowNest)
