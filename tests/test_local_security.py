"""CrowNest Local keeps each sandbox to itself, and answers nothing without the key.

A corpus of path-escape attempts goes through every file operation, in a
sandbox where commands have planted symlinks that point out; a sentinel
folder outside must stay untouched, and nothing outside may be read. Where
bubblewrap is installed, one sandbox's commands cannot see another's files.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crownest import CrowNest, CrowNestApiError
from crownest._handle import SandboxHandle
from crownest_local import LocalServer

SECRET = "host secret, never to be read through a sandbox"

LEXICAL_ESCAPES = [
    "..",
    "../",
    "../x",
    "../../x",
    "../../../../../../../../etc/passwd",
    "a/../../x",
    "./../x",
    "a/b/../../../x",
    "/home/user/..",
    "/home/user/../x",
    "/home/user/../../etc/shadow",
    "/home/user/a/../../../etc",
    "/tmp/..",
    "/tmp/../etc/passwd",
    "/home/user/./../user2/x",
]
ABSOLUTE_OUTSIDE = [
    "/",
    "/etc/passwd",
    "/root/.bashrc",
    "/proc/self/environ",
    "/home",
    "/home/other/x",
    "/var/tmp/x",
    "//etc/passwd",
    "///etc/passwd",
    "/usr/bin/python3",
    "/home/username/x",
    "/tmpfoo/x",
]
ODD_BUT_INSIDE = [  # encoded or look-alike forms: plain names inside /home/user, never decoded into `..`
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "..\\..\\etc\\passwd",
    "\uff0e\uff0e/x",
    "....//....//etc/passwd",
    "..;/x",
]
THROUGH_SYMLINKS = ["up/x", "etc/passwd", "host/secret.txt", "data/state.sqlite3", "tmplink/passwd", "deep/etc/passwd"]
CORPUS = LEXICAL_ESCAPES + ABSOLUTE_OUTSIDE + ODD_BUT_INSIDE + THROUGH_SYMLINKS


@pytest.fixture(scope="module", params=["bubblewrap", "fallback"])
def server(request: pytest.FixtureRequest, crownest_local: LocalServer) -> Iterator[LocalServer]:
    """The session server where bubblewrap runs commands; a second one in fallback mode."""
    if request.param == "bubblewrap":
        if shutil.which("bwrap") is None:
            pytest.skip("bubblewrap is not installed here (make test installs it): cannot test the isolated mode")
        yield crownest_local
    else:
        with pytest.warns(UserWarning, match="bubblewrap"), LocalServer(isolation=False) as fallback:
            yield fallback


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("host")
    (folder / "secret.txt").write_text(SECRET)
    return folder


@pytest.fixture(scope="module")
def planted(server: LocalServer, outside: Path) -> Iterator[tuple[CrowNest, SandboxHandle]]:
    """A sandbox whose commands planted symlinks that point out of it."""
    with server.client(max_retries=0) as client:
        sandbox = client.sandboxes.create(template="base")
        assert server.data_dir is not None
        links = {
            "up": "../../..",
            "etc": "/etc",
            "host": str(outside),
            "data": str(server.data_dir),
            "tmplink": "/tmp/../etc",
            "deep": "up/../../../..",
        }
        script = " && ".join(f"ln -s '{target}' '{name}'" for name, target in links.items())
        assert sandbox.commands.run(script).exit_code == 0
        yield client, sandbox
        sandbox.kill()


def outside_untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == SECRET


@pytest.mark.parametrize("path", CORPUS)
def test_path_escapes_neither_read_nor_write_outside(
    path: str, planted: tuple[CrowNest, SandboxHandle], outside: Path
) -> None:
    _, sandbox = planted
    escapes = path in LEXICAL_ESCAPES or path in ABSOLUTE_OUTSIDE or path in THROUGH_SYMLINKS
    attempts: dict[str, Callable[[], Any]] = {
        "read": lambda: sandbox.files.read(path),
        "write": lambda: sandbox.files.write(path, b"pwned"),
        "list": lambda: sandbox.files.list(path),
        "mkdir": lambda: sandbox.files.mkdir(path + "/made"),
        "artifact": lambda: sandbox.artifacts.create(path=path),
        "move out": lambda: sandbox.files.move("moved-in.txt", path),
        "move in": lambda: sandbox.files.move(path, "moved-in.txt"),
        "delete": lambda: sandbox.files.delete(path, recursive=True),
    }
    for name, attempt in attempts.items():
        sandbox.files.write("moved-in.txt", b"mine")
        try:
            result = attempt()
        except CrowNestApiError as error:
            assert error.status in (400, 404, 409), (name, error.status, error.code)
            if escapes and name in ("read", "write", "list", "artifact"):
                assert (error.status, error.code) == (400, "invalid_path"), (name, path)
            continue
        assert not escapes, f"{name} {path!r} was accepted"
        if isinstance(result, bytes):
            assert SECRET.encode() not in result
        for field in ("path",):
            value = getattr(result, field, None)
            assert value is None or value.startswith(("/home/user", "/tmp")), (name, value)
    outside_untouched(outside)
    leaked = sandbox.files.list(".")
    assert "secret.txt" not in {entry.name for entry in leaked}


def test_symlinks_inside_the_sandbox_still_work(planted: tuple[CrowNest, SandboxHandle]) -> None:
    _, sandbox = planted
    sandbox.files.write("real/file.txt", "inside")
    assert sandbox.commands.run("ln -s real alias").exit_code == 0
    assert sandbox.files.read_text("alias/file.txt") == "inside"
    assert sandbox.files.info("etc").type_ == "symlink"  # the link itself may be looked at, not followed


def test_sandboxes_cannot_see_each_other_through_commands(crownest_local: LocalServer) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed here (make test installs it): commands are not isolated")
    data_dir = crownest_local.data_dir
    with crownest_local.client(max_retries=0) as client:
        a = client.sandboxes.create(template="base")
        b = client.sandboxes.create(template="base")
        a.files.write("secret.txt", SECRET)
        a_home = f"{data_dir}/sandboxes/{a.id}/home"
        probe = b.commands.run(
            f"cat {a_home}/secret.txt; ls -A {data_dir}; ls -A /home; cat /tmp/../home/user/secret.txt; "
            f"ps -e -o pid= | wc -l"
        )
        assert SECRET not in probe.stdout
        lines = probe.stdout.split()
        assert lines[:1] == ["user"]  # /home holds only this sandbox's user; the data folder looks empty
        assert int(lines[-1]) <= 4  # its own PID namespace: sh, ps, wc (and bubblewrap's init)
        with pytest.raises(CrowNestApiError) as caught:
            b.files.read(f"../../{a.id}/home/secret.txt")
        assert caught.value.code == "invalid_path"
        a.kill()
        b.kill()


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer cn_test_wrong"}, "invalid_api_key"),
        ({"Authorization": "Basic abc"}, "invalid_api_key"),
        ({"Authorization": "Bearer"}, "invalid_api_key"),
    ],
)
def test_requests_without_the_key_get_401_and_change_nothing(
    crownest_local: LocalServer, headers: dict[str, str], code: str
) -> None:
    with crownest_local.client() as client:
        before = [s.id for s in client.sandboxes.list()]
        response = httpx.post(f"{crownest_local.base_url}/v1/sandboxes", json={"template": "base"}, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == code
        assert response.headers["X-Request-Id"].startswith("req_")
        assert [s.id for s in client.sandboxes.list()] == before
    with (
        CrowNest(api_key="cn_test_wrong", base_url=crownest_local.base_url) as wrong,
        pytest.raises(CrowNestApiError) as caught,
    ):
        wrong.templates.list()
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
