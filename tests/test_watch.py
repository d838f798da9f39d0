"""Watching a sandbox folder, sync and async, against CrowNest Local.

Each test changes the sandbox one step at a time and reads the events that step
makes before the next one, so that what the watch reports does not depend on how
fast the server reads inotify. A read that gets nothing for a minute stops the
watch (so the iteration ends) instead of hanging the test.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from crownest import (
    AsyncCrowNest,
    AsyncStream,
    AsyncWatchHandle,
    ConflictError,
    CrowNestApiError,
    NotFoundError,
    Stream,
    WatchHandle,
)
from crownest.models import FileEvent, FileEventType
from crownest_local import LocalServer
from crownest_local import _watches as watches
from crownest_local._watches import MAX_WATCHES_PER_SANDBOX

T = TypeVar("T")
HOME = "/home/user"
GUARD_S = 60.0  # a read that waits this long has found a bug: the watch is stopped so that the test ends


async def done(value: T | Awaitable[T]) -> T:
    """The value of a sync call, or the awaited value of an async one."""
    return await value if inspect.isawaitable(value) else value


def seen(events: list[FileEvent]) -> list[tuple[str, str, str | None, bool]]:
    return [(str(e.type_), e.path, e.new_path, e.is_dir) for e in events]


async def take(watch: WatchHandle | AsyncWatchHandle, count: int) -> list[FileEvent]:
    """The next `count` events of `watch` (fewer if it ends)."""
    got: list[FileEvent] = []

    async def read() -> None:
        if isinstance(watch, AsyncWatchHandle):
            async for event in watch:
                got.append(event)
                if len(got) == count:
                    return
        else:

            def sync_read() -> None:
                for event in watch:
                    got.append(event)
                    if len(got) == count:
                        return

            await asyncio.to_thread(sync_read)

    try:
        await asyncio.wait_for(asyncio.shield(task := asyncio.ensure_future(read())), GUARD_S)
    except TimeoutError:
        await done(watch._client.files.unwatch(watch.sandbox_id, watch.id))  # the read ends with the watch
        await task
    return got


def kernel_watches(server: LocalServer, watch: WatchHandle | AsyncWatchHandle) -> int:
    """How many inotify watches CrowNest Local holds for `watch` (it runs in this process)."""
    found: int = server._app.state.watches.hub.descriptors().get(watch.id, 0)
    return found


async def take_first(stream: Stream[FileEvent] | AsyncStream[FileEvent]) -> FileEvent:
    """The first event of a stream (which sends its request then)."""
    if isinstance(stream, AsyncStream):
        return await anext(stream)
    return next(stream)


async def rest(watch: WatchHandle | AsyncWatchHandle) -> list[FileEvent]:
    """Stop the watch on the server, then every event it still holds, until its end."""
    await done(watch._client.files.unwatch(watch.sandbox_id, watch.id))
    return await take(watch, 1_000_000)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as running:
        yield running


@pytest.fixture(params=["sync", "async"])
async def client(request: pytest.FixtureRequest, server: LocalServer) -> AsyncIterator[Any]:
    if request.param == "sync":
        with server.client(max_retries=0) as sync_client:
            yield sync_client
    else:
        async with server.async_client(max_retries=0) as async_client:
            yield async_client


@pytest.fixture
async def sandbox(client: Any) -> AsyncIterator[Any]:
    handle = await done(client.sandboxes.create(template="python"))
    yield handle
    await done(handle.kill())


async def test_create_modify_move_delete_in_a_nested_folder_made_after_the_watch_began(sandbox: Any) -> None:
    watch = await done(sandbox.files.watch(".", recursive=True))
    assert (watch.watch.path, watch.watch.recursive, watch.watch.status) == (HOME, True, "active")
    await done(sandbox.files.mkdir("new"))
    assert seen(await take(watch, 1)) == [("created", f"{HOME}/new", None, True)]
    await done(sandbox.files.mkdir("new/deep"))
    assert seen(await take(watch, 1)) == [("created", f"{HOME}/new/deep", None, True)]
    deep = f"{HOME}/new/deep"
    await done(sandbox.commands.run("printf x > new/deep/a.txt", check=True))
    assert seen(await take(watch, 2)) == [
        ("created", f"{deep}/a.txt", None, False),
        ("modified", f"{deep}/a.txt", None, False),
    ]
    await done(sandbox.commands.run("printf y >> new/deep/a.txt", check=True))
    assert seen(await take(watch, 1)) == [("modified", f"{deep}/a.txt", None, False)]
    await done(sandbox.commands.run("mv new/deep/a.txt new/deep/b.txt", check=True))
    assert seen(await take(watch, 1)) == [("moved", f"{deep}/a.txt", f"{deep}/b.txt", False)]
    await done(sandbox.commands.run("mv new/deep new/moved && touch new/moved/c.txt", check=True))
    assert seen(await take(watch, 2)) == [  # a moved folder stays watched, under its new name
        ("moved", deep, f"{HOME}/new/moved", True),
        ("created", f"{HOME}/new/moved/c.txt", None, False),
    ]
    await done(sandbox.commands.run("rm new/moved/b.txt", check=True))
    assert seen(await take(watch, 1)) == [("deleted", f"{HOME}/new/moved/b.txt", None, False)]
    assert seen(await rest(watch)) == []
    assert (watch.watch.status, watch.watch.end_reason) == ("ended", "deleted")
    assert (await done(sandbox.files.read("new/moved/c.txt"))) == b""  # event paths are what files.* take


async def test_a_folder_made_with_its_contents_before_it_is_watched_announces_them(sandbox: Any) -> None:
    watch = await done(sandbox.files.watch("."))
    await done(sandbox.commands.run("mkdir -p tree/a/b && touch tree/a/b/f && mv tree/a/b/f tree/a/b/g", check=True))
    await done(sandbox.commands.run("touch tree/a/b/last", check=True))
    # However fast the server was, the last file is announced once, and nothing is lost on the way.
    events = seen(await rest(watch))
    assert events[0] == ("created", f"{HOME}/tree", None, True)
    assert events.count(("created", f"{HOME}/tree/a/b/last", None, False)) == 1
    assert ("created", f"{HOME}/tree/a/b", None, True) in events


async def test_a_move_out_of_the_watched_folder_is_a_delete_and_one_in_a_create(sandbox: Any) -> None:
    await done(sandbox.commands.run("mkdir -p in/sub out && touch in/leaving out/coming", check=True))
    watch = await done(sandbox.files.watch("in"))
    await done(sandbox.commands.run("mv in/leaving out/ && mv in/sub out/ && mv out/coming in/", check=True))
    await done(sandbox.commands.run("touch out/sub/unseen in/last", check=True))
    assert seen(await rest(watch)) == [
        ("deleted", f"{HOME}/in/leaving", None, False),
        ("deleted", f"{HOME}/in/sub", None, True),  # and no longer watched
        ("created", f"{HOME}/in/coming", None, False),
        ("created", f"{HOME}/in/last", None, False),
    ]


async def test_a_name_that_is_not_utf8_comes_with_replacement_characters(sandbox: Any) -> None:
    """A command may name a file with any bytes; its events (JSON, so UTF-8) show them as U+FFFD."""
    await done(sandbox.files.mkdir("latin1"))
    watch = await done(sandbox.files.watch("latin1"))
    make = "python3 -c \"open(b'latin1/caf\\xe9', 'w').close(); open('latin1/after', 'w').close()\""
    await done(sandbox.commands.run(make, check=True))
    assert seen(await rest(watch)) == [
        ("created", f"{HOME}/latin1/caf\ufffd", None, False),
        ("created", f"{HOME}/latin1/after", None, False),
    ]


async def test_recursive_false_does_not_see_nested_events(sandbox: Any) -> None:
    await done(sandbox.files.mkdir("old"))
    watch = await done(sandbox.files.watch(HOME, recursive=False))
    await done(sandbox.commands.run("mkdir sub && touch sub/inner old/inner && printf x > top.txt", check=True))
    assert seen(await rest(watch)) == [
        ("created", f"{HOME}/sub", None, True),
        ("created", f"{HOME}/top.txt", None, False),
        ("modified", f"{HOME}/top.txt", None, False),
    ]


async def test_a_symlink_to_a_host_folder_is_never_watched_through(sandbox: Any, tmp_path: Path) -> None:
    host = Path(tempfile.mkdtemp(dir=tmp_path))
    os.chmod(tmp_path, 0o755)
    os.chmod(host, 0o777)  # were it watched, the sandbox's user could write there too
    await done(sandbox.commands.run(f"ln -s {host} link && mkdir inside && ln -s inside alias", check=True))
    with pytest.raises(CrowNestApiError) as refused:
        await done(sandbox.files.watch("link"))  # an absolute target is never followed
    assert refused.value.code == "invalid_path"
    watch = await done(sandbox.files.watch("."))
    (host / "host.txt").write_text("host")  # on the host, through the link's target
    await done(sandbox.commands.run("touch link/through.txt alias/via-alias.txt marker", check=False))
    events = seen(await rest(watch))
    assert not any("host" in path or "through" in path for _, path, _, _ in events)
    assert ("created", f"{HOME}/inside/via-alias.txt", None, False) in events  # by its real folder, once
    assert not any("alias/" in path for _, path, _, _ in events)
    assert events[-1] == ("created", f"{HOME}/marker", None, False)


async def test_the_watch_stops_when_the_sandbox_is_killed(server: LocalServer, client: Any) -> None:
    sandbox = await done(client.sandboxes.create(template="base"))
    watch = await done(sandbox.files.watch("/tmp"))
    await done(sandbox.files.write("/tmp/a", b"1"))
    assert seen(await take(watch, 1))[0][0] == "created"
    assert kernel_watches(server, watch) == 1
    await done(sandbox.kill())
    await take(watch, 1_000_000)  # the iteration ends by itself
    assert kernel_watches(server, watch) == 0
    assert (watch.watch.status, watch.watch.end_reason) == ("ended", "sandbox_ended")
    assert watch.watch.ended_at is not None
    with pytest.raises(ConflictError) as ended:
        await done(sandbox.files.watch("/tmp"))
    assert ended.value.code == "sandbox_not_running"
    await done(watch.close())  # deleting an ended watch is no error


async def test_folders_past_the_cap_are_not_watched_and_say_so(
    server: LocalServer, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watches, "MAX_FOLDERS_PER_WATCH", 2)
    watch = await done(sandbox.files.watch("."))  # its own folder is the first of the two
    await done(sandbox.files.mkdir("a"))
    assert seen(await take(watch, 1)) == [("created", f"{HOME}/a", None, True)]
    await done(sandbox.files.mkdir("b"))
    assert seen(await take(watch, 2)) == [
        ("created", f"{HOME}/b", None, True),
        ("overflow", f"{HOME}/b", None, True),  # over the cap: not watched, and the watch says so
    ]
    await done(sandbox.commands.run("touch a/in-a b/in-b", check=True))
    assert seen(await rest(watch)) == [("created", f"{HOME}/a/in-a", None, False)]
    assert kernel_watches(server, watch) == 0


async def test_a_reader_asking_for_events_no_longer_kept_gets_one_overflow_first(
    sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watches, "MAX_KEPT_EVENTS", 3)
    watch = await done(sandbox.files.watch("/tmp"))
    await done(sandbox.commands.run("touch /tmp/1 /tmp/2 /tmp/3 /tmp/4 /tmp/5", check=True))
    assert seen(await rest(watch)) == [
        ("overflow", "/tmp", None, True),  # events 1 and 2 are gone
        *[("created", f"/tmp/{n}", None, False) for n in (3, 4, 5)],
    ]
    assert watch.last_event_id == "5"


async def test_kept_events_are_capped_in_bytes_too(sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    one = len(json.dumps(FileEvent(FileEventType.CREATED, "/tmp/1", None, False).to_dict()))
    monkeypatch.setattr(watches, "MAX_KEPT_BYTES", 2 * one)  # two events' worth
    watch = await done(sandbox.files.watch("/tmp"))
    await done(sandbox.commands.run("touch /tmp/1 /tmp/2 /tmp/3 /tmp/4", check=True))
    assert seen(await rest(watch)) == [
        ("overflow", "/tmp", None, True),
        ("created", "/tmp/3", None, False),
        ("created", "/tmp/4", None, False),
    ]


async def test_watches_are_capped_per_sandbox_and_closing_one_frees_its_place(sandbox: Any) -> None:
    watches = [await done(sandbox.files.watch(".")) for _ in range(MAX_WATCHES_PER_SANDBOX)]
    with pytest.raises(ConflictError) as full:
        await done(sandbox.files.watch("."))
    assert (full.value.code, full.value.details["limit"]) == ("too_many_watches", MAX_WATCHES_PER_SANDBOX)
    await done(watches.pop().close())
    watches.append(await done(sandbox.files.watch(".")))
    for watch in watches:
        await done(watch.close())


async def test_bad_watches_are_refused_with_the_file_codes(sandbox: Any, client: Any) -> None:
    await done(sandbox.files.write("file.txt", b"x"))
    with pytest.raises(ConflictError) as not_a_folder:
        await done(sandbox.files.watch("file.txt"))
    assert not_a_folder.value.code == "not_a_directory"
    with pytest.raises(NotFoundError) as missing:
        await done(sandbox.files.watch("missing"))
    assert missing.value.code == "file_not_found"
    with pytest.raises(NotFoundError) as unknown:
        await done(client.files.unwatch(sandbox.id, "wch_0"))
    assert unknown.value.code == "watch_not_found"
    watch = await done(sandbox.files.watch("."))
    for bad in ("x", "1"):  # not a number; a number the watch has not reached
        with pytest.raises(CrowNestApiError) as unsent:
            await take_first(watch.events(last_event_id=bad))
        assert (unsent.value.status, unsent.value.code) == (400, "invalid_request")
    await done(watch.close())


async def test_the_handle_is_a_context_manager_that_stops_the_watch(client: Any) -> None:
    sandbox = await done(client.sandboxes.create(template="base"))
    try:
        if isinstance(client, AsyncCrowNest):
            async with await sandbox.files.watch("/tmp") as watch:
                await sandbox.files.mkdir("/tmp/x")
                first = await anext(watch)
            rest_events = [event async for event in watch.events(last_event_id=watch.last_event_id)]
        else:
            with sandbox.files.watch("/tmp") as watch:
                sandbox.files.mkdir("/tmp/x")
                first = next(watch)
            rest_events = list(watch.events(last_event_id=watch.last_event_id))
        assert (first.type_, first.path, watch.last_event_id) == ("created", "/tmp/x", "1")
        assert rest_events == []  # closed: the stream after it holds nothing more, and ends
    finally:
        await done(sandbox.kill())


async def test_closing_the_handle_from_elsewhere_ends_a_loop_over_it(client: Any) -> None:
    sandbox = await done(client.sandboxes.create(template="base"))
    watch = await done(sandbox.files.watch("/tmp"))
    got: list[FileEvent] = []
    first = threading.Event()

    def loop() -> None:
        for event in watch:
            got.append(event)
            first.set()

    async def aloop() -> None:
        async for event in watch:
            got.append(event)
            first.set()

    reader = asyncio.ensure_future(aloop() if isinstance(watch, AsyncWatchHandle) else asyncio.to_thread(loop))
    await done(sandbox.files.mkdir("/tmp/x"))
    assert await asyncio.to_thread(first.wait, GUARD_S)
    await done(watch.close())
    await asyncio.wait_for(reader, GUARD_S)  # the loop ended by itself
    assert seen(got) == [("created", "/tmp/x", None, True)]
    assert (watch.watch.status, watch.watch.end_reason) == ("ended", "deleted")
    await done(sandbox.kill())


# Resuming


CUT = 700  # bytes per connection: a few events each


@pytest.fixture(scope="module")
def cutting_server() -> Iterator[LocalServer]:
    with LocalServer(cut_streams=CUT) as running:
        yield running


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_events_are_exact_across_broken_connections(cutting_server: LocalServer, mode: str) -> None:
    names = [f"f{i:03d}" for i in range(60)]
    expected = [("created", f"/tmp/w/{name}", None, False) for name in names]
    before = cutting_server.stats.get("streamWatchEvents", 0)
    if mode == "sync":
        with cutting_server.client() as client, client.sandboxes.create(template="base") as sandbox:
            sandbox.files.mkdir("/tmp/w")
            watch = sandbox.files.watch("/tmp/w")
            sandbox.commands.run("cd /tmp/w && touch " + " ".join(names), check=True)
            events = await rest(watch)
            again = list(watch.events(last_event_id="10"))
            last_event_id = watch.last_event_id
    else:
        async with cutting_server.async_client() as aclient:
            asandbox = await aclient.sandboxes.create(template="base")
            async with asandbox:
                await asandbox.files.mkdir("/tmp/w")
                awatch = await asandbox.files.watch("/tmp/w")
                await asandbox.commands.run("cd /tmp/w && touch " + " ".join(names), check=True)
                events = await rest(awatch)
                again = [event async for event in awatch.events(last_event_id="10")]
                last_event_id = awatch.last_event_id
    assert seen(events) == expected  # each event once, in order, although every connection broke
    assert last_event_id == str(len(names))
    assert seen(again) == expected[10:]
    assert cutting_server.stats["streamWatchEvents"] - before >= len(names) * 90 // CUT  # it did reconnect
