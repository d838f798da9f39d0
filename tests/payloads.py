"""Response bodies as the API sends them, shared by the tests."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

T0 = "2026-11-26T12:00:00Z"
T1 = "2026-11-26T12:05:00Z"


def sandbox(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "sbx_1",
        "template": "python",
        "status": "running",
        "metadata": {"job": "primes-demo"},
        "ttlMs": 300000,
        "createdAt": T0,
        "expiresAt": T1,
        "endedAt": None,
        "limits": {
            "cpuCount": 1,
            "memoryMb": 512,
            "diskMb": 1024,
            "maxProcesses": 256,
            "enforcedBy": {"cpu": "cgroup-v2", "memory": "cgroup-v2", "disk": "usage-check", "processes": "cgroup-v2"},
        },
        **overrides,
    }


def metrics(**overrides: Any) -> dict[str, Any]:
    return {
        "cpuPercent": 12.5,
        "cpuTimeMs": 1500,
        "memoryBytes": 1 << 20,
        "diskBytes": 4096,
        "processCount": 2,
        "limits": sandbox()["limits"],
        **overrides,
    }


def snapshot(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "snp_1",
        "name": "s",
        "sandboxId": "sbx_1",
        "template": "python",
        "sizeBytes": 4096,
        "createdAt": T0,
        **overrides,
    }


def command(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "cmd_1",
        "sandboxId": "sbx_1",
        "command": "echo hi",
        "cwd": "/home/user",
        "status": "succeeded",
        "exitCode": 0,
        "stdout": "hi\n",
        "stderr": "",
        "stdoutTruncated": False,
        "stderrTruncated": False,
        "outputTruncated": False,
        "timeoutMs": 60000,
        "startedAt": T0,
        "finishedAt": T1,
        "durationMs": 12,
        **overrides,
    }


def pty(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "pty_1",
        "sandboxId": "sbx_1",
        "command": "/bin/bash -l",
        "cwd": "/home/user",
        "cols": 80,
        "rows": 24,
        "status": "running",
        "exitCode": None,
        "outputTruncated": False,
        "startedAt": T0,
        "finishedAt": None,
        **overrides,
    }


def file_info(**overrides: Any) -> dict[str, Any]:
    return {
        "path": "/home/user/a.txt",
        "name": "a.txt",
        "type": "file",
        "sizeBytes": 2,
        "mode": 420,
        "modifiedAt": T0,
        **overrides,
    }


def project_folder(folder: Path) -> Path:
    """A local folder holding `a.txt` ("hi", mode 644, modified at 0), which `upload_dir` sends as `TAR`."""
    folder.mkdir(exist_ok=True)
    (folder / "a.txt").write_bytes(b"hi")
    os.chmod(folder / "a.txt", 0o644)
    os.utime(folder / "a.txt", (0, 0))
    return folder


def _tar() -> bytes:
    """`a.txt` ("hi", mode 644, modified at 0) as a PAX tar, the way the SDK writes one."""
    out = io.BytesIO()
    info = tarfile.TarInfo("a.txt")
    info.size, info.mode, info.mtime = 2, 0o644, 0
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(b"hi"))
    return out.getvalue()[: 512 * 2] + bytes(1024)  # the header and content, then the end marker only


TAR = _tar()


def archive_written(**overrides: Any) -> dict[str, Any]:
    return {"path": "/home/user/proj", "files": 1, "directories": 0, "symlinks": 0, "bytesWritten": 2, **overrides}


def artifact(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "art_1",
        "sandboxId": "sbx_1",
        "path": "/home/user/primes.txt",
        "name": "primes.txt",
        "sizeBytes": 5,
        "sha256": "0" * 64,
        "contentType": "text/plain",
        "createdAt": T0,
        "expiresAt": T1,
        **overrides,
    }


def preview(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "prv_1",
        "sandboxId": "sbx_1",
        "port": 8080,
        "url": "https://prv-1.crownest.dev",
        "visibility": "private",
        "token": "tok_preview_secret",
        "createdAt": T0,
        **overrides,
    }


def template(**overrides: Any) -> dict[str, Any]:
    return {"id": "python", "description": "Python 3", **overrides}


def error(code: str, message: str = "It failed.", **details: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details, "requestId": "req_1"}}


def watch(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "wch_1",
        "sandboxId": "sbx_1",
        "path": "/home/user",
        "recursive": True,
        "status": "active",
        "createdAt": "2026-01-01T00:00:00Z",
        "endedAt": None,
        "endReason": None,
    } | overrides
