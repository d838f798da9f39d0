"""The file API against a sandbox that swaps a folder and a link to a host folder while it works.

A command in the sandbox exchanges `d` (a folder) and `l` (a link to a folder
on the host, outside the data folder) with `renameat2(RENAME_EXCHANGE)` in a
loop, and puts back what a call removed. Every file operation then runs
`ATTEMPTS` times on a path through `d`. The host folder must stay exactly as
it was: its canary never read, listed, described, copied, changed, moved or
deleted, nothing added to it; no temporary file may appear beside it, beside
the sandbox's folder or in the data folder, or stay in the sandbox; and no
answer may be a 5xx or break off.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from crownest import CrowNest, CrowNestApiError, CrowNestConnectionError
from crownest._handle import SandboxHandle
from crownest_local import LocalServer

ATTEMPTS = 300
CANARY = b"host canary: never read, listed, changed, deleted or copied by the file API\n"
MARKER = "host-only.txt"
HOST_TREE: dict[str, bytes | None] = {"canary.txt": CANARY, MARKER: CANARY, "sub": None, "sub/canary.txt": CANARY}

SWAPPER = r"""
import ctypes, os, sys

libc = ctypes.CDLL(None, use_errno=True)
host = sys.argv[1]


def repair():
    for name, other in (("d", "l"), ("l", "d")):
        if not os.path.lexists(name):
            os.symlink(host, name) if not os.path.islink(other) else os.mkdir(name)
    real = "l" if os.path.islink("d") else "d"
    os.makedirs(real + "/sub", exist_ok=True)
    for name in ("canary.txt", "sub/canary.txt"):
        if not os.path.lexists(f"{real}/{name}"):
            with open(f"{real}/{name}", "wb") as f:
                f.write(b"mine")


repair()
print("swapping", flush=True)
swaps = 0
while True:
    swaps += 1
    if libc.renameat2(-100, b"d", -100, b"l", 2) != 0 or swaps % 64 == 0:
        try:
            repair()
        except OSError:
            pass
"""


def host_tree(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` (hidden ones too), with a file's content or None for anything else."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() if path.is_file() and not path.is_symlink() else None
        for path in sorted(folder.rglob("*"))
    }


def restore(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_dir() and not path.is_symlink():
            path.rmdir() if not any(path.iterdir()) else None
        elif path.relative_to(folder).as_posix() not in HOST_TREE:
            path.unlink()
    for name, content in HOST_TREE.items():
        if content is None:
            (folder / name).mkdir(exist_ok=True)
        else:
            (folder / name).write_bytes(content)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("host")
    restore(folder)
    return folder


def temporary_files(folder: Path, *, deep: bool = False) -> list[str]:
    """The file API's temporary files (`.upload-*`, `.move-*`) in `folder` (and below it, following no link)."""
    names = [name for _, dirs, files in os.walk(folder) for name in dirs + files] if deep else os.listdir(folder)
    return [name for name in names if name.startswith((".upload-", ".move-"))]


@pytest.fixture(scope="module")
def swapping(each_isolation: LocalServer, host: Path) -> Iterator[tuple[CrowNest, SandboxHandle, Path]]:
    """A sandbox whose command swaps `d` and `l` (a link to `host`) until the module's tests end; its folder."""
    assert each_isolation.data_dir is not None
    with each_isolation.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="python", ttl_ms=600_000)
        sandbox.files.write("swap.py", SWAPPER)
        swapper = sandbox.commands.start(f"python3 swap.py '{host}'", timeout_ms=600_000)
        with swapper.output() as chunks:
            assert next(iter(chunks)).data.startswith("swapping")
        yield client, sandbox, each_isolation.sandbox_folder(sandbox.id)
        swapper.kill()
        sandbox.kill()


def read_all(sandbox: SandboxHandle, path: str) -> bytes:
    with sandbox.files.stream(path) as chunks:
        return b"".join(chunks)


def tar_names_and_contents(client: CrowNest, sandbox: SandboxHandle, path: str) -> bytes:
    artifact = sandbox.artifacts.create(path=path)
    with tarfile.open(fileobj=io.BytesIO(client.artifacts.download(artifact.id))) as tar:
        seen = [member.name.encode() for member in tar.getmembers()]
        contents = [f.read() for m in tar.getmembers() if m.isfile() and (f := tar.extractfile(m)) is not None]
    return b"\n".join(seen + contents)


def attacks(client: CrowNest, sandbox: SandboxHandle) -> dict[str, Callable[[], object]]:
    """Each operation on a path through `d`; what it answers must not hold the canary or the host's names."""
    canary_sha = hashlib.sha256(CANARY).hexdigest()
    local = Path(tempfile.mkdtemp())  # d/sub/canary.txt, for upload_dir: its members go through `d`
    (local / "d" / "sub").mkdir(parents=True)
    (local / "d" / "sub" / "canary.txt").write_bytes(b"overwritten")

    def move_in() -> object:
        sandbox.files.write("mine.txt", b"mine")
        return sandbox.files.move("mine.txt", "d/planted.txt", overwrite=True)

    return {
        "write": lambda: sandbox.files.write("d/canary.txt", b"overwritten"),
        "read": lambda: sandbox.files.read("d/canary.txt"),
        "stream": lambda: read_all(sandbox, "d/sub/canary.txt"),
        "delete": lambda: sandbox.files.delete("d/sub", recursive=True),
        "move out": lambda: sandbox.files.move("d/canary.txt", "taken.txt", overwrite=True),
        "move in": move_in,
        "mkdir": lambda: sandbox.files.mkdir("d/made/deeper"),
        "list": lambda: [entry.name for entry in sandbox.files.list("d")],
        "info": lambda: sandbox.files.info("d/canary.txt").size_bytes,
        "artifact": lambda: sandbox.artifacts.create(path="d/canary.txt").sha256 == canary_sha,
        "artifact tar": lambda: tar_names_and_contents(client, sandbox, "d"),
        "write many": lambda: sandbox.files.write_many({"d/canary.txt": "overwritten", "d/sub/new.txt": "new"}),
        "upload dir": lambda: sandbox.files.upload_dir(local, "."),
        "download dir": lambda: sandbox.files.read_archive("d"),
    }


def leaks(result: object) -> bool:
    """Whether an answer shows the canary: its content, its host-only name, its size or its digest."""
    if isinstance(result, bytes):
        return CANARY in result or MARKER.encode() in result
    if isinstance(result, list):
        return MARKER in result
    if isinstance(result, int) and not isinstance(result, bool):
        return result == len(CANARY)
    return result is True


@pytest.mark.parametrize(
    "operation",
    [
        "write",
        "read",
        "stream",
        "delete",
        "move out",
        "move in",
        "mkdir",
        "list",
        "info",
        "artifact",
        "artifact tar",
        "write many",
        "upload dir",
        "download dir",
    ],
)
def test_a_swapped_link_never_takes_the_file_api_out(
    operation: str, swapping: tuple[CrowNest, SandboxHandle, Path], host: Path
) -> None:
    client, sandbox, folder = swapping
    attack = attacks(client, sandbox)[operation]
    outside = (host.parent, folder.parent, folder.parent.parent)  # beside the host folder, the sandbox, the data
    harm: Counter[str] = Counter()
    for _ in range(ATTEMPTS):
        try:
            result = attack()
        except CrowNestApiError as error:
            harm["5xx answers"] += error.status >= 500
            continue
        except CrowNestConnectionError:
            harm["answers broken off"] += 1
            continue
        finally:
            if host_tree(host) != HOST_TREE:
                harm["host folder changed"] += 1
                restore(host)
            harm["temporary files outside the sandbox"] += any(map(temporary_files, outside))
        harm["canary leaked in the answer"] += leaks(result)
    harm["temporary files left in the sandbox"] += len(temporary_files(folder, deep=True))
    assert +harm == Counter(), f"{operation}, {ATTEMPTS} attempts: {dict(+harm)}"
