"""The `pty` operations: interactive terminals, started, typed into, resized, streamed and killed.

A terminal is a command to the server (`LivePty` is a `LiveCommand`): it starts through
`Service.spawn_plan` under the sandbox's isolation and limits, counts against the
sandbox's commands at once, is held while its sandbox is paused and killed with it. Its
record (kind `pty`) and its output log live beside the commands', and go with them when
the sandbox's retention ends.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ._commands import OutputLog, event_stream
from ._errors import ApiProblem, not_found
from ._isolation import HOME, default_shell, sweep
from ._pty import LivePty, starter_program
from ._service import ALIVE, input_data, json_response, new_id, now
from ._spec import digits, invalid

if TYPE_CHECKING:
    from ._service import Call, Service

DEFAULT_COLS = 80
DEFAULT_ROWS = 24
KILL_GRACE_S = 2.0


def finished(body: dict[str, Any], status: str, exit_code: int | None, finished_at: str) -> dict[str, Any]:
    """A terminal's record once its program ended."""
    return {**body, "status": status, "exitCode": exit_code, "finishedAt": finished_at}


class Terminals:
    """The handlers of the `pty` tag, over the service's sandboxes."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def create_pty(self, call: Call) -> Response:
        service = self.service
        sandbox_id = call.path["sandboxId"]
        service.running_sandbox(sandbox_id)
        service.check_command_cap(sandbox_id)
        spec = call.body or {}
        folder = service.folder(sandbox_id)
        cwd = folder.cwd(spec.get("cwd", HOME))
        cols, rows = spec.get("cols", DEFAULT_COLS), spec.get("rows", DEFAULT_ROWS)
        shell = default_shell()
        program = [shell, "-c", spec["command"]] if "command" in spec else [shell, "-l"]
        pty_id = new_id("pty")
        body = {
            "id": pty_id,
            "sandboxId": sandbox_id,
            "command": spec.get("command", f"{shell} -l"),
            "cwd": cwd,
            "cols": cols,
            "rows": rows,
            "status": "running",
            "exitCode": None,
            "outputTruncated": False,
            "startedAt": now().isoformat(),
            "finishedAt": None,
        }
        live = LivePty(body, OutputLog(service.log_path(pty_id), raw=True))
        if service.isolation is None:
            live.sweep = lambda sig: sweep(pty_id, sig)
        ours, theirs = socket.socketpair()
        with ours, theirs:
            spawn, host_cwd, argv, env, fds = service.spawn_plan(
                sandbox_id, folder, starter_program(theirs.fileno(), cols, rows, program), cwd, pty_id
            )
            env.update({"TERM": "xterm-256color"} | service.store.extra(sandbox_id).get("env", {}))
            env.update(spec.get("env", {}))
            spawn["pass_fds"] = (*spawn.get("pass_fds", ()), theirs.fileno())
            cgroup = service.cgroups.get(sandbox_id)
            join = cgroup.preexec(None) if cgroup is not None else None
            try:
                await live.start_terminal(argv, host_cwd, env, join, **spawn)
            except OSError as exc:
                raise ApiProblem(500, "internal_error", f"The terminal could not start: {exc.strerror}.") from exc
            finally:
                theirs.close()
                for fd in fds:
                    os.close(fd)
                if join is not None:
                    join.close()
            try:
                await live.receive(ours)
            except OSError as exc:
                live.kill(signal.SIGKILL, "killed")
                assert live.process is not None
                await live.process.wait()
                raise ApiProblem(500, "internal_error", f"The terminal could not start: {exc}.") from exc
        service.store.insert("pty", live.body)
        service.terminals[pty_id] = live
        service.spawn(self._supervise(live))
        if service.sandbox(sandbox_id)["status"] not in ALIVE:
            live.kill(signal.SIGKILL, "killed")  # its sandbox ended while the terminal opened
        return json_response(live.snapshot(), 202)

    async def _supervise(self, live: LivePty) -> None:
        try:
            await live.run(None)
        finally:
            status, exit_code = (
                live.outcome() if live.process and live.process.returncode is not None else ("killed", None)
            )
            live.log.close()
            body = finished(live.snapshot(), status, exit_code, now().isoformat())
            self.service.store.update(body)
            del self.service.terminals[body["id"]]
            live.body = body
            live.finished.set()
            live.notify()

    def body(self, call: Call) -> dict[str, Any]:
        """A terminal's record (also after its sandbox ended, within the retention period)."""
        self.service.sandbox(call.path["sandboxId"])
        pty_id = call.path["ptyId"]
        live = self.service.terminals.get(pty_id)
        body = live.snapshot() if live is not None else self.service.store.get("pty", pty_id)
        if body is None or body["sandboxId"] != call.path["sandboxId"]:
            raise not_found("pty", "ptyId", pty_id)
        return body

    def _live(self, call: Call) -> LivePty:
        self.service.running_sandbox(call.path["sandboxId"])
        body = self.body(call)
        live = self.service.terminals.get(body["id"])
        if live is None:
            raise ApiProblem(
                409,
                "pty_not_running",
                f"Terminal {body['id']} has ended ({body['status']}).",
                {"ptyId": body["id"], "status": body["status"]},
            )
        return live

    async def send_pty_input(self, call: Call) -> None:
        await self._live(call).write_stdin(input_data(call.body), eof=False)

    async def resize_pty(self, call: Call) -> dict[str, Any]:
        live = self._live(call)
        live.resize(call.body["cols"], call.body["rows"])
        self.service.store.update(live.body)
        return live.snapshot()

    async def wait_pty(self, call: Call) -> dict[str, Any]:
        body = self.body(call)
        live = self.service.terminals.get(body["id"])
        if live is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.finished.wait(), call.query.get("timeoutMs", 60_000) / 1000)
        return self.body(call)

    async def kill_pty(self, call: Call) -> dict[str, Any]:
        live = self._live(call)
        live.kill(signal.Signals[(call.body or {}).get("signal", "SIGTERM")], "killed")
        try:
            await asyncio.wait_for(asyncio.shield(live.finished.wait()), KILL_GRACE_S)
        except TimeoutError:
            live.kill(signal.SIGKILL, "killed")
            await live.finished.wait()
        return live.body

    async def stream_pty_events(self, call: Call) -> Response:
        body = self.body(call)
        offset = digits(call.headers.get("last-event-id", "0").strip() or "0")
        if offset is None:
            invalid("Last-Event-ID", "is not an id this server sent")
        return StreamingResponse(
            self._events(call, body["id"], offset, call.request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    def _events(self, call: Call, pty_id: str, offset: int, request: Request) -> AsyncIterator[bytes]:
        return event_stream(
            offset,
            request,
            live=lambda: self.service.terminals.get(pty_id),
            stored_log=lambda: OutputLog(self.service.log_path(pty_id), raw=True),
            output=lambda _, data: {"data": base64.b64encode(data).decode()},
            final=lambda: self.body(call),
        )
