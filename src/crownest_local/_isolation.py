"""Where a sandbox lives on disk, how its paths map there, and how its commands are spawned.

A sandbox is a folder with `home/` (the sandbox's `/home/user`) and `tmp/`
(its `/tmp`). Where bubblewrap is installed, every command runs inside it:
the host's system read-only, the sandbox's own `/home/user` and `/tmp`
writable, its own PID, IPC and UTS namespaces, and no view of `/home`, of
other sandboxes, or of the server's data folder. Without bubblewrap the
command runs as a plain child process, and only the file API stays confined.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from ._beneath import Location, Owner, remove_path, walk
from ._beneath import invalid_path as invalid_path  # where _service finds it

logger = logging.getLogger("crownest_local")

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
    creates in it (and its `home/` and `tmp/`): the host user its commands run as.
    """

    def __init__(self, folder: Path, owner: Owner | None = None) -> None:
        self.folder = folder
        self.owner = owner

    def create(self) -> None:
        for sub in ROOTS.values():
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
            if self.owner is not None:
                os.chown(self.folder / sub, *self.owner)

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

    def command(
        self, shell_command: str, cwd: str, *, bwrap: str | None, data_dir: Path, shell: str = "/bin/sh"
    ) -> tuple[list[str], str, dict[str, str]]:
        """argv, host working directory and base environment for `shell -c shell_command`."""
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
            return [shell, "-c", shell_command], host_cwd, env
        argv = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        # Hide the data folder (every sandbox, the database, the artifacts) and the host's /home.
        argv += ["--tmpfs", str(data_dir), "--tmpfs", "/home"]
        argv += ["--bind", str(self.folder / ROOTS[HOME]), HOME, "--bind", str(self.folder / ROOTS[TMP]), TMP]
        argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", "sandbox", "--die-with-parent"]
        argv += ["--chdir", posixpath.normpath(posixpath.join(HOME, cwd)), shell, "-c", shell_command]
        return argv, str(self.folder), env
