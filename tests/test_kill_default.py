"""The default signal of `kill` is named once, in the spec, and the server and SDK agree with it."""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path

import pytest

from crownest._handle import AsyncCommandHandle, CommandHandle
from crownest_local import LocalServer

SPEC = json.loads((Path(__file__).parent.parent / "src/crownest/_generated/openapi.json").read_text())


def test_the_spec_names_the_default_and_the_handles_say_the_same() -> None:
    described = SPEC["paths"]["/v1/sandboxes/{sandboxId}/commands/{commandId}/kill"]["post"]["description"]
    assert "default `SIGTERM`" in described
    for handle in (CommandHandle, AsyncCommandHandle):
        doc = inspect.getdoc(handle.kill) or ""
        assert "default is `SIGTERM`" in doc and "SIGKILL" in doc


def test_local_sends_sigterm_when_no_signal_is_named() -> None:
    """Without bubblewrap the shell leads its process group, so its TERM trap runs when `kill()` sends
    SIGTERM (under bubblewrap, bwrap ends on SIGTERM and its PID namespace goes with it)."""
    with (
        pytest.warns(UserWarning, match="NO isolation"),
        LocalServer(isolation=False) as server,
        server.client() as client,
    ):
        sandbox = client.sandboxes.create(template="base")
        command = sandbox.commands.start("trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done")
        deadline = time.monotonic() + 10
        while "ready" not in command.stdout and time.monotonic() < deadline:
            time.sleep(0.05)
            command.refresh()
        command.kill()
        assert command.status == "killed"
        assert "got-term" in command.stdout
