"""Resource limits of a sandbox: CPUs, memory, processes and disk space.

At start the server looks for a cgroup hierarchy it may create groups in,
per controller (`cpu`, `memory`, `pids`): cgroup v2 where its own group can
delegate the controller, else a v1 hierarchy of that controller. Each sandbox
gets one group per hierarchy, and every command's process joins it before
it executes anything (`Cgroup.preexec`, the one hook in the spawn), so that
the kernel counts the sandbox's processes together. Where a controller has no
usable hierarchy, the command gets a per-process rlimit instead (weaker; see
`LimitEnforcement` in openapi.yaml). Disk space has no cgroup: a file is
capped by RLIMIT_FSIZE, and the server measures each sandbox's folder about
once a second (`folder_usage`), refusing file writes and killing commands past
the limit.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import secrets
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("crownest_local")

MIB = 1 << 20
CPU_PERIOD_US = 100_000
# `cpuacct` (CPU time, for metrics) and `freezer` (pause) limit nothing; v1 mounts them apart from `cpu`.
CONTROLLERS = ("cpu", "memory", "pids", "cpuacct", "freezer")
# Which limit each controller enforces, by its name in `LimitEnforcement`.
ENFORCES = {"cpu": "cpu", "memory": "memory", "pids": "processes"}
PARENT_PREFIX = "crownest-local-"


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use. The defaults leave a 2-CPU machine usable by its other sandboxes."""

    cpu_count: int = 1
    memory_mb: int = 512
    disk_mb: int = 1024
    max_processes: int = 256

    @classmethod
    def from_request(cls, body: Mapping[str, Any]) -> Limits:
        """The limits a `SandboxCreate` body asks for, defaults for what it leaves out."""
        default = cls()
        return cls(
            cpu_count=body.get("cpuCount", default.cpu_count),
            memory_mb=body.get("memoryMb", default.memory_mb),
            disk_mb=body.get("diskMb", default.disk_mb),
            max_processes=body.get("maxProcesses", default.max_processes),
        )

    @property
    def disk_bytes(self) -> int:
        return self.disk_mb * MIB

    def wire(self, enforced_by: Mapping[str, str]) -> dict[str, Any]:
        """The Sandbox's `limits`."""
        return {
            "cpuCount": self.cpu_count,
            "memoryMb": self.memory_mb,
            "diskMb": self.disk_mb,
            "maxProcesses": self.max_processes,
            "enforcedBy": dict(enforced_by),
        }


@dataclass(frozen=True)
class Hierarchy:
    """Where this server makes its groups for some controllers: `parent/<sandbox id>`."""

    version: int
    parent: Path
    controllers: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"cgroup-v{self.version}"

    def settings(self, limits: Limits) -> list[tuple[str, str]]:
        """(file, value) pairs that set `limits` on a group, in the order they must be written."""
        out: list[tuple[str, str]] = []
        if "cpu" in self.controllers:
            quota = limits.cpu_count * CPU_PERIOD_US
            if self.version == 2:
                out.append(("cpu.max", f"{quota} {CPU_PERIOD_US}"))
            else:
                out += [("cpu.cfs_period_us", str(CPU_PERIOD_US)), ("cpu.cfs_quota_us", str(quota))]
        if "memory" in self.controllers:
            memory = str(limits.memory_mb * MIB)
            if self.version == 2:
                out += [("memory.max", memory), ("memory.swap.max", "0")]
            else:
                out += [("memory.limit_in_bytes", memory), ("memory.memsw.limit_in_bytes", memory)]
        if "pids" in self.controllers:
            out.append(("pids.max", str(limits.max_processes)))
        return out


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(mount root, mount point, fstype, super options) of every cgroup mount in a mountinfo text."""
    found = []
    for line in mountinfo.splitlines():
        before, _, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[3], fields[4], tail[0], set(tail[2].split(","))))
    return found


def _own_groups(proc_cgroup: str) -> dict[str, str]:
    """This process's group path by controller name (`""` for the v2 hierarchy)."""
    groups: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            groups[name] = path
    return groups


def _inside(mount_root: str, mount_point: str, group: str) -> Path | None:
    """The folder of `group` under a mount of `mount_root`, or None if the mount does not show it."""
    if group != mount_root and not group.startswith(mount_root.rstrip("/") + "/"):
        return None
    return Path(mount_point) / group[len(mount_root) :].lstrip("/")


def _prepare(folder: Path, v2_controllers: tuple[str, ...] = ()) -> None:
    folder.mkdir(exist_ok=True)
    if v2_controllers:
        (folder / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in v2_controllers))


def _sweep(own: Path) -> None:
    """Remove the parent groups that servers which are no longer running left behind."""
    for parent in own.glob(f"{PARENT_PREFIX}*"):
        pid = parent.name.removeprefix(PARENT_PREFIX).split("-")[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        for child in [p for p in parent.iterdir() if p.is_dir()]:
            Cgroup([child], Limits(), {}, cpu_seconds=False).remove(wait_s=1.0)
        with contextlib.suppress(OSError):
            parent.rmdir()


def _trial(hierarchy: Hierarchy) -> None:
    """Create, limit and remove a group, so that a hierarchy we may not use is found at start."""
    probe = hierarchy.parent / "probe"
    _prepare(probe)
    try:
        for name, value in hierarchy.settings(Limits()):
            with contextlib.suppress(FileNotFoundError):  # memsw/swap files exist only with swap accounting
                (probe / name).write_text(value)
    finally:
        probe.rmdir()


def detect(
    pid: int | None = None,
    *,
    mountinfo: str | None = None,
    proc_cgroup: str | None = None,
) -> list[Hierarchy]:
    """The hierarchies this server can limit sandboxes with, creating its parent group in each.

    v2 comes first for every controller its group can delegate; v1 serves the rest.
    """
    pid = os.getpid() if pid is None else pid
    tag = secrets.token_hex(4)  # one parent per server, also with several servers in one process
    mountinfo = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
    proc_cgroup = Path("/proc/self/cgroup").read_text() if proc_cgroup is None else proc_cgroup
    mounts, groups = _mounts(mountinfo), _own_groups(proc_cgroup)
    found: list[Hierarchy] = []
    wanted = list(CONTROLLERS)
    for root, point, fstype, _ in mounts:
        own = _inside(root, point, groups.get("", "/")) if fstype == "cgroup2" and "" in groups else None
        if own is None or not (own / "cgroup.controllers").exists():
            continue
        available = tuple(c for c in wanted if c in (own / "cgroup.controllers").read_text().split())
        if not available:
            continue
        hierarchy = Hierarchy(2, own / f"{PARENT_PREFIX}{pid}-{tag}", available)
        try:
            # Delegating needs a group without processes of its own (or the root).
            (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in available))
            _sweep(own)
            _prepare(hierarchy.parent, available)
            _trial(hierarchy)
        except OSError as exc:
            logger.info("cgroup v2 at %s cannot delegate %s: %s", own, ",".join(available), exc.strerror)
            continue
        found.append(hierarchy)
        wanted = [c for c in wanted if c not in available]
        break
    for controller in wanted:
        for root, point, fstype, options in mounts:
            own = _inside(root, point, groups.get(controller, "")) if fstype == "cgroup" else None
            if controller not in options or own is None or not own.is_dir():
                continue
            hierarchy = Hierarchy(1, own / f"{PARENT_PREFIX}{pid}-{tag}", (controller,))
            try:
                _sweep(own)
                _prepare(hierarchy.parent)
                _trial(hierarchy)
            except OSError as exc:
                logger.info("cgroup v1 %s at %s is not usable: %s", controller, own, exc.strerror)
                continue
            found.append(hierarchy)
            break
    return found


class Cgroup:
    """The groups of one sandbox, one per hierarchy, and the rlimits for what they do not cover."""

    def __init__(
        self,
        folders: list[Path],
        limits: Limits,
        enforced_by: dict[str, str],
        cpu_seconds: bool,
        controllers: Mapping[str, Path] | None = None,
    ) -> None:
        self.folders = folders
        self.controllers = dict(controllers or {})  # the sandbox's group of each controller
        self.limits = limits
        self.enforced_by = enforced_by
        self._cpu_rlimit = cpu_seconds

    def preexec(self, timeout_s: float | None) -> Join:
        """What the command's child runs between fork and exec (pass it as `preexec_fn`, then `close()` it).

        `timeout_s` is the command's time limit (None: none), which bounds its CPU seconds under the rlimit fallback.
        """
        fds = [os.open(folder / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for folder in self.folders]
        rlimits = [(resource.RLIMIT_FSIZE, self.limits.disk_bytes)]
        if self.enforced_by["memory"] == "rlimit":
            rlimits.append((resource.RLIMIT_AS, self.limits.memory_mb * MIB))
        if self.enforced_by["processes"] == "rlimit":
            rlimits.append((resource.RLIMIT_NPROC, self.limits.max_processes))
        if self._cpu_rlimit and timeout_s is not None:
            rlimits.append((resource.RLIMIT_CPU, max(1, int(timeout_s * self.limits.cpu_count) + 1)))
        return Join(fds, rlimits)

    def kill_all(self) -> None:
        """SIGKILL every process in the sandbox's groups (what escaped its command's process group too)."""
        for folder in self.folders:
            kill = folder / "cgroup.kill"
            if kill.exists():
                with contextlib.suppress(OSError):
                    kill.write_text("1")
                continue
            for _ in range(100):  # a process may fork while we kill; the pids limit makes this converge
                pids = _procs(folder)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)

    def remove(self, wait_s: float = 5.0) -> None:
        """Kill what is left and remove the groups (blocking: run it in a thread)."""
        deadline = time.monotonic() + wait_s
        for folder in self.folders:
            while True:
                self.kill_all()
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        logger.warning("could not remove cgroup %s: %s", folder, exc.strerror)
                        break
                    time.sleep(0.02)


class Join:
    """Joins a sandbox's groups and sets its rlimits, in a forked child before exec.

    The `cgroup.procs` files are opened by the server, so that the child only
    writes (0 moves the writer itself) and calls setrlimit: no allocation, no lock.
    """

    def __init__(self, fds: list[int], rlimits: list[tuple[int, int]]) -> None:
        self.fds = fds
        self.rlimits = rlimits

    def __call__(self) -> None:
        for fd in self.fds:
            os.write(fd, b"0")
        for which, value in self.rlimits:
            resource.setrlimit(which, (value, value))

    def close(self) -> None:
        """Close the server's copies of the files, once the child is spawned."""
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def _procs(folder: Path) -> list[int]:
    try:
        return [int(line) for line in (folder / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


@dataclass
class Limiter:
    """Creates each sandbox's `Cgroup` from the hierarchies found at start."""

    hierarchies: list[Hierarchy] = field(default_factory=list)

    @classmethod
    def start(cls, enabled: bool = True) -> Limiter:
        """Detect what can enforce limits here and say it in the log."""
        hierarchies: list[Hierarchy] = []
        if enabled:
            try:
                hierarchies = detect()
            except OSError as exc:
                logger.info("no cgroups: %s", exc.strerror)
        limiter = cls(hierarchies)
        enforced = limiter.enforced_by()
        logger.info("sandbox limits enforced by: %s", ", ".join(f"{k} {v}" for k, v in enforced.items()))
        return limiter

    def enforced_by(self, folders: Mapping[str, Path] | None = None) -> dict[str, str]:
        """What enforces each limit, for groups made in `folders` (by controller; all hierarchies if None)."""
        enforced = {"cpu": "rlimit", "memory": "rlimit", "processes": "rlimit", "disk": "usage-check"}
        if os.geteuid() == 0:
            enforced["processes"] = "none"  # RLIMIT_NPROC counts every process of the user, and root is exempt
        for hierarchy in self.hierarchies:
            for controller in hierarchy.controllers:
                if controller in ENFORCES and (folders is None or controller in folders):
                    enforced[ENFORCES[controller]] = hierarchy.name
        return enforced

    def create(self, sandbox_id: str, limits: Limits) -> Cgroup:
        """The sandbox's groups with `limits` written; a hierarchy that refuses is left out (and logged)."""
        folders: dict[str, Path] = {}
        made: list[Path] = []
        for hierarchy in self.hierarchies:
            folder = hierarchy.parent / sandbox_id
            try:
                _prepare(folder)
                for name, value in hierarchy.settings(limits):
                    with contextlib.suppress(FileNotFoundError):
                        (folder / name).write_text(value)
            except OSError as exc:
                logger.warning("cgroup %s for %s failed: %s", folder, sandbox_id, exc.strerror)
                with contextlib.suppress(OSError):
                    folder.rmdir()
                continue
            made.append(folder)
            folders.update(dict.fromkeys(hierarchy.controllers, folder))
        enforced = self.enforced_by(folders)
        return Cgroup(made, limits, enforced, cpu_seconds=enforced["cpu"] == "rlimit", controllers=folders)

    def close(self) -> None:
        """Remove this server's parent groups (their sandboxes' groups are gone by now)."""
        for hierarchy in self.hierarchies:
            for child in [p for p in hierarchy.parent.iterdir() if p.is_dir()] if hierarchy.parent.is_dir() else []:
                Cgroup([child], Limits(), {}, cpu_seconds=False).remove(wait_s=1.0)
            with contextlib.suppress(OSError):
                hierarchy.parent.rmdir()


def folder_usage(folder: Path) -> int:
    """Bytes of disk the files under `folder` take (allocated blocks; links are not followed)."""
    total = 0
    stack = [str(folder)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return total
