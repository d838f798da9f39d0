"""Attacks on CrowNest Local's sandbox boundary, each from inside a sandbox, each asserted to fail.

They run against the server as root (the session server when the tests run
as root, as in containers and CI) and as an unprivileged user (a throwaway
account made with useradd when the tests run as root, else the session
server itself), and check that nothing outside the sandbox changed.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from crownest import CrowNest, CrowNestApiError
from crownest._handle import SandboxHandle
from crownest_local import LocalServer
from crownest_local._egress import Egress, domain_allowed, public_address
from crownest_local._seccomp import AARCH64, X86_64, filter_for, host_filter

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed (make system-deps)")

HOST_SECRET = "a host-only service's secret"
THROWAWAY_USER = "crownest-isotest"
WAIT_FOR_8000 = (
    "import socket, sys, time\n"
    "for _ in range(200):\n"
    "    try: socket.create_connection(('127.0.0.1', 8000)).close(); sys.exit(0)\n"
    "    except OSError: time.sleep(0.05)\n"
    "sys.exit(1)"
)


class Remote:
    """A CrowNest Local server in another process, as another user."""

    def __init__(self, base_url: str, api_key: str, data_dir: Path) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.data_dir = data_dir

    def client(self, **options: Any) -> CrowNest:
        return CrowNest(api_key=self.api_key, base_url=self.base_url, **options)


@contextlib.contextmanager
def unprivileged_server() -> Iterator[Remote]:
    """CrowNest Local run by a throwaway unprivileged user, with the system Python and this checkout."""
    if subprocess.run(["id", THROWAWAY_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", THROWAWAY_USER], check=True)
    account = pwd.getpwnam(THROWAWAY_USER)
    data_dir = Path(tempfile.mkdtemp(prefix="crownest-isotest-"))
    os.chown(data_dir, account.pw_uid, account.pw_gid)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    source = str(Path(__file__).resolve().parents[1] / "src")
    boot = (
        f"import site, sys; site.addsitedir({site!r}); sys.path.insert(0, {source!r}); "
        "from crownest_local._cli import main; main()"
    )
    process = subprocess.Popen(
        ["/usr/bin/python3", "-c", boot, "serve", "--port", "0", "--data-dir", str(data_dir)],
        user=account.pw_uid,
        group=account.pw_gid,
        extra_groups=[],
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "HOME": str(data_dir)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline() for _ in range(3)]
    found = dict(re.findall(r"export (CROWNEST_\w+)=(\S+)", "".join(lines)))
    try:
        yield Remote(found["CROWNEST_BASE_URL"], found["CROWNEST_API_KEY"], data_dir)
    finally:
        process.terminate()
        process.wait(30)
        process.stdout.close()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module", params=["root", "unprivileged"])
def server(request: pytest.FixtureRequest, crownest_local: LocalServer) -> Iterator[Any]:
    if request.param == "root":
        if os.geteuid() != 0:
            pytest.skip("the tests do not run as root here: the root case cannot be tried")
        yield crownest_local
    elif os.geteuid() != 0:
        yield crownest_local
    else:
        with unprivileged_server() as remote:
            yield remote


@pytest.fixture(scope="module")
def host_service() -> Iterator[int]:
    """A host-only HTTP service on loopback that no sandbox may reach."""

    class Secret(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(HOST_SECRET.encode())

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Secret)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def client(server: Any) -> Iterator[CrowNest]:
    with server.client(max_retries=0) as c:
        yield c


@pytest.fixture
def sandbox(client: CrowNest) -> Iterator[SandboxHandle]:
    handle = client.sandboxes.create(template="python")
    yield handle
    handle.kill()


def run(sandbox: SandboxHandle, command: str) -> str:
    return sandbox.commands.run(command, timeout_ms=30_000).stdout


PROBE = r"""
import ctypes, json, os, socket, sys
out = {}
def attempt(name, action):
    try:
        action()
        out[name] = "done"
    except OSError as exc:
        out[name] = f"refused {exc.errno}"
attempt("packet", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("mknod", lambda: os.mknod("/tmp/null", 0o666 | 0o020000, os.makedev(1, 3)))
attempt("shadow", lambda: open("/etc/shadow").read())
out["status"] = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
out["root"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else None
for port in [int(p) for p in sys.argv[1:]]:
    attempt(f"connect {port}", lambda: socket.create_connection(("127.0.0.1", port), timeout=2).close())
out["tcp"] = open("/proc/net/tcp").read() + open("/proc/net/tcp6").read()
libc = ctypes.CDLL(None, use_errno=True)  # last: a successful unshare would move this process
out["ptrace"] = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to the sandbox's init
out["keyctl"] = libc.syscall(250 if os.uname().machine == "x86_64" else 219, 0, 0)
out["unshare"] = libc.unshare(0x10000000 | 0x40000000)
print(json.dumps(out))
"""


def probe(sandbox: SandboxHandle, *ports: int) -> dict[str, Any]:
    sandbox.files.write("probe.py", PROBE)
    result = sandbox.commands.run(f"python probe.py {' '.join(map(str, ports))}", timeout_ms=30_000)
    assert result.exit_code == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_no_privileges_no_dangerous_syscalls(sandbox: SandboxHandle, server: Any) -> None:
    found = probe(sandbox)
    status = found["status"]
    assert status["CapEff"].strip() == "0000000000000000"
    assert status["CapPrm"].strip() == "0000000000000000"
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"
    assert status["Uid"].split()[0] != "0"
    for name in ("packet", "raw", "mknod", "shadow"):
        assert found[name].startswith("refused"), (name, found[name])
    assert found["unshare"] == found["ptrace"] == found["keyctl"] == -1
    assert not found["root"], found["root"]  # nothing of the host's /root


def test_cannot_remount_or_unmount_or_write_the_host(sandbox: SandboxHandle, server: Any) -> None:
    for proof in ("/var/tmp/proof", "/usr/proof"):  # left by an earlier run against a server that let it
        with contextlib.suppress(FileNotFoundError, PermissionError):
            os.unlink(proof)
    out = run(
        sandbox,
        "mount -o remount,rw / 2>/dev/null && echo remounted; umount /home/user 2>/dev/null && echo unmounted; "
        "umount -l /tmp 2>/dev/null && echo unmounted; echo x > /var/tmp/proof; echo x > /usr/proof 2>/dev/null "
        "&& echo wrote-usr; ls -A /",
    )
    assert "remounted" not in out and "unmounted" not in out and "wrote-usr" not in out
    assert not os.path.exists("/var/tmp/proof") and not os.path.exists("/usr/proof")
    assert "root" not in out.split()


def test_data_folder_and_other_sandboxes_unreachable(sandbox: SandboxHandle, client: CrowNest, server: Any) -> None:
    other = client.sandboxes.create(template="base")
    other.files.write("secret.txt", HOST_SECRET)
    data_dir = str(server.data_dir)
    out = run(
        sandbox,
        f"umount -l /tmp 2>/dev/null; umount -l {data_dir} 2>/dev/null; umount -l /var/tmp 2>/dev/null; "
        f"cat {data_dir}/state.sqlite3 | head -c 100; ls -A {data_dir}; find / -name secret.txt 2>/dev/null; "
        f"find / -name 'state.sqlite3*' 2>/dev/null; ls /proc | grep -c '^[0-9]'",
    )
    assert HOST_SECRET not in out and "SQLite" not in out and "state.sqlite3" not in out
    assert int(out.split()[-1]) <= 6  # its own PID namespace
    other.kill()


def test_host_ports_and_the_server_unreachable(sandbox: SandboxHandle, server: Any, host_service: int) -> None:
    server_port = int(httpx.URL(server.base_url).port or 0)
    found = probe(sandbox, server_port, host_service)
    assert found[f"connect {server_port}"].startswith("refused")
    assert found[f"connect {host_service}"].startswith("refused")
    for port in (server_port, host_service):
        assert f":{port:04X} " not in found["tcp"]  # /proc/net/tcp lists no host socket


def test_previews_reach_only_their_own_sandbox(client: CrowNest, server: Any, host_service: int) -> None:
    server_port = int(httpx.URL(server.base_url).port or 0)
    a = client.sandboxes.create(template="python")
    b = client.sandboxes.create(template="python")
    echo = (
        "import http.server, json, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = json.dumps({'who': sys.argv[1], 'headers': dict(self.headers)}).encode()\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
        "    def log_message(self, *a): pass\n"
        "http.server.HTTPServer(('127.0.0.1', 8000), H).serve_forever()\n"
    )
    for name, box in (("a", a), ("b", b)):
        box.files.write("echo.py", echo)
        box.commands.start(f"python echo.py {name}")
        assert box.commands.run(f'python -c "{WAIT_FOR_8000}"').exit_code == 0
    public_a = a.previews.create(port=8000, visibility="public")
    private_b = b.previews.create(port=8000, visibility="private")
    secrets = {"Authorization": f"Bearer {server.api_key}", "Cookie": "session=s3cret", "X-Kept": "yes"}
    seen = httpx.get(public_a.url, headers=secrets).json()
    assert seen["who"] == "a"
    lowered = {k.lower(): v for k, v in seen["headers"].items()}
    assert "authorization" not in lowered and "cookie" not in lowered and lowered["x-kept"] == "yes"
    assert server.api_key not in json.dumps(seen)
    assert httpx.get(private_b.url).status_code == 403  # A's public preview of 8000 opens nothing of B's
    token = {"X-CrowNest-Preview-Token": private_b.token or ""}
    assert httpx.get(private_b.url, headers=token).json()["who"] == "b"
    for port in (host_service, server_port):  # host-only services and the server itself are not in the sandbox
        preview = a.previews.create(port=port, visibility="public")
        answer = httpx.get(preview.url + "previews/x/", timeout=10)
        assert answer.status_code == 502 and HOST_SECRET not in answer.text
    a.kill()
    b.kill()


def test_no_internet_leaves_only_the_sandbox_loopback(client: CrowNest) -> None:
    box = client.sandboxes.create(template="python", internet=False)
    assert box.internet is False
    out = box.commands.run(
        "env | grep -ci proxy; python -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1', 3128), 2)\n"
        " print('proxy reachable')\nexcept OSError: print('no way out')\"",
    ).stdout
    assert out.split() == ["0", "no", "way", "out"]
    box.kill()


@pytest.fixture
def egress_server(host_service: int) -> Iterator[LocalServer]:
    """A server whose egress resolver maps test names: `allowed.test` and `other.test` to a public-looking
    address that the test-only connector sends to the local host service; `loopback.test` to 127.0.0.1."""
    names = {
        "allowed.test": ["93.184.216.34"],
        "other.test": ["93.184.216.34"],
        "loopback.test": ["127.0.0.1"],
        "intranet.test": ["93.184.216.34", "10.0.0.7"],
    }

    async def resolve(host: str, port: int) -> list[str]:
        return names.get(host, [host])

    async def connect(address: str, port: int) -> Any:
        import asyncio

        assert address == "93.184.216.34"  # never anything else, never the outside world
        return await asyncio.open_connection("127.0.0.1", host_service)

    with LocalServer() as local:
        assert local._config is not None
        local._config.egress = Egress(resolve, connect)
        yield local


def test_egress_allow_list_by_host_name(egress_server: LocalServer) -> None:
    fetch = (
        "import sys, urllib.request, urllib.error\n"
        "for url in sys.argv[1:]:\n"
        "    try: print(url, urllib.request.urlopen(url, timeout=10).read().decode())\n"
        "    except urllib.error.HTTPError as e: print(url, e.code)\n"
        "    except OSError as e: print(url, 'error')\n"
    )
    with egress_server.client(max_retries=0) as client:
        box = client.sandboxes.create(template="python", allow_domains=["allowed.test"])
        assert box.allow_domains == ["allowed.test"]
        box.files.write("fetch.py", fetch)
        urls = ["http://allowed.test/", "http://other.test/", "http://loopback.test/", "http://127.0.0.1:9/"]
        lines = box.commands.run("python fetch.py " + " ".join(urls), timeout_ms=60_000).stdout.splitlines()
        # 127.0.0.1 is in NO_PROXY: a direct try, and the sandbox's own loopback has nothing on port 9
        assert lines == [f"{urls[0]} {HOST_SECRET}", f"{urls[1]} 403", f"{urls[2]} 403", f"{urls[3]} error"]
        tunnel = (
            "import socket, sys\n"
            "for host in sys.argv[1:]:\n"
            "    s = socket.create_connection(('127.0.0.1', 3128))\n"
            "    s.sendall(f'CONNECT {host}:443 HTTP/1.1\\r\\nHost: {host}:443\\r\\n\\r\\n'.encode())\n"
            "    answer = s.recv(4096)\n"
            "    if answer.startswith(b'HTTP/1.1 200'):\n"
            "        s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n')\n"
            "        answer = b''.join(iter(lambda: s.recv(4096), b''))\n"
            "    print(host, answer.split(b'\\r\\n')[0].decode(), answer.endswith(b'secret'))\n"
        )
        box.files.write("tunnel.py", tunnel)
        lines = box.commands.run("python tunnel.py allowed.test other.test", timeout_ms=60_000).stdout.splitlines()
        assert lines == ["allowed.test HTTP/1.0 200 OK True", "other.test HTTP/1.1 403 Refused False"]
        anywhere = client.sandboxes.create(template="python")
        anywhere.files.write("fetch.py", fetch)
        urls = ["http://other.test/", "http://loopback.test/", "http://intranet.test/"]
        lines = anywhere.commands.run("python fetch.py " + " ".join(urls), timeout_ms=60_000).stdout.splitlines()
        assert lines == [f"{urls[0]} {HOST_SECRET}", f"{urls[1]} 403", f"{urls[2]} 403"]
        box.kill()
        anywhere.kill()


def test_proxy_rules() -> None:
    assert domain_allowed("pypi.org", None)
    assert domain_allowed("PyPI.org.", ["pypi.org"])
    assert domain_allowed("files.pythonhosted.org", ["*.pythonhosted.org"])
    assert not domain_allowed("pythonhosted.org", ["*.pythonhosted.org"])
    assert not domain_allowed("evilpypi.org", ["pypi.org", "*.pypi.org"])
    for address in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fe80::1", "::ffff:127.0.0.1"):
        assert not public_address(address), address
    assert public_address("93.184.216.34") and public_address("2606:4700::1111")


def test_seccomp_program_fails_closed_on_other_architectures() -> None:
    for arch in (X86_64, AARCH64):
        program = filter_for(arch)
        assert len(program) % 8 == 0 and arch.audit.to_bytes(4, "little") in program
    assert host_filter("riscv64") is None


def test_without_bubblewrap_commands_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWNEST_LOCAL_NO_BWRAP", "1")
    with LocalServer() as local, local.client() as client:  # the default retries
        box = client.sandboxes.create(template="base")
        with pytest.raises(CrowNestApiError) as caught:
            box.commands.run("echo should not run")
        assert (caught.value.status, caught.value.code) == (503, "isolation_unavailable")
        assert "apt-get install bubblewrap" in str(caught.value)
        assert local.stats.get("runCommand") == 1  # a lasting 503: not retried


def test_unsafe_mode_kills_the_whole_session_at_timeout_and_at_end() -> None:
    with pytest.warns(UserWarning, match="NO isolation"), LocalServer(isolation="none") as local:
        with local.client(max_retries=0) as client:
            box = client.sandboxes.create(template="base")
            started = time.monotonic()
            result = box.commands.run("setsid sleep 25 & setsid sh -c 'sleep 26' & sleep 30", timeout_ms=3000)
            assert result.status == "timed_out" and time.monotonic() - started < 15
            detached = box.commands.run("setsid sleep 27 >/dev/null 2>&1 & echo started", timeout_ms=10_000)
            assert detached.status == "succeeded"
            box.commands.start("setsid sleep 28 & sleep 29")
            time.sleep(0.5)
            box.kill()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and sleepers():
            time.sleep(0.1)
        assert sleepers() == []


def sleepers() -> list[str]:
    found = subprocess.run(["pgrep", "-f", "^sleep 2[5-9]$"], capture_output=True, text=True).stdout.split()
    return found


@pytest.mark.parametrize("mode", ["bubblewrap", "none"])
def test_cwd_is_checked_alike_in_both_modes(mode: str) -> None:
    with contextlib.ExitStack() as stack:
        if mode == "none":
            stack.enter_context(pytest.warns(UserWarning))
        local = stack.enter_context(LocalServer(isolation=mode))
        client = stack.enter_context(local.client(max_retries=0))
        box = client.sandboxes.create(template="base")
        for cwd in ("/home/user/missing", "/etc", "/", "../x"):
            with pytest.raises(CrowNestApiError) as caught:
                box.commands.run("echo ran", cwd=cwd)
            assert (caught.value.status, caught.value.code) == (400, "invalid_path"), cwd
        assert list(box.commands.list()) == []  # nothing was started
        box.files.mkdir("/tmp/work")
        assert box.commands.run("pwd", cwd="/tmp/work").stdout.strip().endswith("/work")


@pytest.mark.parametrize("kind", ["relative", "symlink", "long"])
def test_relative_symlinked_or_long_data_dir(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real").mkdir()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    data_dirs: dict[str, str | Path] = {
        "relative": "real",
        "symlink": tmp_path / "link",
        "long": tmp_path / ("d" * 120),
    }
    data_dir = data_dirs[kind]
    with LocalServer(data_dir=data_dir) as local, local.client(max_retries=0) as client:
        box = client.sandboxes.create(template="python")
        assert box.commands.run("echo ok > f && cat f").stdout == "ok\n"
        box.commands.start("python -m http.server 8000 --bind 127.0.0.1")
        preview = box.previews.create(port=8000, visibility="public")
        assert box.commands.run(f'python -c "{WAIT_FOR_8000}"').exit_code == 0
        assert httpx.get(preview.url).status_code == 200
        box.kill()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"allowDomains": ["not a host"]}, "allowDomains[0]"),
        ({"allowDomains": "pypi.org"}, "allowDomains"),
        ({"allowDomains": ["x" * 254]}, "allowDomains[0]"),
        ({"internet": "yes"}, "internet"),
    ],
)
def test_network_fields_are_validated(crownest_local: LocalServer, body: dict[str, Any], field: str) -> None:
    headers = {"Authorization": f"Bearer {crownest_local.api_key}"}
    answer = httpx.post(f"{crownest_local.base_url}/v1/sandboxes", json={"template": "base", **body}, headers=headers)
    assert answer.status_code == 400 and answer.json()["error"]["details"]["field"] == field
    with crownest_local.client(max_retries=0) as client, pytest.raises(TypeError, match="allow_domains"):
        client.sandboxes.create(template="base", allow_domains="pypi.org")  # a str is not a list of names


def test_isolation_takes_two_values() -> None:
    with pytest.raises(ValueError, match="isolation"):
        LocalServer(isolation="bwrap")


def test_cli_runs_unisolated_only_when_told(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "crownest_local", "serve", "--port", "0", "--data-dir", str(tmp_path)]
    process = subprocess.Popen(
        [*command, "--unsafe-no-isolation"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        found = dict(re.findall(r"export (CROWNEST_\w+)=(\S+)", "".join(process.stdout.readline() for _ in range(3))))
        with CrowNest(api_key=found["CROWNEST_API_KEY"], base_url=found["CROWNEST_BASE_URL"]) as client:
            box = client.sandboxes.create(template="base")
            assert box.commands.run("echo $CROWNEST_COMMAND_ID").stdout.startswith("cmd_")  # not in bubblewrap
    finally:
        process.terminate()
        process.wait(30)
        process.stdout.close()
        warnings = process.stderr.read()
        process.stderr.close()
    assert "NO isolation" in warnings


def test_unsafe_mode_refuses_a_preview_of_the_server_itself() -> None:
    with contextlib.ExitStack() as stack:
        stack.enter_context(pytest.warns(UserWarning, match="NO isolation"))
        local = stack.enter_context(LocalServer(isolation="none"))
        box = stack.enter_context(local.client(max_retries=0)).sandboxes.create(template="base")
        with pytest.raises(CrowNestApiError) as caught:
            box.previews.create(port=int(httpx.URL(local.base_url).port or 0), visibility="public")
        assert (caught.value.status, caught.value.code) == (400, "invalid_request")
