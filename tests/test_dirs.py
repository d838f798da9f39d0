"""Whole directories in one request: `upload_dir`, `download_dir` and `write_many`, sync and async,
against CrowNest Local; and the archive rules, with crafted tar members sent straight to the endpoint."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import test_local_security
from crownest import BadRequestError, ConflictError, CrowNest, ResponseValidationError
from crownest._handle import SandboxHandle
from crownest_local import LocalServer
from test_local_security import ABSOLUTE_OUTSIDE, CORPUS, LEXICAL_ESCAPES, THROUGH_SYMLINKS, outside_untouched

HERE = Path(__file__).parent
# The security suite's fixtures, for its attacks repeated as archive members: a server in each
# isolation mode, a host folder outside it, and a sandbox with symlinks planted that point out.
server = test_local_security.server
outside = test_local_security.outside
planted = test_local_security.planted


def make_project(root: Path) -> Path:
    """A small project with what trees hold: nesting, an empty folder, binary and empty files,
    a non-ASCII and a long name, an executable and two symlinks that stay inside."""
    (root / "src/pkg/deep/er").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "src/pkg/__init__.py").write_text("")
    (root / "src/pkg/main.py").write_text("print('hi')\n")
    (root / "src/pkg/deep/er/data.bin").write_bytes(bytes(range(256)) * 1000)
    (root / "héllo wörld.txt").write_text("ünïcode\n")
    (root / ("n" * 180 + ".txt")).write_bytes(b"long name")
    (root / "run.sh").write_text("#!/bin/sh\necho run\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("src/pkg/main.py", root / "main-link")
    os.symlink("../..", root / "src/pkg/up")
    return root


def snapshot(root: Path) -> dict[str, tuple[str, Any]]:
    """Every entry beneath `root`: (kind, content, link target, or None for a folder), and file modes."""
    tree: dict[str, tuple[str, Any]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                tree[key] = ("link", os.readlink(path))
            elif path.is_dir():
                tree[key] = ("dir", None)
            else:
                tree[key] = ("file", (path.read_bytes(), stat.S_IMODE(path.stat().st_mode) & 0o111))
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
    return tree


@pytest.fixture
def sandbox(crownest_local: LocalServer) -> Iterator[SandboxHandle]:
    with crownest_local.client() as client:
        sandbox = client.sandboxes.create(template="python")
        yield sandbox
        sandbox.kill()


def test_a_project_goes_up_and_comes_back_the_same(sandbox: SandboxHandle, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")
    sent: list[tuple[int, int | None]] = []
    written = sandbox.files.upload_dir(project, "work/proj", progress=lambda done, total: sent.append((done, total)))
    assert (written.path, written.files, written.symlinks) == ("/home/user/work/proj", 6, 2)
    assert written.bytes_written == 256_000 + len("print('hi')\n") + len("ünïcode\n".encode()) + 9 + 19
    assert sent[0][0] == 0 and sent[-1][0] == sent[-1][1]  # counted to the announced total
    assert sandbox.files.read("work/proj/src/pkg/main.py") == b"print('hi')\n"
    assert sandbox.commands.run("cd work/proj && ./run.sh && cat main-link").stdout == "run\nprint('hi')\n"
    received: list[int] = []
    count = sandbox.files.download_dir("work/proj", tmp_path / "back", progress=lambda done, _: received.append(done))
    assert count == len(snapshot(project))
    assert snapshot(tmp_path / "back") == snapshot(project)
    os.utime(project / "run.sh", (0, 1_000_000_000))  # kept both ways, to the second, as tar does
    sandbox.files.upload_dir(project, "work/proj")
    sandbox.files.download_dir("work/proj", tmp_path / "back")
    assert (tmp_path / "back" / "run.sh").stat().st_mtime == 1_000_000_000
    assert received == sorted(received) and received[-1] > 256_000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tar")]  # the temporary archive is gone


def test_async_a_project_goes_up_and_comes_back_the_same(crownest_local: LocalServer, tmp_path: Path) -> None:
    project = make_project(tmp_path / "project")

    async def main() -> None:
        async with crownest_local.async_client() as client:
            sandbox = await client.sandboxes.create(template="python")
            try:
                written = await sandbox.files.upload_dir(project, "/tmp/proj")
                assert (written.path, written.files, written.directories) == ("/tmp/proj", 6, 5)
                many = await sandbox.files.write_many({"/tmp/proj/new.txt": "new", "/tmp/proj/src/b.bin": b"\x00"})
                assert (many.path, many.files) == ("/tmp/proj", 2)
                count = await sandbox.files.download_dir("/tmp/proj", tmp_path / "back")
            finally:
                await sandbox.kill()
        assert count == len(snapshot(project)) + 2
        expected = {**snapshot(project), "new.txt": ("file", (b"new", 0)), "src/b.bin": ("file", (b"\x00", 0))}
        assert snapshot(tmp_path / "back") == expected

    asyncio.run(main())


def test_write_many_writes_small_sets_in_one_request(sandbox: SandboxHandle) -> None:
    written = sandbox.files.write_many({"a.txt": "1", "sub/b.txt": b"2", "sub/deeper/c.txt": "3"})
    assert (written.path, written.files, written.bytes_written) == ("/home/user", 3, 3)
    assert [sandbox.files.read(p) for p in ("a.txt", "sub/b.txt", "sub/deeper/c.txt")] == [b"1", b"2", b"3"]
    again = sandbox.files.write_many({"/home/user/sub/b.txt": "two"})  # replaces
    assert again.path == "/home/user/sub" and sandbox.files.read("sub/b.txt") == b"two"


def test_uploads_into_existing_trees_replace_files_and_keep_the_rest(sandbox: SandboxHandle, tmp_path: Path) -> None:
    sandbox.files.write_many({"proj/keep.txt": "kept", "proj/main.py": "old", "proj/link": "a file, to be a link"})
    project = tmp_path / "p"
    project.mkdir()
    (project / "main.py").write_text("new")
    os.symlink("main.py", project / "link")
    sandbox.files.upload_dir(project, "proj")
    assert sandbox.files.read("proj/main.py") == b"new"
    assert sandbox.files.read("proj/keep.txt") == b"kept"
    assert sandbox.files.info("proj/link").type_ == "symlink"


def test_files_that_change_while_sent_keep_their_listed_size(sandbox: SandboxHandle, tmp_path: Path) -> None:
    """The archive announced its size; a file that shrank is padded with zeros, one that grew is cut,
    one swapped for a FIFO is sent as zeros (never waited on), so the upload still succeeds."""
    project = tmp_path / "p"
    project.mkdir()
    for name in ("shrinks", "grows", "fifo"):
        (project / name).write_bytes(b"x" * 1000)

    def change(done: int, total: int | None) -> None:
        if done == 0:  # listed, nothing read yet
            (project / "shrinks").write_bytes(b"y" * 10)
            (project / "grows").write_bytes(b"z" * 5000)
            (project / "fifo").unlink()
            os.mkfifo(project / "fifo")

    sandbox.files.upload_dir(project, "changed", progress=change)
    assert sandbox.files.read("changed/shrinks") == b"y" * 10 + bytes(990)
    assert sandbox.files.read("changed/grows") == b"z" * 1000
    assert sandbox.files.read("changed/fifo") == bytes(1000)


def test_bad_local_input_is_refused_before_any_request(sandbox: SandboxHandle, tmp_path: Path) -> None:
    with pytest.raises(NotADirectoryError, match="local_dir"):
        sandbox.files.upload_dir(tmp_path / "missing", "x")
    with pytest.raises(TypeError, match="remote_dir"):
        sandbox.files.upload_dir(tmp_path, 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="remote_dir"):
        sandbox.files.download_dir(None, tmp_path)  # type: ignore[arg-type]
    outward = tmp_path / "outward"
    outward.mkdir()
    os.symlink("/etc/passwd", outward / "passwd")
    with pytest.raises(ValueError, match="absolute target"):
        sandbox.files.upload_dir(outward, "x")
    with pytest.raises(ValueError, match="absolute, or every path relative"):
        sandbox.files.write_many({"/tmp/a": "1", "b": "2"})
    with pytest.raises(TypeError, match=r"files\['a'\] must be str or bytes"):
        sandbox.files.write_many({"a": 1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="at most"):
        sandbox.files.write_many({"big": bytes(64 * 1024 * 1024 + 1)})
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(NotADirectoryError):
        sandbox.files.download_dir("/tmp", tmp_path / "a-file")
    assert not sandbox.files.exists("x")


def test_a_retry_sends_the_archive_again_from_the_folder(tmp_path: Path) -> None:
    """Only a mock can fail the first attempt after its body was sent."""
    project = make_project(tmp_path / "project")
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        if len(bodies) == 1:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy"}})
        body = {"path": "/home/user/p", "files": 6, "directories": 5, "symlinks": 2, "bytesWritten": 0}
        return httpx.Response(200, json=body)

    http = httpx.Client(transport=httpx.MockTransport(answer))
    with CrowNest(api_key="cn_test_x", base_url="https://api.test", http_client=http) as client, http:
        client.files.upload_dir("sbx_1", project, "p", max_retries=1)
    assert len(bodies) == 2 and bodies[0] == bodies[1]
    with tarfile.open(fileobj=io.BytesIO(bodies[1])) as tar:
        assert len(tar.getnames()) == len(snapshot(project))


def test_a_hostile_archive_from_the_server_is_a_bad_answer(tmp_path: Path) -> None:
    """Only a mock sends what CrowNest Local never does: names that climb out, hard links, garbage."""
    answers = [
        tar_of(("fine.txt", "file", ""), ("../outside.txt", "file", "x")),
        tar_of(("h", "hardlink", "fine.txt")),
        b"not a tar at all" * 100,
    ]
    http = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, content=answers.pop(0))))
    with CrowNest(api_key="cn_test_x", base_url="https://api.test", http_client=http) as client, http:
        with pytest.raises(ResponseValidationError, match=r"'\.\./outside\.txt' has '\.\.' in its name"):
            client.files.download_dir("sbx_1", "p", tmp_path / "in")
        with pytest.raises(ResponseValidationError, match="'h' is a hard link"):
            client.files.download_dir("sbx_1", "p", tmp_path / "in2")
        with pytest.raises(ResponseValidationError, match="could not be extracted"):
            client.files.download_dir("sbx_1", "p", tmp_path / "in3")
    assert sorted(os.listdir(tmp_path)) == ["in", "in2", "in3"] and os.listdir(tmp_path / "in") == ["fine.txt"]


def test_symlinks_that_point_out_are_left_out_of_a_download_with_a_warning(
    sandbox: SandboxHandle, tmp_path: Path
) -> None:
    script = "mkdir -p venv/bin && echo v > venv/ok && ln -s /usr/bin/python3 venv/bin/python && ln -s ../.. venv/up"
    sandbox.commands.run(script, check=True)
    with pytest.warns(UserWarning, match=r"left out 2 symlinks that point outside .*: 'up', 'bin/python'"):
        count = sandbox.files.download_dir("venv", tmp_path / "venv")
    assert count == 2 and sorted(os.listdir(tmp_path / "venv")) == ["bin", "ok"]
    assert not os.listdir(tmp_path / "venv" / "bin")


# Crafted archives sent straight to the endpoint (the SDK never makes them).


def tar_of(*members: tuple[str, str, str | bytes]) -> bytes:
    """A tar of (name, kind, content or link target) members; kind: file, dir, symlink, hardlink, fifo, chr."""
    out = io.BytesIO()
    types = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}
    types |= {"fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE}
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                data = value if isinstance(value, bytes) else value.encode()
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                continue
            info.type = types[kind]
            info.linkname = str(value)
            tar.addfile(info)
    return out.getvalue()


def put_archive(server: LocalServer, sandbox_id: str, path: str, body: bytes) -> httpx.Response:
    return httpx.put(
        f"{server.base_url}/v1/sandboxes/{sandbox_id}/files/archive",
        params={"path": path},
        content=body,
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/x-tar"},
        timeout=60,
    )


def test_member_n_failing_keeps_the_members_before_it_and_names_it(
    crownest_local: LocalServer, sandbox: SandboxHandle
) -> None:
    members = [("deep/er/one.txt", "file", "1"), ("two.txt", "file", "2"), ("../evil.txt", "file", "x")]
    body = tar_of(*members, ("z", "file", "z"))
    answer = put_archive(crownest_local, sandbox.id, "partial", body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_archive"
    assert error["details"] == {"member": "../evil.txt", "reason": "has '..' in its name", "membersWritten": 2}
    assert "'../evil.txt'" in error["message"]
    assert sorted(e.name for e in sandbox.files.list("partial")) == ["deep", "two.txt"]  # not "z"
    assert sandbox.files.read("partial/deep/er/one.txt") == b"1"


def test_type_conflicts_are_409_and_truncated_archives_400(crownest_local: LocalServer, sandbox: SandboxHandle) -> None:
    sandbox.files.write_many({"c/file": "f", "c/dir/x": "x"})
    for member in (("dir", "file", "over a folder"), ("file/inner", "file", "through a file")):
        answer = put_archive(crownest_local, sandbox.id, "c", tar_of(member))
        assert (answer.status_code, answer.json()["error"]["code"]) == (409, "archive_member_conflict"), member
    whole = tar_of(("big.bin", "file", bytes(100_000)))
    answer = put_archive(crownest_local, sandbox.id, "c", whole[:50_000])
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_archive")
    assert answer.json()["error"]["details"]["member"] == "big.bin"
    assert sorted(e.name for e in sandbox.files.list("c")) == ["dir", "file"]  # no temporary file left
    with pytest.raises(ConflictError):
        sandbox.files.upload_dir(HERE / "typing", "c/file")  # the destination is a file


def test_an_archive_past_the_disk_limit_is_413(crownest_local: LocalServer) -> None:
    with crownest_local.client() as client:
        sandbox = client.sandboxes.create(template="python", disk_mb=16)
        try:
            answer = put_archive(crownest_local, sandbox.id, "q", tar_of(("big", "file", bytes(17 * 1024 * 1024))))
            assert (answer.status_code, answer.json()["error"]["code"]) == (413, "disk_quota_exceeded")
            assert answer.json()["error"]["details"]["member"] == "big"
            assert not sandbox.files.exists("q/big")
        finally:
            sandbox.kill()


def test_other_media_types_are_415(crownest_local: LocalServer, sandbox: SandboxHandle) -> None:
    answer = httpx.put(
        f"{crownest_local.base_url}/v1/sandboxes/{sandbox.id}/files/archive?path=x",
        content=tar_of(("a", "file", "a")),
        headers={"Authorization": f"Bearer {crownest_local.api_key}", "Content-Type": "application/zip"},
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (415, "unsupported_media_type")


def test_write_archive_refuses_what_the_sdk_would_not_send(sandbox: SandboxHandle) -> None:
    with pytest.raises(BadRequestError) as caught:
        sandbox.files.write_archive("x", tar_of(("h", "hardlink", "/etc/passwd")))
    assert caught.value.code == "invalid_archive"


def test_ten_thousand_files_round_trip_in_bounded_memory(crownest_local: LocalServer, tmp_path: Path) -> None:
    """10,000 files and one of 40 MiB, up and down with the sync and the async client at once, each in
    a child process so that its peak RSS is its transfers' alone (see tests/dirs_memory.py):
    byte-exact, in under 32 MiB of growth."""
    script = str(HERE / "dirs_memory.py")
    subprocess.run([sys.executable, script, "make", str(tmp_path)], check=True, timeout=300)
    env = {**os.environ, "CROWNEST_API_KEY": crownest_local.api_key}
    children = {
        mode: subprocess.Popen(
            [sys.executable, script, mode, crownest_local.base_url, str(tmp_path)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode in ("sync", "async")
    }
    for mode, child in children.items():
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-3000:]
        figures = dict(line.split("=") for line in out.split())
        assert figures["equal"] == "True", (mode, figures)
        assert int(figures["rss_growth_kib"]) < 32 * 1024, (mode, figures)


# The security suite's path attacks (tests/test_local_security.py), as archive members.

SENSITIVE = [Path("/etc/passwd"), Path("/etc/shadow"), Path("/root/.bashrc")]


def fingerprint() -> dict[Path, bytes | None]:
    return {path: path.read_bytes() if path.exists() else None for path in SENSITIVE}


@pytest.mark.parametrize("path", CORPUS)
def test_path_attacks_through_archive_members_change_nothing_outside(
    path: str, server: LocalServer, planted: tuple[CrowNest, SandboxHandle], outside: Path
) -> None:
    """Each attack path as a file member, as a directory member with a file in it, and as the target
    of a symlink member that a file member then goes through; sent into `/home/user`, where the
    planted symlinks are. An escaping name is refused with its name; nothing outside changes."""
    _, sandbox = planted
    escapes = path in LEXICAL_ESCAPES or path in ABSOLUTE_OUTSIDE or path in THROUGH_SYMLINKS
    before = fingerprint()
    archives = {
        "file": [(path, "file", "pwned")],
        "directory": [(path, "dir", ""), (f"{path.rstrip('/')}/made", "file", "pwned")],
        "symlink": [("via", "symlink", path), ("via/x", "file", "pwned")],
    }
    for kind, members in archives.items():
        answer = put_archive(server, sandbox.id, ".", tar_of(*members))
        refused = answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_archive"
        if kind == "symlink":  # a file member never goes through a symlink, even one that stays inside
            assert refused, (kind, path, answer.text)
            assert answer.json()["error"]["details"]["member"] in ("via", "via/x")
        elif escapes:
            assert refused, (kind, path, answer.text)
            names = {name for m in members for name in (m[0], m[0].rstrip("/"))}
            assert answer.json()["error"]["details"]["member"] in names, (kind, path, answer.text)
        else:
            assert answer.status_code == 200, (kind, path, answer.text)
            sandbox.files.delete(path.split("/")[0], recursive=True)  # room for the next kind
        sandbox.files.delete("via") if sandbox.files.exists("via") else None
    outside_untouched(outside)
    assert fingerprint() == before
    assert server.data_dir is not None
    home = server.sandbox_folder(sandbox.id)
    planted_anywhere = [
        p for p in server.data_dir.rglob("*") if p.is_file() and not p.is_symlink() and p.stat().st_size == 5
    ]
    assert all(home in p.parents for p in planted_anywhere if p.read_bytes() == b"pwned")


def test_an_archive_past_the_member_limit_is_refused_at_that_member(
    crownest_local: LocalServer, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit is 200,000; lowered here (the server runs in this process) to keep the test small."""
    monkeypatch.setattr("crownest_local._archives.MAX_MEMBERS", 3)
    body = tar_of(*[(f"m{i}", "file", str(i)) for i in range(5)])
    answer = put_archive(crownest_local, sandbox.id, "limit", body)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_archive")
    assert answer.json()["error"]["details"] == {
        "member": "m3",
        "reason": "is past the limit of 3 members",
        "membersWritten": 3,
    }


@pytest.mark.parametrize("name", [".", "./", "/"])
def test_a_file_member_named_like_the_folder_itself_is_refused(
    crownest_local: LocalServer, sandbox: SandboxHandle, name: str
) -> None:
    answer = put_archive(crownest_local, sandbox.id, "self", tar_of(("...", "file", "dots"), (name, "file", "x")))
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_archive"), answer.text
    assert answer.json()["error"]["details"]["membersWritten"] == 1
    assert sandbox.files.read("self/...") == b"dots"  # a name of dots only is a name


def test_a_client_that_goes_away_mid_archive_leaves_whole_files_only(
    crownest_local: LocalServer, sandbox: SandboxHandle
) -> None:
    """The connection closes in the middle of the second member's content: the first member stays,
    the second leaves no temporary file behind."""
    body = tar_of(("first.txt", "file", "1"), ("second.bin", "file", bytes(300_000)))
    host, port = crownest_local.base_url.removeprefix("http://").split(":")
    head = (
        f"PUT /v1/sandboxes/{sandbox.id}/files/archive?path=gone HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {crownest_local.api_key}\r\nContent-Type: application/x-tar\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    folder = crownest_local.sandbox_folder(sandbox.id) / "home" / "gone"

    def temporary() -> list[str]:
        return [p for p in os.listdir(folder) if p.startswith(".upload-")] if folder.exists() else []

    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(head.encode() + body[:100_000])
        wait_for(lambda: bool(temporary()))  # the second member is being written
    wait_for(lambda: not temporary())  # the server saw the connection close, and cleaned up
    assert sorted(os.listdir(folder)) == ["first.txt"]
    assert sandbox.files.read("gone/first.txt") == b"1"


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.02)
