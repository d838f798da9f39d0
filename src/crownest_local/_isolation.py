"""Where a sandbox lives on disk, how its paths map there, and how its commands are spawned.

A sandbox is a folder with `home/` (the sandbox's `/home/user`) and `tmp/`
(its `/tmp`). Where bubblewrap is installed, every command runs inside it:
the host's system read-only, the sandbox's own `/home/user` and `/tmp`
writable, its own PID, IPC and UTS namespaces, and no view of `/home`, of
other sandboxes, or of the server's data folder. Without bubblewrap the
command runs as a plain child process, and only the file API stays confined.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ._errors import ApiProblem

HOME = "/home/user"
TMP = "/tmp"
# The sandbox paths the file API can reach, and the sandbox subfolder each maps to.
ROOTS = {HOME: "home", TMP: "tmp"}
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"


def bubblewrap() -> str | None:
    """The `bwrap` binary, unless CROWNEST_LOCAL_NO_BWRAP is set (to test the fallback)."""
    if os.environ.get("CROWNEST_LOCAL_NO_BWRAP"):
        return None
    return shutil.which("bwrap")


def python_dir() -> str:
    """A folder with `python` and `python3`: the base interpreter's, not a virtualenv's."""
    return str(Path(os.path.realpath(getattr(sys, "_base_executable", sys.executable))).parent)


def invalid_path(path: str, reason: str) -> ApiProblem:
    return ApiProblem(400, "invalid_path", f"The path {path!r} {reason}.", {"path": path, "reason": reason})


@dataclass(frozen=True)
class SandboxPath:
    """A path as the sandbox sees it (`virtual`) and where it is on the host (`host`)."""

    virtual: str
    host: Path
    root: Path


class SandboxFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def create(self) -> None:
        for sub in ROOTS.values():
            (self.folder / sub).mkdir(parents=True, exist_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def resolve(self, path: str, *, follow: bool = True) -> SandboxPath:
        """Map a sandbox path to the host, or raise 400 `invalid_path`.

        Relative paths resolve against `/home/user`. The path must stay in
        `/home/user` or `/tmp` after `..` is applied, and so must every
        symlink on the way (the last component's too when `follow`).
        """
        if not path or "\x00" in path:
            raise invalid_path(path, "is empty or contains NUL")
        absolute = path if path.startswith("/") else f"{HOME}/{path}"
        virtual = "/" + posixpath.normpath(absolute).lstrip("/")
        for prefix, sub in ROOTS.items():
            if virtual == prefix or virtual.startswith(prefix + "/"):
                root = self.folder / sub
                host = root / virtual[len(prefix) :].lstrip("/")
                break
        else:
            raise invalid_path(path, f"is outside {HOME} and {TMP}")
        real_root = os.path.realpath(root)
        checked = host if follow else host.parent
        real = os.path.realpath(checked)
        if real != real_root and not real.startswith(real_root + os.sep):
            raise invalid_path(path, "goes through a symlink that leaves the sandbox")
        return SandboxPath(virtual, host, root)

    def virtual_path(self, host: Path) -> str:
        """The sandbox path of a host path inside this folder."""
        for prefix, sub in ROOTS.items():
            root = self.folder / sub
            if host == root or root in host.parents:
                rest = host.relative_to(root).as_posix()
                return prefix if rest == "." else f"{prefix}/{rest}"
        raise ValueError(f"{host} is not in {self.folder}")

    def command(
        self, shell_command: str, cwd: str, *, bwrap: str | None, data_dir: Path
    ) -> tuple[list[str], str, dict[str, str]]:
        """argv, host working directory and base environment for `/bin/sh -c shell_command`."""
        env = {
            "PATH": f"{python_dir()}:{SYSTEM_PATH}",
            "HOME": HOME,
            "USER": "user",
            "LANG": "C.UTF-8",
            "PYTHONUNBUFFERED": "1",
        }
        if bwrap is None:
            host_cwd = str(self.resolve(cwd).host)
            env["HOME"] = str(self.folder / ROOTS[HOME])
            return ["/bin/sh", "-c", shell_command], host_cwd, env
        argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # Hide the data folder (every sandbox, the database, the artifacts) and the host's /home.
        argv += ["--tmpfs", str(data_dir), "--tmpfs", "/home"]
        argv += ["--bind", str(self.folder / ROOTS[HOME]), HOME, "--bind", str(self.folder / ROOTS[TMP]), TMP]
        argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox", "--die-with-parent"]
        argv += ["--chdir", posixpath.normpath(posixpath.join(HOME, cwd)), "/bin/sh", "-c", shell_command]
        return argv, str(self.folder), env
