"""Where a sandbox lives on disk, how its paths map there, and how its commands are spawned.

A sandbox is a folder with `home/` (the sandbox's `/home/user`), `tmp/` (its
`/tmp`) and `net/` (the sockets of its network helper, never shown to its
commands). With isolation (the default), every command runs under
bubblewrap, as an unprivileged host user inside its own user namespace:

- the user: the server's own user, or, when the server runs as root, a
  dedicated unused uid and gid per sandbox (`SANDBOX_UID_BASE` plus a hash
  of its ID), which owns the sandbox's folders and nothing else;
- no capabilities, `no_new_privs`, and the seccomp filter of `_seccomp.py`;
- the host's `/usr`, `/bin`, `/lib*`, `/etc` (its password hashes masked)
  and the Python (and Node) install read-only; the sandbox's own
  `/home/user` and `/tmp` writable; a fresh `/proc` and `/dev`; nothing else
  of the host (no `/root`, no `/home`, no data folder, no other sandbox);
- its own PID, IPC, UTS and cgroup namespaces, and the sandbox's network
  namespace, shared by all of its commands and held by its helper
  (`_agent.py`): a loopback of its own and, with internet, the egress proxy.

Without isolation (the operator's explicit choice) a command runs as a plain
child process of the server, and only the file API stays confined.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ._beneath import Location, Owner, remove_path, walk
from ._beneath import invalid_path as invalid_path  # where _service finds it
from ._seccomp import host_filter

logger = logging.getLogger("crownest_local")

HOME = "/home/user"
TMP = "/tmp"
# The sandbox paths the file API can reach, and the sandbox subfolder each maps to.
ROOTS = {HOME: "home", TMP: "tmp"}
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"
# Inside a sandbox: a folder with `python` and `python3`, first on PATH.
TOOLS = "/run/crownest/bin"
# Root's sandboxes run as uids from here on: far above any account, below the 32-bit limit.
SANDBOX_UID_BASE = 0x50000000
SANDBOX_UID_SPAN = 1 << 24
# What is bound read-only into every sandbox (when it exists on the host).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
MASKED_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
PROXY = "http://127.0.0.1:3128"
INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)"


def bubblewrap() -> str | None:
    """The `bwrap` binary, unless CROWNEST_LOCAL_NO_BWRAP is set (to test the fallback)."""
    if os.environ.get("CROWNEST_LOCAL_NO_BWRAP"):
        return None
    return shutil.which("bwrap")


def default_shell() -> str:
    """The shell commands run with: bash where the system (which every sandbox sees read-only) has it."""
    return "/bin/bash" if os.access("/bin/bash", os.X_OK) else "/bin/sh"


def shell_exists(shell: str) -> bool:
    """Whether `shell` (an absolute path) is an executable file of the system the sandbox sees."""
    return os.path.isfile(shell) and os.access(shell, os.X_OK)


def python_dir() -> str:
    """A folder with `python` and `python3`: the base interpreter's, not a virtualenv's."""
    return str(Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable))).parent)


@dataclass(frozen=True)
class SandboxPath:
    """A path as the sandbox sees it (`virtual`) and where it is on the host (`host`)."""

    virtual: str
    host: Path
    root: Path


class SandboxFolder:
    """A sandbox's folder on the host.

    `owner` (uid, gid), when set, is given every file and folder the file API
    creates in it (and its `home/`, `tmp/` and `net/`): the host user its commands run as.
    """

    def __init__(self, folder: Path, owner: Owner | None = None) -> None:
        self.folder = folder
        self.owner = owner

    @property
    def net(self) -> Path:
        return self.folder / "net"

    def create(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sub in (*ROOTS.values(), "net"):
            (self.folder / sub).mkdir(exist_ok=True)
            self.adopt(self.folder / sub)
        self.adopt(self.folder)

    def adopt(self, path: Path) -> None:
        """Give `path` to the sandbox's user (when it has one of its own)."""
        if self.owner is not None:
            os.chown(path, *self.owner, follow_symlinks=False)

    def adopt_tree(self) -> None:
        """Give everything in the folder to the sandbox's user, links themselves (never what they point to).

        For a new sandbox's folder filled from a snapshot or a built template, before any of its
        commands runs (so nothing in it can change meanwhile).
        """
        if self.owner is None:
            return
        for parent, folders, files in os.walk(self.folder, followlinks=False):
            for name in (*folders, *files):
                os.chown(os.path.join(parent, name), *self.owner, follow_symlinks=False)
        os.chown(self.folder, *self.owner, follow_symlinks=False)

    def remove(self) -> None:
        """Delete the folder and everything in it, following no link."""
        remove_path(self.folder)

    def virtual(self, path: str) -> str:
        """The absolute, normalized sandbox path for `path`, or 400 `invalid_path`.

        Relative paths resolve against `/home/user`; `..` is applied to the text
        (the way a shell's `cd` does), and the result must be in `/home/user` or `/tmp`.
        """
        if not path or "\x00" in path:
            raise invalid_path(path, "is empty or contains NUL")
        absolute = path if path.startswith("/") else f"{HOME}/{path}"
        virtual = "/" + posixpath.normpath(absolute).lstrip("/")
        if not any(virtual == prefix or virtual.startswith(prefix + "/") for prefix in ROOTS):
            raise invalid_path(path, f"is outside {HOME} and {TMP}")
        return virtual

    def open(self, path: str, *, follow: bool, missing_ok: bool = False) -> Location:
        """Walk to `path` beneath this folder without following a link out (see `_beneath.walk`)."""
        return walk(
            {prefix: self.folder / sub for prefix, sub in ROOTS.items()}, path, follow=follow, missing_ok=missing_ok
        )

    def resolve(self, path: str, *, follow: bool = True) -> SandboxPath:
        """Map a sandbox path to the host, or raise 400 `invalid_path`: a command's working directory.

        The file API does not use this (a command could swap a checked folder for a
        link afterwards); it walks with `open`. The path must stay in `/home/user`
        or `/tmp`, and so must every symlink on the way (the last one's too when `follow`).
        """
        virtual = self.virtual(path)
        prefix = HOME if virtual == HOME or virtual.startswith(HOME + "/") else TMP
        root = self.folder / ROOTS[prefix]
        host = root / virtual[len(prefix) :].lstrip("/")
        real_root = os.path.realpath(root)
        checked = host if follow else host.parent
        real = os.path.realpath(checked)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise invalid_path(path, "goes through a symlink that leaves the sandbox")
        return SandboxPath(virtual, host, root)

    def cwd(self, cwd: str) -> str:
        """The normalized sandbox path of a working directory, or 400 `invalid_path` (in both modes)."""
        target = self.resolve(cwd)
        if not target.host.is_dir():
            raise invalid_path(cwd, "is not a directory in the sandbox")
        return target.virtual


def base_env() -> dict[str, str]:
    return {"HOME": HOME, "USER": "user", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}


def unisolated_program(
    folder: SandboxFolder, program: list[str], cwd: str, marker: str
) -> tuple[list[str], str, dict[str, str]]:
    """argv, host working directory and environment of `program` run without isolation.

    `marker` goes into the environment (`CROWNEST_COMMAND_ID`) so that what
    the command starts can be found and killed even after `setsid`.
    """
    env = base_env() | {
        "PATH": f"{python_dir()}:{SYSTEM_PATH}",
        "HOME": str(folder.folder / ROOTS[HOME]),
        "CROWNEST_COMMAND_ID": marker,
    }
    return program, str(folder.resolve(cwd).host), env


def sweep(marker: str, sig: int) -> None:
    """Send `sig` to every process of this user whose environment carries `CROWNEST_COMMAND_ID=marker`.

    Without isolation this is how a command's `setsid` children are found at
    its end: they left its process group but kept its environment. A process
    that also clears its environment escapes; only isolation closes that.
    """
    needle = f"\0CROWNEST_COMMAND_ID={marker}\0".encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                environ = b"\0" + f.read()
            if needle in environ:
                os.kill(int(entry.name), sig)


def reachable_by_others(path: str) -> bool:
    """Whether a user with no relation to `path`'s owners can reach it (every folder above it searchable)."""
    real = Path(os.path.realpath(path))
    try:
        return all(p.stat().st_mode & stat.S_IXOTH for p in [real, *real.parents] if p.is_dir()) and bool(
            real.stat().st_mode & stat.S_IROTH
        )
    except OSError:
        return False


def outside_system(path: str) -> bool:
    return not any(path == d or path.startswith(d + "/") for d in SYSTEM_DIRS)


def sandbox_python(as_root: bool) -> tuple[str | None, str | None]:
    """The Python interpreter sandboxes run, and the install folder to bind for it (None: in /usr).

    The server's base interpreter, or when root's sandboxes cannot reach it
    (e.g. under /root), the system's python3.
    """
    mine = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    if not as_root or reachable_by_others(mine):
        prefix = os.path.realpath(sys.base_prefix)
        return mine, prefix if outside_system(prefix) else None
    system = shutil.which("python3", path="/usr/bin:/bin")
    return (os.path.realpath(system) if system else None), None


def node_binds(as_root: bool) -> list[str]:
    """What to bind for the `node` template: its install folder (`<root>/bin/node` with
    `<root>/lib/node_modules`), or the binary alone; nothing if it is in the system folders."""
    found = shutil.which("node")
    if found is None or (as_root and not reachable_by_others(found)):
        return []
    real = Path(os.path.realpath(found))
    if not outside_system(str(real)):
        return []
    root = real.parent.parent
    return [str(root)] if (root / "lib" / "node_modules").is_dir() else [str(real)]


@dataclass
class Isolation:
    """How commands are isolated on this machine (see the module docstring), found once at start."""

    bwrap: str
    nsenter: str
    setpriv: str
    seccomp: bytes
    python: str | None
    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    binds: list[str] = field(default_factory=list)

    def owner(self, sandbox_id: str) -> tuple[int, int] | None:
        """The host uid and gid of a sandbox's processes and files; None: the server's own."""
        if not self.as_root:
            return None
        digest = int.from_bytes(hashlib.sha256(sandbox_id.encode()).digest()[:8], "big")
        uid = SANDBOX_UID_BASE + digest % SANDBOX_UID_SPAN
        return uid, uid

    def system_binds(self) -> list[str]:
        argv: list[str] = []
        for path in SYSTEM_DIRS:
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        for path in MASKED_FILES:
            if os.path.exists(path):
                argv += ["--ro-bind", "/dev/null", path]
        for root in self.binds:
            argv += ["--ro-bind", root, root]
        if self.python is not None:
            argv += ["--dir", TOOLS, "--symlink", self.python, f"{TOOLS}/python"]
            argv += ["--symlink", self.python, f"{TOOLS}/python3"]
        return argv

    def program(
        self, folder: SandboxFolder, program: list[str], cwd: str, *, helper_pid: int, seccomp_fd: int, internet: bool
    ) -> tuple[list[str], dict[str, str]]:
        """argv and environment for `program` (looked up on the sandbox's PATH) in the sandbox whose helper is `helper_pid`."""
        env = base_env() | {"PATH": f"{TOOLS}:{SYSTEM_PATH}"}
        if internet:
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
                env[name] = env[name.lower()] = PROXY
            env["NO_PROXY"] = env["no_proxy"] = "localhost,127.0.0.1,::1"
        argv = [*self.as_user(folder.owner), self.nsenter, "--user", "--net", "--preserve-credentials"]
        argv += ["-t", str(helper_pid), self.bwrap]
        argv += ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        argv += ["--hostname", "sandbox", "--die-with-parent", "--cap-drop", "ALL"]
        argv += self.system_binds()
        argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/run/user", "--tmpfs", "/var/tmp"]
        argv += ["--bind", str(folder.folder / ROOTS[HOME]), HOME, "--bind", str(folder.folder / ROOTS[TMP]), TMP]
        argv += ["--seccomp", str(seccomp_fd), "--chdir", cwd, *program]
        return argv, env

    def seccomp_pipe(self) -> int:
        """The read end of a pipe holding the compiled filter, for `--seccomp` (the caller closes it)."""
        read, write = os.pipe()
        os.write(write, self.seccomp)
        os.close(write)
        return read

    def as_user(self, owner: tuple[int, int] | None) -> list[str]:
        """The argv prefix that runs what follows as `owner`, no supplementary groups and no
        capabilities (nothing for the server's own user). An exec of `setpriv` rather than
        Popen's `user=`: that makes CPython fork the whole server instead of vfork, which cost
        more than the exec (38 ms against 7 ms for a 200 MB server, measured on a loaded machine)."""
        if owner is None:
            return []
        return [self.setpriv, f"--reuid={owner[0]}", f"--regid={owner[1]}", "--clear-groups"]


def detect_isolation() -> Isolation | str:
    """This machine's `Isolation`, or why there can be none (a message that says how to fix it)."""
    bwrap = bubblewrap()
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    nsenter, setpriv = shutil.which("nsenter"), shutil.which("setpriv")
    if nsenter is None or setpriv is None:
        return "nsenter and setpriv (util-linux) are not installed"
    seccomp = host_filter()
    if seccomp is None:
        return f"no seccomp filter for this architecture ({os.uname().machine})"
    isolation = Isolation(bwrap, nsenter, setpriv, seccomp, None)
    isolation.python, python_root = sandbox_python(isolation.as_root)
    isolation.binds = sorted({*([python_root] if python_root else []), *node_binds(isolation.as_root)})
    probe = [*isolation.as_user(isolation.owner("probe")), bwrap, "--unshare-user", "--unshare-net"]
    probe += ["--ro-bind", "/", "/", "true"]
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        done = subprocess.run(probe, capture_output=True, timeout=10, cwd="/")
        if done.returncode == 0:
            return isolation
        return f"bubblewrap cannot create a user namespace here ({done.stderr.decode(errors='replace').strip()})"
    return "bubblewrap does not run here"
