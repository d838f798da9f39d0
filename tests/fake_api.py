"""A small in-process stand-in for the API, for running the product page's examples under respx.

It keeps sandboxes as temporary folders and really runs commands there with
`/bin/sh -c`, so the examples' output is computed, not canned. It covers the
operations the examples use; CrowNest Local is the full server.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

BASE_URL = "https://api.crownest.dev"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message, "details": {}, "requestId": "req_fake"}}
    )


class FakeApi:
    """Dispatches requests by method and path; `close()` removes the sandbox folders."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="crownest-fake-"))
        self.sandboxes: dict[str, dict[str, Any]] = {}
        self.artifacts: dict[str, tuple[dict[str, Any], bytes]] = {}
        self._ids = itertools.count(1)
        self._routes: list[tuple[str, str, Callable[..., httpx.Response]]] = [
            ("POST", r"/v1/sandboxes", self.create_sandbox),
            ("GET", r"/v1/sandboxes", self.list_sandboxes),
            ("GET", r"/v1/sandboxes/(?P<sid>[^/]+)", self.get_sandbox),
            ("DELETE", r"/v1/sandboxes/(?P<sid>[^/]+)", self.kill_sandbox),
            ("PUT", r"/v1/sandboxes/(?P<sid>[^/]+)/files/content", self.write_file),
            ("POST", r"/v1/sandboxes/(?P<sid>[^/]+)/commands/run", self.run_command),
            ("POST", r"/v1/sandboxes/(?P<sid>[^/]+)/artifacts", self.create_artifact),
            ("GET", r"/v1/artifacts/(?P<aid>[^/]+)/content", self.download_artifact),
        ]

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        for method, pattern, handler in self._routes:
            match = re.fullmatch(pattern, request.url.path)
            if method == request.method and match:
                return handler(request, **match.groupdict())
        return _error(404, "not_found", f"No route {request.method} {request.url.path}.")

    def _sandbox(self, sid: str) -> dict[str, Any] | None:
        return self.sandboxes.get(sid)

    def _folder(self, sid: str) -> Path:
        return self.root / sid

    def create_sandbox(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sid = f"sbx_{next(self._ids)}"
        ttl = body.get("ttlMs", 300000)
        created = datetime.now(UTC)
        self._folder(sid).mkdir()
        self.sandboxes[sid] = {
            "id": sid,
            "template": body["template"],
            "status": "running",
            "metadata": body.get("metadata", {}),
            "ttlMs": ttl,
            "createdAt": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expiresAt": (created + timedelta(milliseconds=ttl)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "endedAt": None,
        }
        return httpx.Response(201, json=self.sandboxes[sid])

    def list_sandboxes(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": list(reversed(self.sandboxes.values())), "nextCursor": None})

    def get_sandbox(self, request: httpx.Request, sid: str) -> httpx.Response:
        sandbox = self._sandbox(sid)
        if sandbox is None:
            return _error(404, "sandbox_not_found", f"Sandbox {sid} does not exist.")
        return httpx.Response(200, json=sandbox)

    def kill_sandbox(self, request: httpx.Request, sid: str) -> httpx.Response:
        sandbox = self._sandbox(sid)
        if sandbox is None:
            return _error(404, "sandbox_not_found", f"Sandbox {sid} does not exist.")
        if sandbox["status"] == "running":
            sandbox.update(status="killed", endedAt=_now())
        return httpx.Response(204)

    def write_file(self, request: httpx.Request, sid: str) -> httpx.Response:
        path = self._folder(sid) / request.url.params["path"]
        path.write_bytes(request.content)
        info = {
            "path": f"/home/user/{path.name}",
            "name": path.name,
            "type": "file",
            "sizeBytes": len(request.content),
            "mode": 420,
            "modifiedAt": _now(),
        }
        return httpx.Response(200, json=info)

    def run_command(self, request: httpx.Request, sid: str) -> httpx.Response:
        body = json.loads(request.content)
        started = _now()
        # `python` in a sandbox is the interpreter running the tests.
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
        done = subprocess.run(
            ["/bin/sh", "-c", body["command"]], cwd=self._folder(sid), env=env, capture_output=True, timeout=60
        )
        return httpx.Response(
            200,
            json={
                "id": f"cmd_{next(self._ids)}",
                "sandboxId": sid,
                "command": body["command"],
                "cwd": "/home/user",
                "status": "succeeded" if done.returncode == 0 else "failed",
                "exitCode": done.returncode,
                "stdout": done.stdout.decode(errors="replace"),
                "stderr": done.stderr.decode(errors="replace"),
                "stdoutTruncated": False,
                "stderrTruncated": False,
                "timeoutMs": 60000,
                "startedAt": started,
                "finishedAt": _now(),
                "durationMs": 1,
            },
        )

    def create_artifact(self, request: httpx.Request, sid: str) -> httpx.Response:
        body = json.loads(request.content)
        path = self._folder(sid) / body["path"]
        if not path.is_file():
            return _error(404, "file_not_found", f"No file at {body['path']}.")
        content = path.read_bytes()
        aid = f"art_{next(self._ids)}"
        artifact = {
            "id": aid,
            "sandboxId": sid,
            "path": f"/home/user/{body['path']}",
            "name": path.name,
            "sizeBytes": len(content),
            "sha256": hashlib.sha256(content).hexdigest(),
            "contentType": "text/plain",
            "createdAt": _now(),
            "expiresAt": _now(),
        }
        self.artifacts[aid] = (artifact, content)
        return httpx.Response(201, json=artifact)

    def download_artifact(self, request: httpx.Request, aid: str) -> httpx.Response:
        if aid not in self.artifacts:
            return _error(404, "artifact_not_found", f"Artifact {aid} does not exist.")
        return httpx.Response(200, content=self.artifacts[aid][1])
