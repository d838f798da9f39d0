"""CrowNest Local's state and its operations on templates, sandboxes, commands and previews.

Each handler takes a `Call` (the validated request) and returns the answer's
body as a wire-form dict (built with the generated models), `None` for 204,
or a Starlette `Response`. Files and artifacts are in `_files.py`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import json
import logging
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from crownest._models import set_field
from crownest.models import (
    Command,
    CommandStatus,
    EnvVars,
    Metadata,
    Preview,
    PreviewVisibility,
    Sandbox,
    SandboxLimits,
    SandboxMetrics,
    SandboxOnTimeout,
    SandboxStatus,
    Template,
)

from . import _pause as pause
from ._beneath import remove_path
from ._commands import LiveCommand, OutputLog, event_stream
from ._egress import Egress
from ._errors import ApiProblem, not_found
from ._isolation import (
    HOME,
    Isolation,
    SandboxFolder,
    default_shell,
    detect_isolation,
    shell_exists,
    sweep,
    unisolated_program,
)
from ._limits import Cgroup, Limiter, Limits, folder_usage
from ._metrics import measure
from ._network import SandboxNetwork
from ._ports import wait_until_listening
from ._pty import LivePty
from ._spec import digits, invalid
from ._store import Store

logger = logging.getLogger("crownest_local")

DEFAULT_TTL_MS = 300_000
DEFAULT_COMMAND_TIMEOUT_MS = 60_000
KILL_GRACE_S = 2.0
REAP_INTERVAL_S = 0.2
DISK_CHECK_INTERVAL_S = 1.0
DEFAULT_RETENTION_S = 24 * 3600
MAX_COMMANDS_PER_SANDBOX = 32
RUN_CAP_MS = 600_000
# How long a shutdown waits for what ending the sandboxes started (within LocalServer.stop's 30 s).
SHUTDOWN_WAIT_S = 20.0
ENDED = ("killed", "expired", "failed")
ALIVE = ("starting", "running", "paused")
ISOLATION_WARNING = (
    "CrowNest Local with --unsafe-no-isolation: commands run as plain processes of the server's user, "
    "with NO isolation between sandboxes or from this machine (its files, its network, its other "
    "processes). File operations stay confined to each sandbox's folder. Run only code you trust, or "
    "install bubblewrap and drop the option."
)


@dataclass
class Config:
    data_dir: Path
    api_key: str
    faults: float = 0.0
    cut_streams: int = 0  # a fault: streamed answers lose their connection after this many body bytes
    max_sandboxes: int = 64
    isolation: str = "bubblewrap"  # or "none": the operator's explicit choice (--unsafe-no-isolation)
    egress: Egress = field(default_factory=Egress)
    retention_s: float = DEFAULT_RETENTION_S  # how long an ended sandbox's records stay readable
    max_commands: int = MAX_COMMANDS_PER_SANDBOX  # commands running at once in one sandbox
    cgroups: bool = True  # False: enforce limits with rlimits only (to test the fallback)
    pause_retention_s: float = DEFAULT_RETENTION_S  # how long a paused sandbox is kept before it ends
    run_cap_ms: int = RUN_CAP_MS  # what `timeoutMs: 0` means for commands.run (its HTTP request stays open)


@dataclass
class Call:
    """One validated request: path, query and header parameters by wire name, and the JSON body."""

    request: Request
    path: dict[str, str]
    query: dict[str, Any]
    headers: dict[str, str]
    body: Any


Handler = Callable[[Call], Awaitable[Any]]


def now() -> datetime.datetime:
    """The current UTC time, to the millisecond (as the API reports times)."""
    t = datetime.datetime.now(datetime.UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def parse_time(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def input_data(body: dict[str, Any]) -> str | bytes:
    """The `data` of a stdin or terminal input body: text, or bytes when `encoding` is base64."""
    if body.get("encoding") != "base64":
        return str(body["data"])
    try:
        return base64.b64decode(body["data"], validate=True)
    except binascii.Error:
        invalid("data", "is not base64, which `encoding` base64 says it is")


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("commands", "artifacts"):
            (config.data_dir / sub).mkdir(exist_ok=True)
        found = detect_isolation() if config.isolation != "none" else None
        self.isolation: Isolation | None = found if isinstance(found, Isolation) else None
        self.isolation_problem = found if isinstance(found, str) else None
        self.networks: dict[str, SandboxNetwork] = {}
        self._sandboxes_dir: Path | None = None
        self.store = Store(config.data_dir / "state.sqlite3")
        self.live: dict[str, LiveCommand] = {}
        self.terminals: dict[str, LivePty] = {}  # the `pty` operations', apart from commands
        self.limiter = Limiter.start(config.cgroups)
        self.cgroups: dict[str, Cgroup] = {}
        self.disk_used: dict[str, int] = {}  # bytes, by sandbox, as last measured
        self._tasks: set[asyncio.Task[Any]] = set()
        self.on_sandbox_end: list[Callable[[str], None]] = []  # called with the ID of each sandbox that ends
        self._pausing: set[str] = set()  # sandboxes being frozen now
        self._reaper: asyncio.Task[None] | None = None
        self._disk_watch: asyncio.Task[None] | None = None
        self.templates = {
            "python": "Python 3 (`python` and `python3` on PATH) on a minimal Linux.",
            "base": "A minimal Linux with /bin/sh.",
        }
        if shutil.which("node"):
            self.templates["node"] = "Node.js (`node` on PATH) on a minimal Linux."

    # Life of the server

    async def startup(self) -> None:
        """Mark what was alive when the server last stopped as ended; start the TTL reaper."""
        if self.config.isolation == "none":
            logger.warning(ISOLATION_WARNING)
        elif self.isolation_problem is not None:
            logger.error(
                "CrowNest Local refuses to run commands (503 isolation_unavailable): %s", self.isolation_problem
            )
        logger.info("sandboxes paused by: %s", pause.server_mechanism(self.limiter))
        self.store.release_running_keys()
        for body in [b for status in ALIVE for b in self.store.all("sandbox", status=status)]:
            self._end_sandbox(body, "killed")
        for body in self.store.all("command", status="running"):
            self._finish_command_body(body, "killed", None)
        for body in self.store.all("pty", status="running"):
            self.store.update({**body, "status": "killed", "finishedAt": now().isoformat()})
        self._reaper = asyncio.ensure_future(self._reap())
        self._disk_watch = asyncio.ensure_future(self._watch_disk())

    async def shutdown(self) -> None:
        for task in (self._reaper, self._disk_watch):
            if task is not None:
                task.cancel()
        for body in [b for status in ALIVE for b in self.store.all("sandbox", status=status)]:
            self._end_sandbox(body, "killed")
        # What ending them started (files removed in threads, helpers reaped) ends before the folder
        # they work in is removed: a thread cannot be cancelled, and two removals of one tree race.
        unfinished: set[asyncio.Task[Any]] = set()
        if self._tasks:
            _, unfinished = await asyncio.wait(set(self._tasks), timeout=SHUTDOWN_WAIT_S)
            for task in unfinished:
                task.cancel()
        await asyncio.to_thread(self.limiter.close)
        self.store.close()
        if self._sandboxes_dir is None:
            return
        if unfinished:
            logger.warning(
                "%d background task(s) still running after %g s; leaving %s in place",
                len(unfinished),
                SHUTDOWN_WAIT_S,
                self._sandboxes_dir,
            )
        else:
            await asyncio.to_thread(remove_path, self._sandboxes_dir)

    @property
    def sandboxes_dir(self) -> Path:
        """Where running sandboxes' folders are, made at first use.

        A folder of this server's own (searchable, not listable) under /var/tmp,
        not in the data folder: root's sandboxes are other users, whom bubblewrap
        must let through every folder above theirs, and the sockets in them need
        short paths (AF_UNIX allows 107 bytes). A restart ends every sandbox anyway.
        """
        if self._sandboxes_dir is None:
            runtime = "/var/tmp" if os.access("/var/tmp", os.W_OK | os.X_OK) else None
            self._sandboxes_dir = Path(tempfile.mkdtemp(prefix="crownest-local-", dir=runtime))
            self._sandboxes_dir.chmod(0o711)
        return self._sandboxes_dir

    async def _reap(self) -> None:
        purge_every = max(REAP_INTERVAL_S, min(60.0, self.config.retention_s / 4))
        last_purge = 0.0
        while True:
            await asyncio.sleep(REAP_INTERVAL_S)
            self._expire_due()
            if time.monotonic() - last_purge >= purge_every:
                last_purge = time.monotonic()
                for status in ENDED:
                    for body in self.store.all("sandbox", status=status):
                        self._past_retention(body)

    async def _watch_disk(self) -> None:
        """Measure each running sandbox's files; past its `diskMb`, kill its commands.

        A sandbox is measured every second, or less often when measuring it takes long (a million
        files take seconds): at most a tenth of the time goes to measuring it.
        """
        due: dict[str, float] = {}
        while True:
            await asyncio.sleep(DISK_CHECK_INTERVAL_S)
            running = self.store.all("sandbox", status="running")
            due = {body["id"]: due.get(body["id"], 0.0) for body in running}
            for body in running:
                if due[body["id"]] > time.monotonic():
                    continue
                started = time.monotonic()
                used = await self.measure_disk(body["id"])
                due[body["id"]] = started + max(DISK_CHECK_INTERVAL_S, 10 * (time.monotonic() - started))
                limit = Limits.from_request(body.get("limits") or {}).disk_bytes
                if used > limit:
                    logger.warning(
                        "sandbox %s uses %d bytes of disk, over %d: its commands are killed", body["id"], used, limit
                    )
                    for live in self._lives(body["id"]):
                        live.kill(signal.SIGKILL, "killed")

    async def measure_disk(self, sandbox_id: str) -> int:
        """The bytes a sandbox's files take now (measured in a thread: a big tree takes seconds)."""
        used = await asyncio.to_thread(folder_usage, self.folder(sandbox_id).folder)
        self.disk_used[sandbox_id] = used
        return used

    def _expire_due(self) -> None:
        """End the sandboxes and delete the artifacts whose `expiresAt` has passed."""
        for body in self.store.due("sandbox", status="running"):
            if body.get("onTimeout") == "pause":
                self.spawn(self._pause(body))
            else:
                self._end_sandbox(body, "expired")
        for body in self.store.due("sandbox", status="paused"):
            self._end_sandbox(body, "expired")
        for body in self.store.due("artifact"):
            self.forget_artifact(body["id"])

    def spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # Templates

    async def list_templates(self, call: Call) -> dict[str, Any]:
        if self.config.isolation == "none":
            logger.warning(ISOLATION_WARNING)
        return {"data": [Template(id=k, description=v).to_dict() for k, v in self.templates.items()]}

    # Sandboxes

    def folder(self, sandbox_id: str) -> SandboxFolder:
        owner = self.isolation.owner(sandbox_id) if self.isolation is not None else None
        return SandboxFolder(self.sandboxes_dir / sandbox_id, owner)

    def ingress(self, sandbox_id: str) -> Path | None:
        """The socket that reaches into a sandbox's network (None without isolation: the host's loopback)."""
        if self.config.isolation == "none":
            return None
        return self.folder(sandbox_id).net / "ingress.sock"

    def sandbox(self, sandbox_id: str) -> dict[str, Any]:
        """A sandbox's record, running or ended within the retention period; 404 otherwise."""
        body = self.store.get("sandbox", sandbox_id)
        if body is None or self._past_retention(body):
            raise not_found("sandbox", "sandboxId", sandbox_id)
        if body["status"] in ("running", "paused") and parse_time(body["expiresAt"]) <= now():
            if body["status"] == "running" and body.get("onTimeout") == "pause":
                return with_limits(body)  # the reaper pauses it within REAP_INTERVAL_S
            body = self._end_sandbox(body, "expired")
        return with_limits(body)

    def _retained_until(self, body: dict[str, Any]) -> datetime.datetime | None:
        """When an ended sandbox's records go; None while it runs."""
        ended = body.get("endedAt")
        if body["status"] not in ENDED or ended is None:
            return None
        return parse_time(ended) + datetime.timedelta(seconds=self.config.retention_s)

    def _gone(self, body: dict[str, Any]) -> bool:
        until = self._retained_until(body)
        return until is not None and until <= now()

    def _past_retention(self, body: dict[str, Any]) -> bool:
        """Forget an ended sandbox whose retention is over (its records and output logs), and say so."""
        if not self._gone(body):
            return False
        commands = self.store.delete_sandbox(body["id"])
        logs = [self.log_path(command_id) for command_id in commands]
        self.spawn(asyncio.to_thread(_unlink, logs + [log.with_suffix(".idx") for log in logs]))
        return True

    def limits(self, sandbox_id: str) -> Limits:
        """The limits a sandbox was created with."""
        return Limits.from_request(self.sandbox(sandbox_id).get("limits") or {})

    def running_sandbox(self, sandbox_id: str, *, reads: bool = False) -> dict[str, Any]:
        """A sandbox that has not ended, else 409; paused, 409 `sandbox_paused` unless the action only `reads`."""
        body = self.sandbox(sandbox_id)
        if body["status"] == "paused" and not reads:
            raise ApiProblem(
                409,
                "sandbox_paused",
                f"Sandbox {sandbox_id} is paused: resume it first.",
                {"sandboxId": sandbox_id, "status": "paused"},
            )
        if body["status"] not in ("running", "starting", "paused"):
            raise ApiProblem(
                409,
                "sandbox_not_running",
                f"Sandbox {sandbox_id} has ended ({body['status']}).",
                {"sandboxId": sandbox_id, "status": body["status"]},
            )
        return body

    def _end_sandbox(self, body: dict[str, Any], status: str) -> dict[str, Any]:
        """Kill a sandbox's processes and record it ended; its files are removed in a thread."""
        for ended in self.on_sandbox_end:
            ended(body["id"])
        for live in self._lives(body["id"]):
            live.kill(signal.SIGKILL, "killed")
        network = self.networks.pop(body["id"], None)
        if network is not None:
            network.stop()
            self.spawn(network.wait_closed())
        sandbox = Sandbox.from_dict(with_limits(body))
        set_field(sandbox, "status", SandboxStatus(status))
        set_field(sandbox, "ended_at", now())
        set_field(sandbox, "paused_at", None)
        updated = sandbox.to_dict()
        self.store.update(updated)
        self.disk_used.pop(body["id"], None)
        cgroup = self.cgroups.pop(body["id"], None)
        if cgroup is not None:
            cgroup.kill_all()
            if body["status"] == "paused":
                pause.thaw(cgroup, [])  # a frozen process dies of SIGKILL only once thawed
            self.spawn(asyncio.to_thread(cgroup.remove))
        folder = self.folder(body["id"]).folder
        trash = folder.with_name(f".trash-{body['id']}-{secrets.token_hex(4)}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder, trash)  # at once, so that the sandbox's files are gone for every later call
            self.spawn(asyncio.to_thread(remove_path, trash))
        return updated

    async def new_sandbox(
        self, body: dict[str, Any], populate: Callable[[Path], Awaitable[None]] | None = None
    ) -> dict[str, Any]:
        """Create a sandbox as a `SandboxCreate` body asks; `populate` fills its folder before it is `running`."""
        if "template" not in body:
            invalid("template", "is required unless a snapshot is given")
        if body["template"] not in self.templates and self.store.get("template", body["template"]) is None:
            raise ApiProblem(
                400,
                "template_not_found",
                f"Template {body['template']} does not exist.",
                {"template": body["template"], "field": "template"},
            )
        if self.store.count("sandbox", "running") >= self.config.max_sandboxes:
            raise ApiProblem(
                403,
                "quota_exceeded",
                f"At most {self.config.max_sandboxes} sandboxes may run at once.",
                {"limit": self.config.max_sandboxes},
            )
        created = now()
        ttl_ms = body.get("ttlMs", DEFAULT_TTL_MS)
        limits = Limits.from_request(body)
        sandbox_id = self._new_sandbox_id()
        cgroup = self.limiter.create(sandbox_id, limits)
        self.cgroups[sandbox_id] = cgroup
        sandbox = Sandbox(
            id=sandbox_id,
            template=body["template"],
            status=SandboxStatus.RUNNING,
            metadata=Metadata.from_dict(body.get("metadata", {})),
            ttl_ms=ttl_ms,
            created_at=created,
            expires_at=created + datetime.timedelta(milliseconds=ttl_ms),
            ended_at=None,
            limits=SandboxLimits.from_dict(limits.wire(cgroup.enforced_by)),
            on_timeout=SandboxOnTimeout(body.get("onTimeout", "kill")),
            paused_at=None,
            snapshot_id=body.get("snapshot") if populate is not None else None,
            internet=body.get("internet", True),
            allow_domains=body.get("allowDomains"),
        )
        folder = self.folder(sandbox.id)
        try:
            if populate is not None:
                await populate(folder.folder)
            folder.create()
            await asyncio.to_thread(folder.adopt_tree)
            if self.isolation is not None:
                self.networks[sandbox.id] = await SandboxNetwork.start(
                    self.isolation,
                    folder,
                    self.config.egress,
                    internet=bool(sandbox.internet),
                    allow_domains=body.get("allowDomains"),
                )
        except BaseException:
            self.cgroups.pop(sandbox_id, None)
            self.spawn(asyncio.to_thread(cgroup.remove))
            await asyncio.to_thread(folder.remove)
            raise
        wire = sandbox.to_dict()
        self.store.insert("sandbox", wire, extra={"env": EnvVars.from_dict(body.get("env", {})).to_dict()})
        return wire

    def _new_sandbox_id(self) -> str:
        """A new sandbox ID; under root, one whose user (a hash of the ID) no running sandbox has."""
        taken = {self.folder(sandbox_id).owner for sandbox_id in self.networks} - {None}
        while True:
            candidate = new_id("sbx")
            if self.folder(candidate).owner not in taken:
                return candidate

    async def list_sandboxes(self, call: Call) -> dict[str, Any]:
        pairs = [item.split(":", 1) for item in call.query.get("metadata", [])]
        template = call.query.get("template")
        created_after = _time_query(call.query.get("createdAfter"), "createdAfter")

        def keep(body: dict[str, Any]) -> bool:
            return (
                all(body["metadata"].get(k) == v for k, v in pairs)
                and (template is None or body["template"] == template)
                and (created_after is None or parse_time(body["createdAt"]) > created_after)
                and not self._gone(body)
            )

        self._expire_due()  # so that a list never shows a sandbox past its TTL as running
        page = self.store.page(
            "sandbox",
            limit=call.query.get("limit", 20),
            cursor=call.query.get("cursor"),
            status=call.query.get("status"),
            keep=keep,
            ascending=call.query.get("order", "desc") == "asc",
        )
        page["data"] = [with_limits(body) for body in page["data"]]
        return page

    async def get_sandbox(self, call: Call) -> dict[str, Any]:
        return self.sandbox(call.path["sandboxId"])

    async def kill_sandbox(self, call: Call) -> None:
        body = self.sandbox(call.path["sandboxId"])
        if body["status"] in ALIVE:
            self._end_sandbox(body, "killed")

    async def pause_sandbox(self, call: Call) -> dict[str, Any]:
        body = self.running_sandbox(call.path["sandboxId"], reads=True)
        return body if body["status"] == "paused" else await self._pause(body)

    async def resume_sandbox(self, call: Call) -> dict[str, Any]:
        body = self.running_sandbox(call.path["sandboxId"], reads=True)
        if body["status"] != "paused":
            return body
        sandbox_id = body["id"]
        await asyncio.to_thread(pause.thaw, self.cgroups.get(sandbox_id), self._sessions(sandbox_id))
        for live in self._lives(sandbox_id):
            live.release()
        sandbox = Sandbox.from_dict(body)
        set_field(sandbox, "status", SandboxStatus.RUNNING)
        set_field(sandbox, "paused_at", None)
        set_field(
            sandbox, "expires_at", now() + datetime.timedelta(milliseconds=self.store.extra(sandbox_id)["ttlLeftMs"])
        )
        wire = sandbox.to_dict()
        self.store.update(wire)
        return wire

    async def _pause(self, body: dict[str, Any]) -> dict[str, Any]:
        """Freeze a running sandbox, keep the TTL it had left, and keep it for the pause retention."""
        sandbox_id = body["id"]
        if sandbox_id in self._pausing:
            return body
        self._pausing.add(sandbox_id)
        try:
            for live in self._lives(sandbox_id):
                live.hold()
            await asyncio.to_thread(pause.freeze, self.cgroups.get(sandbox_id), self._sessions(sandbox_id))
        finally:
            self._pausing.discard(sandbox_id)
        body = self.store.get("sandbox", sandbox_id) or body
        if body["status"] != "running":  # killed while it froze
            return with_limits(body)
        paused = now()
        left = max(0, int((parse_time(body["expiresAt"]) - paused).total_seconds() * 1000))
        sandbox = Sandbox.from_dict(body)
        set_field(sandbox, "status", SandboxStatus.PAUSED)
        set_field(sandbox, "paused_at", paused)
        set_field(sandbox, "expires_at", paused + datetime.timedelta(seconds=self.config.pause_retention_s))
        wire = sandbox.to_dict()
        self.store.update(wire, extra={**self.store.extra(sandbox_id), "ttlLeftMs": left or sandbox.ttl_ms})
        return wire

    def _lives(self, sandbox_id: str) -> list[LiveCommand]:
        """The sandbox's running commands and terminals."""
        return [
            live for live in (*self.live.values(), *self.terminals.values()) if live.body["sandboxId"] == sandbox_id
        ]

    def _sessions(self, sandbox_id: str) -> list[int]:
        """The session IDs of the sandbox's commands (each is its command's first process)."""
        return [live.process.pid for live in self._lives(sandbox_id) if live.process is not None]

    async def sandbox_metrics(self, call: Call) -> dict[str, Any]:
        sandbox_id = call.path["sandboxId"]
        body = self.running_sandbox(sandbox_id, reads=True)
        used, cpu_percent = await asyncio.to_thread(measure, self.cgroups.get(sandbox_id), self._sessions(sandbox_id))
        return SandboxMetrics(
            cpu_percent=cpu_percent,
            cpu_time_ms=used.cpu_ns // 1_000_000,
            memory_bytes=used.memory_bytes,
            disk_bytes=await self.measure_disk(sandbox_id),
            process_count=used.process_count,
            limits=SandboxLimits.from_dict(body["limits"]),
        ).to_dict()

    async def set_sandbox_ttl(self, call: Call) -> dict[str, Any]:
        sandbox = Sandbox.from_dict(self.running_sandbox(call.path["sandboxId"]))
        set_field(sandbox, "ttl_ms", call.body["ttlMs"])
        set_field(sandbox, "expires_at", now() + datetime.timedelta(milliseconds=sandbox.ttl_ms))
        wire = sandbox.to_dict()
        self.store.update(wire)
        return wire

    # Commands

    async def run_command(self, call: Call) -> dict[str, Any]:
        live = await self._start_command(call, keep_stdin_open=False, cap_ms=self.config.run_cap_ms)
        await live.finished.wait()
        return self.command_body(live.body["id"])

    async def start_command(self, call: Call) -> Response:
        live = await self._start_command(call, keep_stdin_open="stdin" not in call.body)
        return json_response(live.snapshot(), 202)

    async def _start_command(self, call: Call, *, keep_stdin_open: bool, cap_ms: int | None = None) -> LiveCommand:
        """Spawn the command; its `timeoutMs` of 0 means `cap_ms`, or no limit but the sandbox's life if None."""
        sandbox_id = call.path["sandboxId"]
        self.running_sandbox(sandbox_id)
        self.check_command_cap(sandbox_id)
        spec = call.body
        folder = self.folder(sandbox_id)
        cwd = folder.cwd(spec.get("cwd", HOME))
        command_id = new_id("cmd")
        shell = spec.get("shell", default_shell())
        if not shell_exists(shell):
            invalid("shell", f"{shell} is not an executable in the sandbox")
        timeout_ms = spec.get("timeoutMs", DEFAULT_COMMAND_TIMEOUT_MS)
        command = Command(
            id=command_id,
            sandbox_id=sandbox_id,
            command=spec["command"],
            cwd=cwd,
            status=CommandStatus.RUNNING,
            exit_code=None,
            stdout="",
            stderr="",
            stdout_truncated=False,
            stderr_truncated=False,
            output_truncated=False,
            timeout_ms=timeout_ms,
            started_at=now(),
            finished_at=None,
            duration_ms=None,
        )
        live = LiveCommand(command.to_dict(), OutputLog(self.log_path(command.id)))
        if self.isolation is None:
            live.sweep = lambda sig: sweep(command_id, sig)
        spawn, host_cwd, argv, env, fds = self.spawn_plan(
            sandbox_id, folder, [shell, "-c", spec["command"]], cwd, command_id
        )
        env.update(self.store.extra(sandbox_id).get("env", {}))
        env.update(spec.get("env", {}))
        cgroup = self.cgroups.get(sandbox_id)
        limit_ms = timeout_ms or cap_ms
        timeout_s = limit_ms / 1000 if limit_ms else None
        join = cgroup.preexec(timeout_s) if cgroup is not None else None
        try:
            await live.start(argv, host_cwd, env, spec.get("stdin"), keep_stdin_open, join, **spawn)
        except OSError as exc:
            raise ApiProblem(500, "internal_error", f"The command could not start: {exc.strerror}.") from exc
        finally:
            for fd in fds:
                os.close(fd)
            if join is not None:
                join.close()
        self.store.insert("command", live.body)
        self.live[command.id] = live
        self.spawn(self._supervise(live, timeout_s))
        return live

    def check_command_cap(self, sandbox_id: str) -> None:
        """409 `too_many_commands` if the sandbox runs as many commands (terminals included) as it may."""
        running = len(self._lives(sandbox_id))
        if running >= self.config.max_commands:
            raise ApiProblem(
                409,
                "too_many_commands",
                f"Sandbox {sandbox_id} already runs {running} commands, as many as it may at once.",
                {"sandboxId": sandbox_id, "limit": self.config.max_commands},
            )

    def spawn_plan(
        self, sandbox_id: str, folder: SandboxFolder, program: list[str], cwd: str, command_id: str
    ) -> tuple[dict[str, Any], str, list[str], dict[str, str], list[int]]:
        """How to start `program` in a sandbox: spawn options, host cwd, argv, environment, and fds to close after."""
        if self.config.isolation == "none":
            argv, host_cwd, env = unisolated_program(folder, program, cwd, command_id)
            return {}, host_cwd, argv, env, []
        network = self.networks.get(sandbox_id)
        if self.isolation is None or network is None:
            raise ApiProblem(
                503,
                "isolation_unavailable",
                f"CrowNest Local cannot isolate commands on this machine: {self.isolation_problem}. "
                "Install bubblewrap, or start the server with --unsafe-no-isolation to run them unisolated.",
                {"reason": self.isolation_problem or "the sandbox has no network helper"},
            )
        fd = self.isolation.seccomp_pipe()
        internet = bool(self.sandbox(sandbox_id).get("internet", True))
        argv, env = self.isolation.program(
            folder, program, cwd, helper_pid=network.pid, seccomp_fd=fd, internet=internet
        )
        return {"pass_fds": (fd,)}, "/", argv, env, [fd]

    def log_path(self, command_id: str) -> Path:
        return self.config.data_dir / "commands" / f"{command_id}.log"

    async def _supervise(self, live: LiveCommand, timeout_s: float | None) -> None:
        try:
            await live.run(timeout_s)
        finally:
            status, exit_code = (
                live.outcome() if live.process and live.process.returncode is not None else ("killed", None)
            )
            live.log.close()
            body = live.snapshot()
            self._finish_command_body(body, status, exit_code, started=live.started)
            del self.live[body["id"]]
            live.body = self.command_body(body["id"])
            live.finished.set()
            live.notify()

    def _finish_command_body(
        self, body: dict[str, Any], status: str, exit_code: int | None, started: float | None = None
    ) -> None:
        command = Command.from_dict(body)
        set_field(command, "status", CommandStatus(status))
        set_field(command, "exit_code", exit_code)
        set_field(command, "finished_at", now())
        elapsed = time.monotonic() - started if started is not None else 0.0
        set_field(command, "duration_ms", int(elapsed * 1000))
        self.store.update(command.to_dict())

    def command_body(self, command_id: str) -> dict[str, Any]:
        live = self.live.get(command_id)
        if live is not None:
            return live.snapshot()
        body = self.store.get("command", command_id)
        if body is None:
            raise not_found("command", "commandId", command_id)
        body.setdefault("outputTruncated", False)  # a record from before the field existed
        return body

    def command(self, call: Call) -> dict[str, Any]:
        """A command's record (also after its sandbox ended, within the retention period)."""
        self.sandbox(call.path["sandboxId"])
        body = self.command_body(call.path["commandId"])
        if body["sandboxId"] != call.path["sandboxId"]:
            raise not_found("command", "commandId", call.path["commandId"])
        return body

    async def list_commands(self, call: Call) -> dict[str, Any]:
        sandbox_id = call.path["sandboxId"]
        self.sandbox(sandbox_id)
        page = self.store.page(
            "command",
            limit=call.query.get("limit", 20),
            cursor=call.query.get("cursor"),
            sandbox_id=sandbox_id,
            status=call.query.get("status"),
        )
        page["data"] = [self.command_body(body["id"]) for body in page["data"]]
        return page

    async def get_command(self, call: Call) -> dict[str, Any]:
        return self.command(call)

    async def wait_command(self, call: Call) -> dict[str, Any]:
        body = self.command(call)
        live = self.live.get(body["id"])
        if live is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(live.finished.wait(), call.query.get("timeoutMs", 60_000) / 1000)
        return self.command_body(body["id"])

    def _live(self, call: Call) -> LiveCommand:
        self.running_sandbox(call.path["sandboxId"])
        body = self.command(call)
        live = self.live.get(body["id"])
        if live is None:
            raise ApiProblem(
                409,
                "command_not_running",
                f"Command {body['id']} has ended ({body['status']}).",
                {"commandId": body["id"], "status": body["status"]},
            )
        return live

    async def kill_command(self, call: Call) -> dict[str, Any]:
        live = self._live(call)
        sig = signal.Signals[(call.body or {}).get("signal", "SIGTERM")]
        live.kill(sig, "killed")
        try:
            await asyncio.wait_for(asyncio.shield(live.finished.wait()), KILL_GRACE_S)
        except TimeoutError:
            live.kill(signal.SIGKILL, "killed")
            await live.finished.wait()
        return self.command_body(live.body["id"])

    async def send_stdin(self, call: Call) -> None:
        live = self._live(call)
        data = input_data(call.body)
        if live.stdin_open:
            await live.write_stdin(data, bool(call.body.get("eof", False)))

    async def stream_events(self, call: Call) -> Response:
        body = self.command(call)
        offset = digits(call.headers.get("last-event-id", "0").strip() or "0")
        if offset is None:
            invalid("Last-Event-ID", "is not an id this server sent")
        return StreamingResponse(
            self._events(body["id"], offset, call.request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    def _events(self, command_id: str, offset: int, request: Request) -> AsyncIterator[bytes]:
        return event_stream(
            offset,
            request,
            live=lambda: self.live.get(command_id),
            stored_log=lambda: OutputLog(self.log_path(command_id)),
            output=lambda stream, data: {"stream": stream, "data": data.decode("utf-8", "replace")},
            final=lambda: self.command_body(command_id),
        )

    # Previews

    def _preview_url(self, call: Call, preview_id: str) -> str:
        return f"{str(call.request.base_url).rstrip('/')}/previews/{preview_id}/"

    async def create_preview(self, call: Call) -> Response:
        sandbox_id = call.path["sandboxId"]
        self.running_sandbox(sandbox_id)
        port = call.body["port"]
        server = call.request.scope.get("server")
        if self.config.isolation == "none" and server is not None and port == server[1]:
            invalid("port", "is CrowNest Local's own port")
        visibility = PreviewVisibility(call.body.get("visibility", "private"))
        wait_ms = call.body.get("waitMs", 0)
        if wait_ms and not await wait_until_listening(self.ingress, sandbox_id, port, wait_ms):
            raise ApiProblem(
                504,
                "port_not_listening",
                f"Nothing in sandbox {sandbox_id} accepted connections on port {port} within {wait_ms} ms.",
                {"port": port, "waitMs": wait_ms},
            )
        for body in self.store.all("preview", sandbox_id=sandbox_id):
            if body["port"] != port:
                continue
            if body["visibility"] != visibility.value:
                raise ApiProblem(
                    409,
                    "preview_exists",
                    f"Port {port} already has a {body['visibility']} preview ({body['id']}); to make it "
                    f"{visibility.value}, delete that preview and create it again.",
                    {"previewId": body["id"], "visibility": body["visibility"], "port": port},
                )
            return json_response(body, 200)
        preview_id = new_id("prv")
        preview = Preview(
            id=preview_id,
            sandbox_id=sandbox_id,
            port=port,
            url=self._preview_url(call, preview_id),
            visibility=visibility,
            created_at=now(),
        )
        if visibility == PreviewVisibility.PRIVATE:
            set_field(preview, "token", secrets.token_urlsafe(24))
        wire = preview.to_dict()
        self.store.insert("preview", wire)
        return json_response(wire, 201)

    async def list_previews(self, call: Call) -> dict[str, Any]:
        sandbox_id = call.path["sandboxId"]
        self.running_sandbox(sandbox_id)
        return {"data": self.store.all("preview", sandbox_id=sandbox_id)}

    async def delete_preview(self, call: Call) -> None:
        self.running_sandbox(call.path["sandboxId"])
        body = self.store.get("preview", call.path["previewId"])
        if body is None or body["sandboxId"] != call.path["sandboxId"]:
            raise not_found("preview", "previewId", call.path["previewId"])
        self.store.delete(body["id"])

    # Artifacts storage, shared with _files.py

    def artifact_file(self, artifact_id: str) -> Path:
        return self.config.data_dir / "artifacts" / artifact_id

    def forget_artifact(self, artifact_id: str) -> None:
        self.store.delete(artifact_id)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.artifact_file(artifact_id))


def json_response(body: Any, status: int) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status, media_type="application/json")


def with_limits(body: dict[str, Any]) -> dict[str, Any]:
    """A sandbox's record with `limits`, which a record from before they existed lacks (not enforced then)."""
    if "limits" not in body:
        body["limits"] = Limits().wire(dict.fromkeys(("cpu", "memory", "disk", "processes"), "none"))
    return body


def _time_query(value: str | None, name: str) -> datetime.datetime | None:
    """A date-time query parameter (RFC 3339, with an offset), or 400 `invalid_request`."""
    if value is None:
        return None
    try:
        parsed = parse_time(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        invalid(name, "is not an RFC 3339 date-time")
    if parsed.tzinfo is None:
        invalid(name, "has no UTC offset")
    return parsed


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
