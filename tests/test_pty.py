"""Interactive terminals (issue 17): `sandbox.pty`, the PtyHandle, sync and async, against CrowNest Local.

Each program runs on a real pseudo-terminal in the sandbox, in both isolation modes: `tty`
names its device, `stty size` and `SIGWINCH` follow `resize`, a password prompt (which
reads the controlling terminal with echo off) is answered through `send`, and the output
comes back byte for byte across broken connections.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
import respx

import payloads
from crownest import AsyncCrowNest, CrowNest, CrowNestApiError, ResponseValidationError
from crownest._handle import AsyncPtyHandle, PtyHandle, SandboxHandle
from crownest_local import LocalServer

# Prints "ready", then the terminal's size on every SIGWINCH, until it reads a line.
WINCH = (
    'python3 -c "import os, signal, sys\n'
    "signal.signal(signal.SIGWINCH, lambda *_: print('winch %dx%d' % tuple(os.get_terminal_size()), flush=True))\n"
    "print('ready', flush=True)\n"
    'sys.stdin.readline()"'
)
PASSWORD = (
    'python3 -c "import getpass\n'
    "secret = getpass.getpass('Password: ')\n"
    "print('welcome' if secret == 'hunter2' else 'denied')\""
)
# Raw mode (no \n -> \r\n, no echo), then 1 MiB of every byte value: the terminal's output is exactly these bytes.
BINARY = 'stty raw -echo; python3 -c "import sys\nsys.stdout.buffer.write(bytes(range(256)) * 4096)"'
EXPECTED_BINARY = bytes(range(256)) * 4096
CUT = 200_000  # bytes per connection of the cutting server: the 1 MiB (1.4 MB in base64) takes 7 or more


@pytest.fixture
def sandbox(each_isolation: LocalServer) -> Iterator[SandboxHandle]:
    with each_isolation.client(max_retries=0) as client:
        handle = client.sandboxes.create(template="python")
        try:
            yield handle
        finally:
            handle.kill()


@pytest.fixture
async def local_async(each_isolation: LocalServer) -> AsyncIterator[AsyncCrowNest]:
    async with each_isolation.async_client(max_retries=0) as client:
        yield client


def read_until(chunks: Iterator[bytes], marker: bytes, seen: bytearray) -> bytes:
    """Read `chunks` into `seen` until `marker` is in it; everything seen so far."""
    while marker not in seen:
        seen += next(chunks)
    return bytes(seen)


async def aread_until(chunks: AsyncIterator[bytes], marker: bytes, seen: bytearray) -> bytes:
    while marker not in seen:
        seen += await chunks.__anext__()
    return bytes(seen)


# A real terminal


def test_the_program_sees_a_terminal_of_the_given_size(sandbox: SandboxHandle) -> None:
    pty = sandbox.pty.create(
        cols=100, rows=30, command="tty; stty size; python3 -c 'import sys; print(sys.stdin.isatty())'"
    )
    assert isinstance(pty, PtyHandle) and (pty.status, pty.cols, pty.rows) == ("running", 100, 30)
    assert pty.id.startswith("pty_") and pty.sandbox_id == sandbox.id
    output = b"".join(pty.output())
    assert output == b"/dev/pts/0\r\n30 100\r\nTrue\r\n"  # a device of the sandbox's own /dev/pts
    assert (pty.status, pty.exit_code) == ("succeeded", 0) and pty.finished_at is not None


async def test_the_program_sees_a_terminal_async(local_async: AsyncCrowNest) -> None:
    sandbox = await local_async.sandboxes.create(template="python")
    try:
        pty = await sandbox.pty.create(command="tty; stty size; [ -t 0 ] && [ -t 1 ] && echo both")
        assert isinstance(pty, AsyncPtyHandle)
        output = b"".join([chunk async for chunk in pty.output()])
        assert output == b"/dev/pts/0\r\n24 80\r\nboth\r\n"
        assert pty.status == "succeeded"
    finally:
        await sandbox.kill()


def test_the_default_program_is_an_interactive_login_shell(sandbox: SandboxHandle) -> None:
    shell = sandbox.pty.create()
    assert shell.command.endswith("sh -l")
    shell.send("echo $((6 * 7)) $-\r")
    with shell.output() as chunks:
        seen = read_until(chunks, b"42 ", bytearray())
    shell.send("exit 5\r")
    assert shell.wait().exit_code == 5
    assert b"i" in seen.split(b"42 ")[-1].split(b"\r")[0]  # `$-` has `i`: bash knows it is interactive


def test_resize_reaches_the_program_as_sigwinch_with_the_new_size(sandbox: SandboxHandle) -> None:
    pty = sandbox.pty.create(command=WINCH)
    seen = bytearray()
    with pty.output() as chunks:
        read_until(chunks, b"ready", seen)
        pty.resize(132, 43)
        assert (pty.cols, pty.rows) == (132, 43)
        read_until(chunks, b"winch 132x43", seen)
        pty.send("\r")
        rest = b"".join(chunks)
    assert pty.status == "succeeded" and rest.endswith(b"\r\n")


async def test_resize_reaches_the_program_async(local_async: AsyncCrowNest) -> None:
    sandbox = await local_async.sandboxes.create(template="python")
    try:
        pty = await sandbox.pty.create(command="read -r line; stty size")
        await pty.resize(90, 20)
        await pty.send("\r")  # after the resize: `stty size` reads it once the line is in
        output = b"".join([chunk async for chunk in pty.output()])
        assert output.endswith(b"20 90\r\n") and (pty.cols, pty.rows) == (90, 20)
    finally:
        await sandbox.kill()


def test_a_password_prompt_is_answered_through_send_without_echo(sandbox: SandboxHandle) -> None:
    pty = sandbox.pty.create(command=PASSWORD)
    seen = bytearray()
    with pty.output() as chunks:
        read_until(chunks, b"Password: ", seen)
        pty.send("hunter2\r")
        seen += b"".join(chunks)
    assert seen.endswith(b"welcome\r\n") and b"hunter2" not in seen  # getpass turned the echo off
    assert pty.status == "succeeded"


async def test_a_password_prompt_is_answered_async(local_async: AsyncCrowNest) -> None:
    sandbox = await local_async.sandboxes.create(template="python")
    try:
        pty = await sandbox.pty.create(command=PASSWORD)
        seen = bytearray()
        async with pty.output() as chunks:
            await aread_until(chunks, b"Password: ", seen)
            await pty.send(b"hunter2\r")
            seen += b"".join([chunk async for chunk in chunks])
        assert seen.endswith(b"welcome\r\n") and b"hunter2" not in seen
    finally:
        await sandbox.kill()


def test_ctrl_c_interrupts_the_foreground_program(sandbox: SandboxHandle) -> None:
    pty = sandbox.pty.create(command="echo go; sleep 30")
    with pty.output() as chunks:
        read_until(chunks, b"go", bytearray())
        pty.send(b"\x03")  # the terminal turns it into SIGINT for its foreground process group
        b"".join(chunks)
    assert (pty.status, pty.exit_code) == ("failed", 130)


# Output across broken connections


@pytest.fixture(scope="module")
def cutting_server() -> Iterator[LocalServer]:
    with LocalServer(cut_streams=CUT) as server:
        yield server


def test_output_resumes_byte_exact_across_broken_connections(cutting_server: LocalServer) -> None:
    before = cutting_server.stats.get("streamPtyEvents", 0)
    with cutting_server.client() as client:
        sandbox = client.sandboxes.create(template="python")
        pty = sandbox.pty.create(command=BINARY)
        with pty.output() as chunks:
            output = b"".join(chunks)
        sandbox.kill()
    assert hashlib.sha256(output).digest() == hashlib.sha256(EXPECTED_BINARY).digest() and pty.status == "succeeded"
    assert cutting_server.stats["streamPtyEvents"] - before >= 7  # it did reconnect, each time after the last byte


async def test_output_resumes_byte_exact_async(cutting_server: LocalServer) -> None:
    before = cutting_server.stats.get("streamPtyEvents", 0)
    async with cutting_server.async_client() as client:
        sandbox = await client.sandboxes.create(template="python")
        pty = await sandbox.pty.create(command=BINARY)
        async with pty.output() as chunks:
            output = b"".join([chunk async for chunk in chunks])
        await sandbox.kill()
    assert output == EXPECTED_BINARY and pty.status == "succeeded"
    assert cutting_server.stats["streamPtyEvents"] - before >= 7


def test_output_resumes_after_a_given_event_id(sandbox: SandboxHandle) -> None:
    pty = sandbox.pty.create(command="stty raw; printf 'abcdef'")
    assert b"".join(pty.output()) == b"abcdef"
    assert b"".join(pty.output(last_event_id="2")) == b"cdef"  # an id is the byte offset after its event


# The same isolation as a command

ISOLATION_FACTS = (
    "id -u; id -g; hostname; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status; readlink /proc/self/ns/net"
)


def test_a_terminal_runs_under_the_same_isolation_as_a_command(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        as_command = sandbox.commands.run(ISOLATION_FACTS).stdout
        pty = sandbox.pty.create(command=ISOLATION_FACTS)
        as_terminal = b"".join(pty.output()).decode().replace("\r\n", "\n")
        sandbox.kill()
    assert as_terminal == as_command
    assert "Seccomp:\t2" in as_terminal and "CapEff:\t0000000000000000" in as_terminal
    assert as_terminal.split()[0] != "0"  # not root


def test_terminals_count_against_the_commands_at_once_and_end_with_the_sandbox(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        commands = [sandbox.commands.start("sleep 60") for _ in range(31)]
        pty = sandbox.pty.create(command="sleep 60")
        with pytest.raises(CrowNestApiError) as caught:
            sandbox.pty.create()
        assert (caught.value.status, caught.value.code) == (409, "too_many_commands")
        with pytest.raises(CrowNestApiError) as also:
            sandbox.commands.start("true")
        assert also.value.code == "too_many_commands"
        commands[0].kill(signal="SIGKILL")
        sandbox.kill()
        assert pty.wait().status == "killed"  # answered at once: the terminal ended with its sandbox
        with pytest.raises(CrowNestApiError) as ended:
            pty.send("x")
        assert (ended.value.status, ended.value.code) == (409, "sandbox_not_running")


# Errors


def test_errors_are_clear(sandbox: SandboxHandle) -> None:
    with pytest.raises(CrowNestApiError) as unknown:
        sandbox.pty.resize("pty_0000", 80, 24)
    assert (unknown.value.status, unknown.value.code) == (404, "pty_not_found")
    pty = sandbox.pty.create(command="true")
    pty.wait()
    with pytest.raises(CrowNestApiError) as ended:
        pty.send("x")
    assert (ended.value.status, ended.value.code) == (409, "pty_not_running")
    with pytest.raises(CrowNestApiError) as bad:
        sandbox.pty.create(cols=0)
    assert (bad.value.status, bad.value.code) == (400, "invalid_request")
    with pytest.raises(CrowNestApiError) as nowhere:
        sandbox.pty.create(cwd="/etc")
    assert (nowhere.value.status, nowhere.value.code) == (400, "invalid_path")


def test_bad_base64_input_is_a_400(sandbox: SandboxHandle) -> None:
    pty = sandbox.pty.create(command="sleep 30")
    with pytest.raises(CrowNestApiError) as bad:
        sandbox.pty.send(pty.id, "***", encoding="base64")
    assert (bad.value.status, bad.value.code) == (400, "invalid_request")
    pty.kill()
    assert pty.status == "killed"


def test_a_bad_output_event_is_a_validation_error_not_a_crash(api: respx.MockRouter, client: CrowNest) -> None:
    api.post("/v1/sandboxes/sbx_1/pty").respond(202, json=payloads.pty())
    events = 'id: 3\nevent: output\ndata: {"data": "not base64!"}\n\n'
    api.get("/v1/sandboxes/sbx_1/pty/pty_1/events").respond(
        200, text=events, headers={"content-type": "text/event-stream"}
    )
    pty = client.pty.create("sbx_1")
    with pytest.raises(ResponseValidationError, match="'output' event"):
        list(pty.output())


def test_input_the_program_never_reads_is_dropped_when_it_is_killed(sandbox: SandboxHandle) -> None:
    """A raw terminal takes a few KiB that nobody reads, then `send` waits for room; a kill ends the wait."""
    pty = sandbox.pty.create(command="stty raw; echo ready; sleep 60")
    sent: list[BaseException | None] = []

    def send() -> None:
        try:
            pty.send(b"x" * 300_000)
            sent.append(None)
        except BaseException as exc:  # the assertion shows it
            sent.append(exc)

    sender = threading.Thread(target=send)
    with pty.output() as chunks:
        seen = bytearray()
        read_until(chunks, b"ready", seen)
        sender.start()
        read_until(chunks, b"xxx", seen)  # the terminal's echo: the input is arriving, and stays unread
    pty.kill()
    sender.join(60)  # a guard against a hang: it returns as soon as the terminal closes
    assert sent == [None] and pty.status == "killed"


def test_a_paused_sandbox_holds_its_terminals_and_resume_gives_them_back(crownest_local: LocalServer) -> None:
    with crownest_local.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        pty = sandbox.pty.create(command="read -r line; echo got $line")
        sandbox.pause()
        with pytest.raises(CrowNestApiError) as paused:
            pty.send("early\r")
        assert (paused.value.status, paused.value.code) == (409, "sandbox_paused")
        sandbox.resume()
        pty.send("late\r")
        assert b"".join(pty.output()).endswith(b"got late\r\n") and pty.status == "succeeded"
        sandbox.kill()


def test_a_create_replayed_with_its_idempotency_key_opens_one_terminal(sandbox: SandboxHandle) -> None:
    first = sandbox.pty.create(command="sleep 30", idempotency_key="one-terminal")
    again = sandbox.pty.create(command="sleep 30", idempotency_key="one-terminal")
    assert again.id == first.id
    first.kill()
