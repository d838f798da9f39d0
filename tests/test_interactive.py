"""Interactive sandboxes (issue 17): the shell commands run in, file checks and deep listings, previews.

Every test talks HTTP to CrowNest Local, sync and async, in both isolation modes where
the behaviour depends on how commands are spawned.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from conftest import free_port
from crownest import CrowNestApiError
from crownest._handle import SandboxHandle
from crownest_local import LocalServer

BASH_ONLY = 'names=(a b c); [[ ${#names[@]} == 3 ]] && echo "arrays ${names[1]}"; source /dev/null && echo sourced'


@pytest.fixture
def sandbox(each_isolation: LocalServer) -> Iterator[SandboxHandle]:
    with each_isolation.client(max_retries=0) as client:
        handle = client.sandboxes.create(template="python")
        try:
            yield handle
        finally:
            handle.kill()


def test_commands_run_under_bash_by_default(sandbox: SandboxHandle) -> None:
    result = sandbox.commands.run(BASH_ONLY)
    assert (result.exit_code, result.stdout) == (0, "arrays b\nsourced\n")
    assert sandbox.commands.run("echo $BASH_VERSION").stdout.strip()


def test_shell_overrides_bash(sandbox: SandboxHandle) -> None:
    posix = sandbox.commands.run("echo ${BASH_VERSION:-none}", shell="/bin/sh")
    assert posix.stdout == "none\n"
    started = sandbox.commands.start("read line; echo got $line", shell="/bin/sh")
    started.send_stdin("x\n", eof=True)
    assert started.wait().stdout == "got x\n"


def test_an_unknown_shell_is_a_clear_400(sandbox: SandboxHandle) -> None:
    with pytest.raises(CrowNestApiError) as caught:
        sandbox.commands.run("true", shell="/bin/no-such-shell")
    assert (caught.value.status, caught.value.code) == (400, "invalid_request")
    assert "/bin/no-such-shell" in str(caught.value)
    with pytest.raises(CrowNestApiError) as relative:
        sandbox.commands.run("true", shell="bash")
    assert (relative.value.status, relative.value.code) == (400, "invalid_request")


def test_exists(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        try:
            sandbox.files.write("dir/file.txt", "x")
            sandbox.commands.run("ln -s nowhere dangling && ln -s /etc out && mkfifo pipe")
            assert sandbox.files.exists("dir") and sandbox.files.exists("/home/user/dir/file.txt")
            assert sandbox.files.exists("dangling") and sandbox.files.exists("out")  # links count, as entries
            assert sandbox.files.exists("pipe")
            assert not sandbox.files.exists("missing") and not sandbox.files.exists("dir/file.txt/below")
            assert not sandbox.files.exists("missing/deeper")
            with pytest.raises(CrowNestApiError) as caught:
                sandbox.files.exists("out/passwd")  # through a link that leaves the sandbox
            assert (caught.value.status, caught.value.code) == (400, "invalid_path")
            with pytest.raises(CrowNestApiError) as above:
                sandbox.files.exists("../../etc/passwd")
            assert above.value.code == "invalid_path"
        finally:
            sandbox.kill()


def test_list_with_depth(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        try:
            sandbox.commands.run("mkdir -p p/a/b/c && touch p/z p/a/f p/a/b/g p/a/b/c/h && ln -s /etc p/etc")
            one = [e.path for e in sandbox.files.list("p")]
            assert one == ["/home/user/p/a", "/home/user/p/etc", "/home/user/p/z"]
            two = [e.path.removeprefix("/home/user/p/") for e in sandbox.files.list("p", depth=2)]
            assert two == ["a", "a/b", "a/f", "etc", "z"]  # the link to /etc is listed, not entered
            every = [e.path.removeprefix("/home/user/p/") for e in sandbox.files.list("p", depth=64)]
            assert every == ["a", "a/b", "a/b/c", "a/b/c/h", "a/b/g", "a/f", "etc", "z"]
            with pytest.raises(CrowNestApiError) as caught:
                sandbox.files.list("p", depth=0)
            assert (caught.value.status, caught.value.code) == (400, "invalid_request")
        finally:
            sandbox.kill()


def test_preview_waits_for_the_port(crownest_local: LocalServer) -> None:
    port = free_port()
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="python")
        try:
            server = sandbox.commands.start(f"sleep 0.3; exec python -m http.server {port} --bind 127.0.0.1")
            preview = sandbox.previews.create(port, visibility="public", wait_ms=30_000)
            assert httpx.get(preview.url, timeout=10).status_code == 200  # no retry loop: it listens already
            server.kill()
            with pytest.raises(CrowNestApiError) as caught:
                sandbox.previews.create(free_port(), wait_ms=200)
            assert (caught.value.status, caught.value.code) == (504, "port_not_listening")
            assert "within 200 ms" in str(caught.value)
            assert [p.id for p in sandbox.previews.list()] == [preview.id]  # the failed wait created nothing
        finally:
            sandbox.kill()


async def test_preview_visibility_change_is_a_409_that_says_how(crownest_local: LocalServer) -> None:
    port = free_port()
    async with crownest_local.async_client(max_retries=0) as client:
        sandbox = await client.sandboxes.create(template="base")
        try:
            public = await sandbox.previews.create(port, visibility="public")
            with pytest.raises(CrowNestApiError) as caught:
                await sandbox.previews.create(port, visibility="private")
            assert (caught.value.status, caught.value.code) == (409, "preview_exists")
            assert caught.value.details["previewId"] == public.id
            assert "delete that preview and create it again" in str(caught.value)
            await sandbox.previews.delete(public.id)
            private = await sandbox.previews.create(port, visibility="private")
            assert private.visibility == "private" and private.token
        finally:
            await sandbox.kill()


async def test_async_bash_exists_and_depth(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        sandbox = await client.sandboxes.create(template="base")
        try:
            result = await sandbox.commands.run(BASH_ONLY)
            assert result.stdout == "arrays b\nsourced\n"
            await sandbox.files.write("d/e/f.txt", "x")
            assert await sandbox.files.exists("d/e/f.txt") and not await sandbox.files.exists("d/nope")
            assert [e.name for e in await sandbox.files.list("d", depth=3)] == ["e", "f.txt"]
        finally:
            await sandbox.kill()


def test_send_stdin_takes_bytes(sandbox: SandboxHandle) -> None:
    raw = bytes(range(256))
    started = sandbox.commands.start("od -An -tx1 -v | tr -d ' \\n'")
    started.send_stdin(raw[:100])
    sandbox.commands.send_stdin(started.id, "text é")
    started.send_stdin(raw[100:], eof=True)
    assert started.wait().stdout == (raw[:100] + "text é".encode() + raw[100:]).hex()


async def test_send_stdin_takes_bytes_async(crownest_local: LocalServer) -> None:
    async with crownest_local.async_client(max_retries=0) as client:
        sandbox = await client.sandboxes.create(template="base")
        try:
            started = await sandbox.commands.start("od -An -tx1 -v | tr -d ' \\n'")
            await started.send_stdin(b"\x00\xff")
            await client.commands.send_stdin(sandbox.id, started.id, b"\x80", eof=True)
            assert (await started.wait()).stdout == "00ff80"
            with pytest.raises(TypeError, match="data must be str or bytes"):
                await sandbox.commands.send_stdin(started.id, 3)  # type: ignore[arg-type]
        finally:
            await sandbox.kill()


def test_send_stdin_refuses_bad_base64(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        try:
            started = sandbox.commands.start("cat")
            with pytest.raises(CrowNestApiError) as caught:
                sandbox.commands.send_stdin(started.id, "not base64!", encoding="base64")
            assert (caught.value.status, caught.value.code) == (400, "invalid_request")
            started.send_stdin("still open", eof=True)
            assert started.wait().stdout == "still open"
        finally:
            sandbox.kill()
