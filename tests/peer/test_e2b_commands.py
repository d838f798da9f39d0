"""E2B's command tests (packages/python-sdk/tests/sync/sandbox_sync/commands/), on crownest.

E2B's `commands.run(cmd, background=True)` is `commands.start(cmd)`; a process's `pid` is a command's
`id`; `envs=` is `env=`; `timeout=` seconds is `timeout_ms=`; iterating a handle is iterating
`handle.output()`; `close_stdin()` is `send_stdin("", eof=True)`. A command that exits non-zero or
runs out of time is a result (`status`, `exit_code`), not an exception as in E2B (`check=True`
raises `CommandFailedError` instead).
"""

from __future__ import annotations

import pytest

from crownest import NotFoundError, SandboxHandle

from .conftest import SandboxFactory


def test_run(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_run.py::test_run"""
    text = "Hello, World!"
    result = sandbox.commands.run(f'echo "{text}"')
    assert result.exit_code == 0
    assert result.stdout == f"{text}\n"


def test_run_with_special_characters(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_run.py::test_run_with_special_characters"""
    text = "!@#$%^&*()_+"
    result = sandbox.commands.run(f'echo "{text}"')
    assert result.exit_code == 0
    assert result.stdout == f"{text}\n"


def test_run_with_broken_utf8(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_run.py::test_run_with_broken_utf8

    `/bin/sh`'s printf takes octal escapes (E2B's shell is bash, which also takes `\\xe2`)."""
    result = sandbox.commands.run(f'printf "{"a" * 8191}\\342"')
    assert result.exit_code == 0
    assert result.stdout == "a" * 8191 + "\ufffd"


def test_run_with_multiline_string(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_run.py::test_run_with_multiline_string"""
    text = "Hello,\nWorld!"
    result = sandbox.commands.run(f'echo "{text}"')
    assert result.exit_code == 0
    assert result.stdout == f"{text}\n"


def test_run_with_timeout(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_run.py::test_run_with_timeout"""
    assert sandbox.commands.run('echo "Hello, World!"', timeout_ms=10_000).exit_code == 0


def test_run_with_too_short_timeout(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_run.py::test_run_with_too_short_timeout

    E2B raises TimeoutException; crownest answers with the command `timed_out` (its tree killed)."""
    assert sandbox.commands.run("sleep 10", timeout_ms=1000).status == "timed_out"


def test_run_with_too_short_timeout_iterating(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_run.py::test_run_with_too_short_timeout_iterating"""
    command = sandbox.commands.start("sleep 10", timeout_ms=1000)
    with command.output() as chunks:
        assert list(chunks) == []
    assert command.status == "timed_out"


def test_kill_sandbox_while_command_is_running(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_sandbox_killed_during_run.py::test_kill_sandbox_while_command_is_running

    E2B's wait raises TimeoutException saying the sandbox was killed; crownest's wait returns the
    command, `killed` with the sandbox (an ended sandbox's records stay readable)."""
    command = sandbox.commands.start("sleep 60")
    sandbox.kill()
    assert command.wait().status == "killed"


def test_connect_to_process(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_cmd_connect.py::test_connect_to_process"""
    command = sandbox.commands.start("sleep 10")
    assert sandbox.commands.get(command.id).id == command.id


def test_connect_to_non_existing_process(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_cmd_connect.py::test_connect_to_non_existing_process"""
    with pytest.raises(NotFoundError):
        sandbox.commands.get("cmd_0000000000000000")


def test_kill_process(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_cmd_kill.py::test_kill_process

    E2B then checks `kill -0 <pid>` fails in another command; in CrowNest Local each command has
    its own PID namespace, so the check is that the command is killed and no longer running."""
    command = sandbox.commands.start("sleep 10")
    command.kill()
    assert command.status == "killed"
    assert command.id not in [c.id for c in sandbox.commands.list(status="running")]


def test_kill_non_existing_process(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_cmd_kill.py::test_kill_non_existing_process

    E2B's kill returns False for an unknown PID; crownest raises NotFoundError."""
    with pytest.raises(NotFoundError) as raised:
        sandbox.commands.kill("cmd_0000000000000000")
    assert raised.value.code == "command_not_found"


def test_list_processes(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_cmd_list.py::test_kill_process (it lists)"""
    first = sandbox.commands.start("sleep 10")
    second = sandbox.commands.start("sleep 10")
    running = [c.id for c in sandbox.commands.list(status="running")]
    assert first.id in running and second.id in running


def test_command_envs(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_env_vars.py::test_command_envs"""
    assert sandbox.commands.run("echo $FOO", env={"FOO": "bar"}).stdout.strip() == "bar"


def test_sandbox_envs(sandbox_factory: SandboxFactory) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_env_vars.py::test_sandbox_envs"""
    sandbox = sandbox_factory(env={"FOO": "bar"})
    assert sandbox.commands.run("echo $FOO").stdout.strip() == "bar"


def test_bash_command_scoped_env_vars(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_env_vars.py::test_bash_command_scoped_env_vars

    Without E2B's `sudo` (the `base` template has none): the next command does not see the variable."""
    result = sandbox.commands.run("echo $FOO", env={"FOO": "bar"})
    assert (result.exit_code, result.stdout.strip()) == (0, "bar")
    after = sandbox.commands.run('echo "$FOO"')
    assert (after.exit_code, after.stdout.strip()) == (0, "")


def test_python_command_scoped_env_vars(sandbox_factory: SandboxFactory) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_env_vars.py::test_python_command_scoped_env_vars"""
    sandbox = sandbox_factory(template="python")
    result = sandbox.commands.run("python3 -c \"import os; print(os.environ['FOO'])\"", env={"FOO": "bar"})
    assert (result.exit_code, result.stdout.strip()) == (0, "bar")


def first_stdout(sandbox: SandboxHandle, command_id: str) -> str:
    """The first stdout chunk of a command's output, as E2B's `for stdout, _, _ in cmd: ... break`."""
    with sandbox.commands.get(command_id).output() as chunks:
        return next(chunk.data for chunk in chunks if chunk.stream == "stdout")


@pytest.mark.parametrize(
    ("test", "text"),
    [
        ("test_send_stdin_to_process", "Hello, World!"),
        ("test_send_special_characters_to_process", "!@#$%^&*()_+"),
        ("test_send_multiline_string_to_process", "Hello,\nWorld!"),
    ],
)
def test_send_stdin(sandbox: SandboxHandle, test: str, text: str) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_send_stdin.py::test_send_stdin_to_process,
    ::test_send_special_characters_to_process and ::test_send_multiline_string_to_process"""
    command = sandbox.commands.start("cat")
    sandbox.commands.send_stdin(command.id, text)
    assert first_stdout(sandbox, command.id) == text
    command.kill()


def test_send_stdin_via_command_handle(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_send_stdin.py::test_send_stdin_via_command_handle"""
    command = sandbox.commands.start("cat")
    command.send_stdin("Hello, World!")
    assert first_stdout(sandbox, command.id) == "Hello, World!"
    command.kill()


def test_close_stdin_via_command_handle(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/commands/test_send_stdin.py::test_close_stdin_via_command_handle"""
    command = sandbox.commands.start("cat")
    command.send_stdin("Hello, World!")
    command.send_stdin("", eof=True)
    result = command.wait()
    assert (result.exit_code, result.stdout) == (0, "Hello, World!")


def test_decodes_multibyte_characters_split_across_chunks(sandbox: SandboxHandle) -> None:
    """packages/js-sdk/tests/sandbox/commands/commandHandle.test.ts::'decodes multibyte characters split across chunks'

    E2B's test feeds a mock stream; here a real command writes the bytes of "€" in two writes."""
    command = sandbox.commands.start("printf '\\342'; sleep 0.2; printf '\\202\\254'")
    with command.output() as chunks:
        assert "".join(chunk.data for chunk in chunks) == "€"
    assert command.stdout == "€"


def test_replaces_incomplete_trailing_utf8_sequences_at_the_end_of_the_stream(sandbox: SandboxHandle) -> None:
    """packages/js-sdk/tests/sandbox/commands/commandHandle.test.ts::'replaces incomplete trailing utf-8 sequences at the end of the stream'"""
    command = sandbox.commands.start("printf 'ok\\342\\202'")
    with command.output() as chunks:
        assert "".join(chunk.data for chunk in chunks) == "ok\ufffd"
