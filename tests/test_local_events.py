"""CrowNest Local's command event stream, driven in-process where an HTTP test cannot order events."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from crownest_local._commands import LiveCommand, OutputLog
from crownest_local._service import Config, Service


class OpenRequest:
    """A request whose client never disconnects."""

    async def is_disconnected(self) -> bool:
        return False


async def test_a_command_that_ends_while_its_last_output_is_written_ends_the_stream(tmp_path: Path) -> None:
    """The command's end is signalled while the stream is writing its last output event, not waiting:
    the stream must still send `exit` at once (it waited for the next change, 10 s later)."""
    service = Service(Config(data_dir=tmp_path, api_key=secrets.token_hex(8), isolation="none"))
    body: dict[str, Any] = {"id": "cmd_0000000000000001", "status": "running"}
    live = LiveCommand(body, OutputLog(tmp_path / "commands" / "cmd.log"))
    service.live[body["id"]] = live
    service.store.insert("command", {**body, "status": "succeeded"})
    events = service._events(body["id"], 0, OpenRequest())  # type: ignore[arg-type]

    live.log.append("stdout", b"ok")
    assert b"event: output" in await events.__anext__()
    del service.live[body["id"]]  # the command ends while the stream is writing that event
    live.finished.set()
    live.notify()
    last = await asyncio.wait_for(events.__anext__(), timeout=5)  # far below the 10 s of the lost wait
    assert b"event: exit" in last
    live.log.close()
    service.store.close()
