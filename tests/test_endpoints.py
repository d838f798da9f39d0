"""Every public method, sync and async, and on the sandbox handle where it is bound.

Each case says what the user calls and the exact request that must go out
(method, path, query, body, headers), then checks what the call returns.
"""

from __future__ import annotations

import datetime
import inspect
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

import payloads as p
from crownest import (
    AsyncCrowNest,
    AsyncPager,
    AsyncStream,
    AsyncWatchHandle,
    CrowNest,
    CrowNestError,
    Stream,
    SyncPager,
    WatchHandle,
)
from crownest._generated.resources import CLIENT_RESOURCES, SANDBOX_METHODS, SANDBOX_RESOURCES
from crownest._generated.types import UNSET
from crownest._handle import AsyncSandboxHandle, SandboxHandle
from crownest.models import ArchiveWritten, Artifact, Command, FileInfo, Preview, Sandbox, Template

SBX = "sbx_1"
DOWNLOAD_TO = Path(tempfile.gettempdir()) / f"crownest-test-download-{os.getpid()}"
DOWNLOAD_DIR = Path(tempfile.gettempdir()) / f"crownest-test-download-dir-{os.getpid()}"
UPLOAD_FROM = p.project_folder(Path(tempfile.gettempdir()) / f"crownest-test-upload-{os.getpid()}")


@dataclass
class Case:
    resource: str
    method: str
    args: tuple[Any, ...]
    http: str
    path: str
    response: httpx.Response
    kwargs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None  # JSON body, or bytes for content
    content_type: str = "application/octet-stream"  # of a bytes body
    headers: dict[str, str] = field(default_factory=dict)
    on_handle: bool = False  # also on sandbox.<resource>, with sandbox_id bound
    check: Callable[[Any], bool] = lambda result: True
    handle_method: str | None = None  # also a method of the sandbox handle itself, with its ID bound
    handle_check: Callable[[Any, Any], bool] = lambda result, sandbox: result is None  # (result, handle)

    @property
    def id(self) -> str:
        return f"{self.resource}.{self.method}"


def ok(body: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def page(item: dict[str, Any]) -> httpx.Response:
    return ok({"data": [item], "nextCursor": None})


CASES = [
    Case(
        "templates",
        "list",
        (),
        "GET",
        "/v1/templates",
        ok({"data": [p.template()]}),
        check=lambda r: isinstance(r, list) and isinstance(r[0], Template) and r[0].id == "python",
    ),
    Case(
        "templates",
        "create",
        ("mine",),
        "POST",
        "/v1/templates",
        ok(p.template(id="mine", status="building", base="python"), 202),
        kwargs={"base": "python", "commands": ["echo hi"], "files": {"a.py": "x = 1"}, "env": {"K": "V"}},
        body={"name": "mine", "base": "python", "commands": ["echo hi"], "files": {"a.py": "x = 1"}, "env": {"K": "V"}},
        check=lambda r: r.status == "building",
    ),
    Case("templates", "delete", ("mine",), "DELETE", "/v1/templates/mine", httpx.Response(204)),
    Case(
        "templates",
        "get",
        ("python",),
        "GET",
        "/v1/templates/python",
        ok(p.template()),
        check=lambda r: isinstance(r, Template),
    ),
    Case(
        "sandboxes",
        "create",
        (),
        "POST",
        "/v1/sandboxes",
        ok(p.sandbox(), 201),
        kwargs={"template": "python", "ttl_ms": 600000, "metadata": {"job": "x"}, "env": {"K": "V"}},
        body={"template": "python", "ttlMs": 600000, "metadata": {"job": "x"}, "env": {"K": "V"}},
        check=lambda r: r.id == SBX and r["expiresAt"] == r.expires_at,
    ),
    Case(
        "sandboxes",
        "list",
        (),
        "GET",
        "/v1/sandboxes",
        page(p.sandbox()),
        kwargs={"status": "running", "metadata": {"job": "x", "team": "a"}, "limit": 5},
        params={"status": "running", "metadata": ["job:x", "team:a"], "limit": "5"},
        check=lambda r: r.id == SBX,
    ),
    Case(
        "sandboxes",
        "list",
        (),
        "GET",
        "/v1/sandboxes",
        page(p.sandbox()),
        kwargs={
            "template": "python",
            "created_after": datetime.datetime(2026, 11, 26, 12, tzinfo=datetime.UTC),
            "order": "asc",
        },
        params={"template": "python", "createdAfter": "2026-11-26T12:00:00+00:00", "order": "asc"},
        check=lambda r: r.id == SBX,
    ),
    Case(
        "sandboxes",
        "get",
        (SBX,),
        "GET",
        "/v1/sandboxes/sbx_1",
        ok(p.sandbox(status="killed")),
        check=lambda r: r.status == "killed",
        handle_method="refresh",
        handle_check=lambda r, sandbox: r is None and sandbox.status == "killed",
    ),
    Case(
        "sandboxes",
        "kill",
        (SBX,),
        "DELETE",
        "/v1/sandboxes/sbx_1",
        httpx.Response(204),
        check=lambda r: r is None,
        handle_method="kill",
    ),
    Case(
        "sandboxes",
        "set_ttl",
        (SBX, 5000),
        "POST",
        "/v1/sandboxes/sbx_1/ttl",
        ok(p.sandbox(ttlMs=5000)),
        body={"ttlMs": 5000},
        check=lambda r: r.ttl_ms == 5000,
        handle_method="set_ttl",
        handle_check=lambda r, sandbox: r is None and sandbox.ttl_ms == 5000,
    ),
    Case(
        "sandboxes",
        "pause",
        (SBX,),
        "POST",
        "/v1/sandboxes/sbx_1/pause",
        ok(p.sandbox(status="paused", pausedAt=p.T0, onTimeout="kill")),
        check=lambda r: r.status == "paused" and r.paused_at is not None,
        handle_method="pause",
        handle_check=lambda r, sandbox: r is None and sandbox.status == "paused",
    ),
    Case(
        "sandboxes",
        "resume",
        (SBX,),
        "POST",
        "/v1/sandboxes/sbx_1/resume",
        ok(p.sandbox(pausedAt=None)),
        check=lambda r: r.status == "running" and r.paused_at is None,
        handle_method="resume",
        handle_check=lambda r, sandbox: r is None and sandbox.status == "running",
    ),
    Case(
        "sandboxes",
        "metrics",
        (SBX,),
        "GET",
        "/v1/sandboxes/sbx_1/metrics",
        ok(p.metrics()),
        check=lambda r: r.process_count == 2 and r.limits.cpu_count == 1,
        handle_method="metrics",
        handle_check=lambda r, sandbox: r.cpu_percent == 12.5,
    ),
    Case(
        "commands",
        "run",
        (SBX, "echo hi"),
        "POST",
        "/v1/sandboxes/sbx_1/commands/run",
        ok(p.command()),
        kwargs={"cwd": "/tmp", "env": {"A": "1"}, "timeout_ms": 1000, "stdin": "in"},
        body={"command": "echo hi", "cwd": "/tmp", "env": {"A": "1"}, "timeoutMs": 1000, "stdin": "in"},
        on_handle=True,
        check=lambda r: isinstance(r, Command) and r["exitCode"] == 0 and r["stdout"] == "hi\n",
    ),
    Case(
        "commands",
        "start",
        (SBX, "sleep 1"),
        "POST",
        "/v1/sandboxes/sbx_1/commands",
        ok(p.command(status="running", exitCode=None), 202),
        body={"command": "sleep 1"},
        on_handle=True,
        check=lambda r: r.status == "running" and r.exit_code is None,
    ),
    Case(
        "commands",
        "list",
        (SBX,),
        "GET",
        "/v1/sandboxes/sbx_1/commands",
        page(p.command()),
        kwargs={"status": "failed", "limit": 2},
        params={"status": "failed", "limit": "2"},
        on_handle=True,
        check=lambda r: r.id == "cmd_1",
    ),
    Case(
        "commands",
        "get",
        (SBX, "cmd_1"),
        "GET",
        "/v1/sandboxes/sbx_1/commands/cmd_1",
        ok(p.command()),
        on_handle=True,
        check=lambda r: r.id == "cmd_1",
    ),
    Case(
        "commands",
        "wait",
        (SBX, "cmd_1"),
        "GET",
        "/v1/sandboxes/sbx_1/commands/cmd_1/wait",
        ok(p.command()),
        kwargs={"timeout_ms": 100},
        params={"timeoutMs": "100"},
        on_handle=True,
    ),
    Case(
        "commands",
        "kill",
        (SBX, "cmd_1"),
        "POST",
        "/v1/sandboxes/sbx_1/commands/cmd_1/kill",
        ok(p.command(status="killed")),
        kwargs={"signal": "SIGKILL"},
        body={"signal": "SIGKILL"},
        on_handle=True,
        check=lambda r: r.status == "killed",
    ),
    Case(
        "commands",
        "send_stdin",
        (SBX, "cmd_1", "data"),
        "POST",
        "/v1/sandboxes/sbx_1/commands/cmd_1/stdin",
        httpx.Response(204),
        kwargs={"eof": True},
        body={"data": "data", "eof": True},
        on_handle=True,
        check=lambda r: r is None,
    ),
    Case(
        "commands",
        "send_stdin",
        (SBX, "cmd_1", b"\x00\xff"),
        "POST",
        "/v1/sandboxes/sbx_1/commands/cmd_1/stdin",
        httpx.Response(204),
        body={"data": "AP8=", "encoding": "base64"},
        on_handle=True,
        check=lambda r: r is None,
    ),
    Case(
        "commands",
        "events",
        (SBX, "cmd_1"),
        "GET",
        "/v1/sandboxes/sbx_1/commands/cmd_1/events",
        httpx.Response(
            200,
            text='id: 8\nevent: output\ndata: {"stream": "stdout", "data": "hi"}\n\nevent: exit\ndata: {}\n\n',
            headers={"content-type": "text/event-stream"},
        ),
        kwargs={"last_event_id": "5"},
        headers={"Last-Event-ID": "5"},
        on_handle=True,
        check=lambda r: (
            [(e.event, e.id, e.data) for e in r]
            == [("output", "8", '{"stream": "stdout", "data": "hi"}'), ("exit", UNSET, "{}")]
        ),
    ),
    Case(
        "pty",
        "create",
        (SBX,),
        "POST",
        "/v1/sandboxes/sbx_1/pty",
        ok(p.pty(cols=100), 202),
        kwargs={"cols": 100, "rows": 30, "command": "top", "cwd": "/tmp", "env": {"A": "1"}},
        body={"cols": 100, "rows": 30, "command": "top", "cwd": "/tmp", "env": {"A": "1"}},
        on_handle=True,
        check=lambda r: r.id == "pty_1" and r.cols == 100 and type(r).__name__.endswith("PtyHandle"),
    ),
    Case(
        "pty",
        "send",
        (SBX, "pty_1", b"\x03\xff"),
        "POST",
        "/v1/sandboxes/sbx_1/pty/pty_1/input",
        httpx.Response(204),
        body={"data": "A/8=", "encoding": "base64"},
        on_handle=True,
        check=lambda r: r is None,
    ),
    Case(
        "pty",
        "resize",
        (SBX, "pty_1", 120, 40),
        "POST",
        "/v1/sandboxes/sbx_1/pty/pty_1/resize",
        ok(p.pty(cols=120, rows=40)),
        body={"cols": 120, "rows": 40},
        on_handle=True,
        check=lambda r: (r.cols, r.rows) == (120, 40),
    ),
    Case(
        "pty",
        "wait",
        (SBX, "pty_1"),
        "GET",
        "/v1/sandboxes/sbx_1/pty/pty_1/wait",
        ok(p.pty(status="succeeded", exitCode=0)),
        kwargs={"timeout_ms": 100},
        params={"timeoutMs": "100"},
        on_handle=True,
        check=lambda r: r.exit_code == 0,
    ),
    Case(
        "pty",
        "kill",
        (SBX, "pty_1"),
        "POST",
        "/v1/sandboxes/sbx_1/pty/pty_1/kill",
        ok(p.pty(status="killed")),
        kwargs={"signal": "SIGKILL"},
        body={"signal": "SIGKILL"},
        on_handle=True,
        check=lambda r: r.status == "killed",
    ),
    Case(
        "pty",
        "events",
        (SBX, "pty_1"),
        "GET",
        "/v1/sandboxes/sbx_1/pty/pty_1/events",
        httpx.Response(
            200,
            text='id: 2\nevent: output\ndata: {"data": "aGk="}\n\nevent: exit\ndata: {}\n\n',
            headers={"content-type": "text/event-stream"},
        ),
        kwargs={"last_event_id": "0"},
        headers={"Last-Event-ID": "0"},
        on_handle=True,
        check=lambda r: (
            [(e.event, e.id, e.data) for e in r] == [("output", "2", '{"data": "aGk="}'), ("exit", UNSET, "{}")]
        ),
    ),
    Case(
        "files",
        "write",
        (SBX, "a.txt", "héllo"),
        "PUT",
        "/v1/sandboxes/sbx_1/files/content",
        ok(p.file_info()),
        params={"path": "a.txt"},
        body="héllo".encode(),
        on_handle=True,
        check=lambda r: isinstance(r, FileInfo),
    ),
    Case(
        "files",
        "read",
        (SBX, "a.txt"),
        "GET",
        "/v1/sandboxes/sbx_1/files/content",
        httpx.Response(200, content=b"\x00\xff"),
        params={"path": "a.txt"},
        on_handle=True,
        check=lambda r: r == b"\x00\xff",
    ),
    Case(
        "files",
        "read_text",
        (SBX, "a.txt"),
        "GET",
        "/v1/sandboxes/sbx_1/files/content",
        httpx.Response(200, content="héllo".encode()),
        params={"path": "a.txt"},
        on_handle=True,
        check=lambda r: r == "héllo",
    ),
    Case(
        "files",
        "download",
        (SBX, "a.txt", DOWNLOAD_TO),
        "GET",
        "/v1/sandboxes/sbx_1/files/content",
        httpx.Response(200, content=b"streamed"),
        params={"path": "a.txt"},
        on_handle=True,
        check=lambda r: r == 8 and DOWNLOAD_TO.read_bytes() == b"streamed",
    ),
    Case(
        "files",
        "stream",
        (SBX, "a.txt"),
        "GET",
        "/v1/sandboxes/sbx_1/files/content",
        httpx.Response(200, content=b"streamed"),
        params={"path": "a.txt"},
        on_handle=True,
        check=lambda r: b"".join(r) == b"streamed",
    ),
    Case(
        "files",
        "write_archive",
        (SBX, "proj", p.TAR),
        "PUT",
        "/v1/sandboxes/sbx_1/files/archive",
        ok(p.archive_written()),
        params={"path": "proj"},
        body=p.TAR,
        content_type="application/x-tar",
        on_handle=True,
        check=lambda r: isinstance(r, ArchiveWritten) and r.files == 1,
    ),
    Case(
        "files",
        "upload_dir",
        (SBX, UPLOAD_FROM, "proj"),
        "PUT",
        "/v1/sandboxes/sbx_1/files/archive",
        ok(p.archive_written()),
        params={"path": "proj"},
        body=p.TAR,
        content_type="application/x-tar",
        on_handle=True,
        check=lambda r: isinstance(r, ArchiveWritten) and r.bytes_written == 2,
    ),
    Case(
        "files",
        "write_many",
        (SBX, {"proj/a.txt": "hi"}),
        "PUT",
        "/v1/sandboxes/sbx_1/files/archive",
        ok(p.archive_written()),
        params={"path": "proj"},
        body=p.TAR,
        content_type="application/x-tar",
        on_handle=True,
        check=lambda r: isinstance(r, ArchiveWritten) and r.path == "/home/user/proj",
    ),
    Case(
        "files",
        "read_archive",
        (SBX, "proj"),
        "GET",
        "/v1/sandboxes/sbx_1/files/archive",
        httpx.Response(200, content=p.TAR),
        params={"path": "proj"},
        on_handle=True,
        check=lambda r: r == p.TAR,
    ),
    Case(
        "files",
        "download_dir",
        (SBX, "proj", DOWNLOAD_DIR),
        "GET",
        "/v1/sandboxes/sbx_1/files/archive",
        httpx.Response(200, content=p.TAR),
        params={"path": "proj"},
        on_handle=True,
        check=lambda r: r == 1 and (DOWNLOAD_DIR / "a.txt").read_bytes() == b"hi",
    ),
    Case(
        "files",
        "list",
        (SBX, "/home/user"),
        "GET",
        "/v1/sandboxes/sbx_1/files",
        ok({"data": [p.file_info()]}),
        params={"path": "/home/user"},
        on_handle=True,
        check=lambda r: r[0]["type"] == r[0].type_ == "file",
    ),
    Case(
        "files",
        "info",
        (SBX, "a.txt"),
        "GET",
        "/v1/sandboxes/sbx_1/files/info",
        ok(p.file_info()),
        params={"path": "a.txt"},
        on_handle=True,
        check=lambda r: r.size_bytes == 2,
    ),
    Case(
        "files",
        "exists",
        (SBX, "a.txt"),
        "GET",
        "/v1/sandboxes/sbx_1/files/exists",
        ok({"exists": True}),
        params={"path": "a.txt"},
        on_handle=True,
        check=lambda r: r is True,
    ),
    Case(
        "files",
        "delete",
        (SBX, "d"),
        "DELETE",
        "/v1/sandboxes/sbx_1/files",
        httpx.Response(204),
        kwargs={"recursive": True},
        params={"path": "d", "recursive": "true"},
        on_handle=True,
    ),
    Case(
        "files",
        "mkdir",
        (SBX, "d"),
        "POST",
        "/v1/sandboxes/sbx_1/files/mkdir",
        ok(p.file_info(type="directory"), 201),
        kwargs={"parents": False},
        body={"path": "d", "parents": False},
        on_handle=True,
        check=lambda r: r.type_ == "directory",
    ),
    Case(
        "files",
        "move",
        (SBX, "a", "b"),
        "POST",
        "/v1/sandboxes/sbx_1/files/move",
        ok(p.file_info()),
        kwargs={"overwrite": True},
        body={"source": "a", "destination": "b", "overwrite": True},
        on_handle=True,
    ),
    Case(
        "files",
        "watch",
        (SBX, "src"),
        "POST",
        "/v1/sandboxes/sbx_1/watches",
        ok(p.watch(), 201),
        kwargs={"recursive": False},
        body={"path": "src", "recursive": False},
        on_handle=True,
        check=lambda r: isinstance(r, WatchHandle | AsyncWatchHandle) and (r.id, r.watch.status) == ("wch_1", "active"),
    ),
    Case(
        "files",
        "watch_events",
        (SBX, "wch_1"),
        "GET",
        "/v1/sandboxes/sbx_1/watches/wch_1/events",
        httpx.Response(
            200,
            text='id: 3\nevent: change\ndata: {"type": "created", "path": "/home/user/a", "newPath": null, '
            '"isDir": false}\n\nid: 3\nevent: end\ndata: {}\n\n',
            headers={"content-type": "text/event-stream"},
        ),
        kwargs={"last_event_id": "2"},
        headers={"Last-Event-ID": "2"},
        on_handle=True,
        check=lambda r: [(e.event, e.id) for e in r] == [("change", "3"), ("end", "3")],
    ),
    Case(
        "files",
        "unwatch",
        (SBX, "wch_1"),
        "DELETE",
        "/v1/sandboxes/sbx_1/watches/wch_1",
        httpx.Response(204),
        on_handle=True,
        check=lambda r: r is None,
    ),
    Case(
        "artifacts",
        "create",
        (SBX, "primes.txt"),
        "POST",
        "/v1/sandboxes/sbx_1/artifacts",
        ok(p.artifact(), 201),
        kwargs={"name": "p.txt", "ttl_ms": 1000},
        body={"path": "primes.txt", "name": "p.txt", "ttlMs": 1000},
        on_handle=True,
        check=lambda r: isinstance(r, Artifact),
    ),
    Case(
        "artifacts",
        "list",
        (),
        "GET",
        "/v1/artifacts",
        page(p.artifact()),
        kwargs={"sandbox_id": SBX, "cursor": "c1"},
        params={"sandboxId": SBX, "cursor": "c1"},
        check=lambda r: r.id == "art_1",
    ),
    Case("artifacts", "get", ("art_1",), "GET", "/v1/artifacts/art_1", ok(p.artifact())),
    Case(
        "artifacts",
        "url",
        ("art_1",),
        "POST",
        "/v1/artifacts/art_1/url",
        ok({"url": "http://x/signed/artifacts/art_1?sig=s", "method": "GET", "expiresAt": p.T1}, 201),
        kwargs={"expires_in_s": 60},
        body={"expiresInS": 60},
        check=lambda r: r.url.endswith("sig=s") and "sig=s" not in repr(r),
    ),
    Case(
        "files",
        "url",
        (SBX, "a.txt"),
        "POST",
        "/v1/sandboxes/sbx_1/files/url",
        ok({"url": "http://x/signed/files/sbx_1?sig=s", "method": "PUT", "expiresAt": p.T1}, 201),
        kwargs={"method": "PUT", "expires_in_s": 60},
        body={"path": "a.txt", "method": "PUT", "expiresInS": 60},
        on_handle=True,
        check=lambda r: r.method == "PUT",
    ),
    Case(
        "artifacts",
        "download",
        ("art_1",),
        "GET",
        "/v1/artifacts/art_1/content",
        httpx.Response(200, content=b"2\n3\n5"),
        check=lambda r: r == b"2\n3\n5",
    ),
    Case(
        "artifacts",
        "download_to",
        ("art_1", DOWNLOAD_TO),
        "GET",
        "/v1/artifacts/art_1/content",
        httpx.Response(200, content=b"2\n3\n5"),
        check=lambda r: r == 5 and DOWNLOAD_TO.read_bytes() == b"2\n3\n5",
    ),
    Case(
        "artifacts",
        "stream",
        ("art_1",),
        "GET",
        "/v1/artifacts/art_1/content",
        httpx.Response(200, content=b"2\n3\n5"),
        check=lambda r: b"".join(r) == b"2\n3\n5",
    ),
    Case("artifacts", "delete", ("art_1",), "DELETE", "/v1/artifacts/art_1", httpx.Response(204)),
    Case(
        "sandboxes",
        "snapshot",
        (SBX,),
        "POST",
        "/v1/sandboxes/sbx_1/snapshots",
        ok(p.snapshot(), 201),
        kwargs={"name": "s"},
        body={"name": "s"},
        check=lambda r: r.id == "snp_1" and r.size_bytes == 4096,
        handle_method="snapshot",
        handle_check=lambda r, sandbox: r.sandbox_id == sandbox.id,
    ),
    Case(
        "sandboxes",
        "fork",
        (SBX,),
        "POST",
        "/v1/sandboxes/sbx_1/fork",
        ok(p.sandbox(id="sbx_2", snapshotId="snp_1"), 201),
        check=lambda r: isinstance(r, SandboxHandle | AsyncSandboxHandle) and r.id == "sbx_2",
        handle_method="fork",
        handle_check=lambda r, sandbox: r.id == "sbx_2" and sandbox.id == SBX,
    ),
    Case(
        "snapshots",
        "list",
        (),
        "GET",
        "/v1/snapshots",
        page(p.snapshot()),
        kwargs={"sandbox_id": SBX},
        params={"sandboxId": SBX},
        check=lambda r: r.id == "snp_1",
    ),
    Case("snapshots", "get", ("snp_1",), "GET", "/v1/snapshots/snp_1", ok(p.snapshot())),
    Case("snapshots", "delete", ("snp_1",), "DELETE", "/v1/snapshots/snp_1", httpx.Response(204)),
    Case(
        "previews",
        "create",
        (SBX, 8080),
        "POST",
        "/v1/sandboxes/sbx_1/previews",
        ok(p.preview(), 201),
        kwargs={"visibility": "public"},
        body={"port": 8080, "visibility": "public"},
        on_handle=True,
        check=lambda r: isinstance(r, Preview) and r.port == 8080,
    ),
    Case(
        "previews",
        "list",
        (SBX,),
        "GET",
        "/v1/sandboxes/sbx_1/previews",
        ok({"data": [p.preview()]}),
        on_handle=True,
        check=lambda r: r[0].id == "prv_1",
    ),
    Case(
        "previews",
        "delete",
        (SBX, "prv_1"),
        "DELETE",
        "/v1/sandboxes/sbx_1/previews/prv_1",
        httpx.Response(204),
        on_handle=True,
    ),
]
HANDLE_ONLY = [
    Case(
        "artifacts",
        "list",
        (SBX,),
        "GET",
        "/v1/sandboxes/sbx_1/artifacts",
        page(p.artifact()),
        kwargs={"limit": 3},
        params={"limit": "3"},
        on_handle=True,
        check=lambda r: r.id == "art_1",
    ),
]


def _route(api: respx.MockRouter, case: Case) -> respx.Route:
    return api.route(method=case.http, path=case.path).mock(return_value=case.response)


def _check_request(route: respx.Route, case: Case) -> None:
    assert route.call_count == 1
    request = route.calls.last.request
    assert _query(request) == case.params
    if isinstance(case.body, bytes):
        assert request.content == case.body
        assert request.headers["content-type"] == case.content_type
    elif case.body is not None:
        assert json.loads(request.content) == case.body
    else:
        assert request.content == b""
    for name, value in case.headers.items():
        assert request.headers[name] == value
    assert request.headers["authorization"].startswith("Bearer cn_test_")
    assert request.headers["user-agent"].startswith("crownest-python/")


def _query(request: httpx.Request) -> dict[str, Any]:
    """The query as a dict; a repeated key maps to the list of its values."""
    params = request.url.params
    return {key: (params.get_list(key) if len(params.get_list(key)) > 1 else params[key]) for key in params}


def _result(value: Any) -> Any:
    """The only item of a pager result, or the result itself."""
    if isinstance(value, SyncPager):
        [item] = list(value)
        return item
    if isinstance(value, Stream):
        with value:
            return list(value)
    return value


async def _async_result(value: Any) -> Any:
    if inspect.isawaitable(value):
        value = await value
    if isinstance(value, AsyncPager):
        [item] = [item async for item in value]
        return item
    if isinstance(value, AsyncStream):
        async with value:
            return [item async for item in value]
    return value


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sync(api: respx.MockRouter, client: CrowNest, case: Case) -> None:
    route = _route(api, case)
    result = _result(getattr(getattr(client, case.resource), case.method)(*case.args, **case.kwargs))
    _check_request(route, case)
    assert case.check(result)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_async(api: respx.MockRouter, async_client: AsyncCrowNest, case: Case) -> None:
    route = _route(api, case)
    result = await _async_result(getattr(getattr(async_client, case.resource), case.method)(*case.args, **case.kwargs))
    _check_request(route, case)
    assert case.check(result)


BOUND = [c for c in [*CASES, *HANDLE_ONLY] if c.on_handle]


@pytest.mark.parametrize("case", BOUND, ids=lambda c: c.id)
def test_sync_handle(api: respx.MockRouter, client: CrowNest, case: Case) -> None:
    api.get("/v1/sandboxes/sbx_1").mock(return_value=ok(p.sandbox()))
    sandbox = client.sandboxes.get(SBX)
    assert isinstance(sandbox, SandboxHandle)
    route = _route(api, case)
    result = _result(getattr(getattr(sandbox, case.resource), case.method)(*case.args[1:], **case.kwargs))
    _check_request(route, case)
    assert case.check(result)


@pytest.mark.parametrize("case", BOUND, ids=lambda c: c.id)
async def test_async_handle(api: respx.MockRouter, async_client: AsyncCrowNest, case: Case) -> None:
    api.get("/v1/sandboxes/sbx_1").mock(return_value=ok(p.sandbox()))
    sandbox = await async_client.sandboxes.get(SBX)
    assert isinstance(sandbox, AsyncSandboxHandle)
    route = _route(api, case)
    method = getattr(getattr(sandbox, case.resource), case.method)
    result = await _async_result(method(*case.args[1:], **case.kwargs))
    _check_request(route, case)
    assert case.check(result)


OWN = [c for c in CASES if c.handle_method]


@pytest.mark.parametrize("case", OWN, ids=lambda c: c.id)
def test_sync_handle_own_method(api: respx.MockRouter, client: CrowNest, case: Case) -> None:
    sandbox = SandboxHandle(client, Sandbox.from_dict(p.sandbox()))
    route = _route(api, case)
    result = getattr(sandbox, str(case.handle_method))(*case.args[1:], **case.kwargs)
    _check_request(route, case)
    assert case.handle_check(result, sandbox)


@pytest.mark.parametrize("case", OWN, ids=lambda c: c.id)
async def test_async_handle_own_method(api: respx.MockRouter, async_client: AsyncCrowNest, case: Case) -> None:
    sandbox = AsyncSandboxHandle(async_client, Sandbox.from_dict(p.sandbox()))
    route = _route(api, case)
    result = await getattr(sandbox, str(case.handle_method))(*case.args[1:], **case.kwargs)
    _check_request(route, case)
    assert case.handle_check(result, sandbox)


def test_every_public_method_has_a_case(client: CrowNest) -> None:
    covered = {(c.resource, c.method) for c in CASES}
    for resource in list(CLIENT_RESOURCES):
        methods = {name for name in dir(getattr(client, resource)) if not name.startswith("_")}
        assert {(resource, m) for m in methods} <= covered, resource


def test_every_handle_method_has_a_case(client: CrowNest, api: respx.MockRouter) -> None:
    api.get("/v1/sandboxes/sbx_1").mock(return_value=ok(p.sandbox()))
    sandbox = client.sandboxes.get(SBX)
    covered = {(c.resource, c.method) for c in BOUND}
    for resource in list(SANDBOX_RESOURCES):
        methods = {name for name in dir(getattr(sandbox, resource)) if not name.startswith("_")}
        assert {(resource, m) for m in methods} == {(r, m) for r, m in covered if r == resource}
    assert set(SANDBOX_METHODS) == {c.handle_method for c in OWN}


def test_the_next_page_repeats_the_request_with_the_cursor(api: respx.MockRouter, client: CrowNest) -> None:
    pages = {
        None: ok({"data": [p.sandbox(id="sbx_2")], "nextCursor": "c2"}),
        "c2": ok({"data": [p.sandbox(id="sbx_1")], "nextCursor": None}),
    }
    route = api.get("/v1/sandboxes").mock(side_effect=lambda request: pages[request.url.params.get("cursor")])
    pager = client.sandboxes.list(status="running", limit=1)
    assert [s.id for s in pager] == ["sbx_2", "sbx_1"]
    first, second = (dict(call.request.url.params) for call in route.calls)  # each page fetched once
    assert first == {"status": "running", "limit": "1"}
    assert second == {"status": "running", "limit": "1", "cursor": "c2"}
    assert pager.first_page().next_cursor == "c2"  # a fresh request for the first page
    assert route.call_count == 3


def test_a_server_that_repeats_a_cursor_cannot_make_a_pager_loop(api: respx.MockRouter, client: CrowNest) -> None:
    api.get("/v1/sandboxes").mock(return_value=ok({"data": [p.sandbox()], "nextCursor": "same"}))
    with pytest.raises(CrowNestError, match="cursor 'same' again"):
        list(client.sandboxes.list())
    assert api.calls.call_count == 2
