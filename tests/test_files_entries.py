"""FIFOs, sockets and device nodes through the file API; very deep trees; who owns what it creates.

A FIFO, socket or device node is listed and described as `other`, never read
or copied (409 `unsupported_file_type`, at once: a FIFO's read would block),
left out of a folder's archive, and deleted or replaced like any entry. A tree
deeper than Python's recursion limit and than the open-file limit is archived,
deleted, and removed with its sandbox. When the sandbox folder has an `owner`,
everything the file API creates is theirs.
"""

from __future__ import annotations

import io
import os
import resource
import socket
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crownest import CrowNest, CrowNestApiError
from crownest._handle import SandboxHandle
from crownest_local import LocalServer
from crownest_local._isolation import SandboxFolder
from crownest_local._service import Service

DEPTH = 1500
DEEP_TREE = (
    f"python3 -c \"import os\nfor _ in range({DEPTH}): os.mkdir('x'); os.chdir('x')\nopen('leaf', 'w').close()\""
)
KINDS = ["fifo", "socket", *(["device"] if os.geteuid() == 0 else [])]  # mknod of a device needs root
NOBODY = (65534, 65534)


def make(kind: str, path: Path) -> None:
    """Put a FIFO, a listening Unix socket's file or /dev/null's device node at `path` (from the host)."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        with socket.socket(socket.AF_UNIX) as listener:
            listener.bind(str(path))
    else:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))


@pytest.fixture(scope="module")
def sandbox(each_isolation: LocalServer) -> Iterator[tuple[CrowNest, SandboxHandle, Path]]:
    with each_isolation.client(max_retries=0, timeout=10) as client:
        handle = client.sandboxes.create(template="base")
        assert each_isolation.data_dir is not None
        yield client, handle, each_isolation.sandbox_folder(handle.id) / "home"
        handle.kill()


@pytest.mark.parametrize("kind", KINDS)
def test_special_entries_are_described_but_never_read_or_copied(
    kind: str, sandbox: tuple[CrowNest, SandboxHandle, Path]
) -> None:
    client, handle, home = sandbox
    handle.files.write(f"{kind}/plain.txt", "plain")
    make(kind, home / kind / "entry")

    def stream() -> bytes:
        with handle.files.stream(f"{kind}/entry") as chunks:
            return b"".join(chunks)

    refused: dict[str, Callable[[], Any]] = {
        "read": lambda: handle.files.read(f"{kind}/entry"),
        "stream": stream,
        "artifact": lambda: handle.artifacts.create(path=f"{kind}/entry"),
    }
    for name, attempt in refused.items():
        with pytest.raises(CrowNestApiError) as caught:
            attempt()
        assert (caught.value.status, caught.value.code) == (409, "unsupported_file_type"), name
    assert handle.files.info(f"{kind}/entry").type_ == "other"
    assert {e.name: e.type_ for e in handle.files.list(kind)} == {"entry": "other", "plain.txt": "file"}
    archive = handle.artifacts.create(path=kind)
    with tarfile.open(fileobj=io.BytesIO(client.artifacts.download(archive.id))) as tar:
        assert tar.getnames() == [kind, f"{kind}/plain.txt"]

    handle.files.write(f"{kind}/entry", "replaced")
    assert handle.files.read_text(f"{kind}/entry") == "replaced"
    make(kind, home / kind / "again")
    handle.files.delete(f"{kind}/again")
    assert sorted(p.name for p in (home / kind).iterdir()) == ["entry", "plain.txt"]


@pytest.mark.parametrize("depth", [1, 2], ids=["in a thread", "by a lister process"])
def test_a_name_that_is_not_utf8_is_listed_with_replacement_characters(
    depth: int, sandbox: tuple[CrowNest, SandboxHandle, Path]
) -> None:
    """A command may name a file with any bytes; the listing (JSON, so UTF-8) shows them as U+FFFD."""
    _, handle, home = sandbox
    handle.files.write(f"latin1-{depth}/ok.txt", "ok")
    (home / f"latin1-{depth}" / os.fsdecode(b"caf\xe9.txt")).write_text("x")
    listed = handle.files.list(f"latin1-{depth}", depth=depth)
    assert sorted(entry.name for entry in listed) == ["caf\ufffd.txt", "ok.txt"]


@pytest.fixture
def few_descriptors() -> Iterator[None]:
    """This process (the server's) may open only 200 more files than it has open now, until the test ends."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 200, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("few_descriptors")
def test_a_tree_deeper_than_any_limit_is_written_read_archived_deleted_and_removed_with_its_sandbox(
    crownest_local: LocalServer,
) -> None:
    assert crownest_local.data_dir is not None
    with crownest_local.client(max_retries=0, timeout=120) as client:
        sandbox = client.sandboxes.create(template="python")
        assert sandbox.commands.run(f"mkdir deep && cd deep && {DEEP_TREE}").exit_code == 0
        archive = sandbox.artifacts.create(path="deep")
        with tarfile.open(fileobj=io.BytesIO(client.artifacts.download(archive.id))) as tar:
            assert tar.getnames()[-1] == "deep/" + "x/" * DEPTH + "leaf"
        sandbox.files.delete("deep", recursive=True)
        assert list(sandbox.files.list(".")) == []
        long_path = "p/" * DEPTH + "leaf"
        sandbox.files.write(long_path, "at the bottom")  # every folder on the way made by the file API
        assert sandbox.files.read_text(long_path) == "at the bottom"
        sandbox.files.move(long_path, "leaf")
        sandbox.files.delete("p", recursive=True)
        assert [entry.name for entry in sandbox.files.list(".")] == ["leaf"]
        assert sandbox.commands.run(DEEP_TREE).exit_code == 0
        sandbox.kill()
        assert not crownest_local.sandbox_folder(sandbox.id).exists()


@pytest.fixture
def owned(crownest_local: LocalServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SandboxHandle, Path]]:
    """A sandbox whose folder has an owner: what the isolation of commands as a dedicated user plugs in."""

    def folder(service: Service, sandbox_id: str) -> SandboxFolder:
        return SandboxFolder(service.sandboxes_dir / sandbox_id, owner=NOBODY)

    monkeypatch.setattr(Service, "folder", folder)
    with crownest_local.client(max_retries=0) as client:
        handle = client.sandboxes.create(template="base")
        assert crownest_local.data_dir is not None
        yield handle, crownest_local.sandbox_folder(handle.id)
        handle.kill()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files to another user needs root")
def test_everything_the_file_api_creates_belongs_to_the_owner(owned: tuple[SandboxHandle, Path]) -> None:
    handle, folder = owned
    handle.files.write("a/b/c.txt", "c")
    handle.files.write("/tmp/t.txt", "t")
    handle.files.mkdir("x/y")
    handle.files.write("moved.txt", "m")
    handle.files.move("moved.txt", "m/n/moved.txt")
    created = [p for p in folder.rglob("*") if p.relative_to(folder).parts[0] != "net"]  # net/: the network helper's
    assert {p.relative_to(folder).as_posix() for p in created} == {
        "home", "tmp", "tmp/t.txt", "home/a", "home/a/b", "home/a/b/c.txt", "home/x", "home/x/y",
        "home/m", "home/m/n", "home/m/n/moved.txt",
    }  # fmt: skip
    assert {(p.relative_to(folder).as_posix(), p.stat().st_uid, p.stat().st_gid) for p in created} == {
        (p.relative_to(folder).as_posix(), *NOBODY) for p in created
    }
