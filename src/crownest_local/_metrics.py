"""What one sandbox uses now: CPU, memory and its processes.

With cgroups the kernel counts the sandbox's processes together: CPU time
from `cpuacct.usage` (v1) or `cpu.stat` (v2), memory from
`memory.usage_in_bytes` or `memory.current`, the processes from
`cgroup.procs`. Without a group for a counter, the server adds up what
`/proc` says of the sandbox's processes (those of its commands' sessions):
a process that has ended then no longer counts, so CPU time may go down.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ._limits import Cgroup

CPU_WINDOW_S = 0.1  # CPU use is measured over this long
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Sample:
    cpu_ns: int
    memory_bytes: int
    process_count: int


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cgroup_cpu_ns(cgroup: Cgroup) -> int | None:
    folder = cgroup.controllers.get("cpuacct")
    if folder is not None:
        return _read_int(folder / "cpuacct.usage")
    for folder in cgroup.folders:
        try:
            stat = (folder / "cpu.stat").read_text()
        except OSError:
            continue
        for line in stat.splitlines():
            name, _, value = line.partition(" ")
            if name == "usage_usec":
                return int(value) * 1000
    return None


def _cgroup_memory(cgroup: Cgroup) -> int | None:
    folder = cgroup.controllers.get("memory")
    if folder is None:
        return None
    for name in ("memory.usage_in_bytes", "memory.current"):
        value = _read_int(folder / name)
        if value is not None:
            return value
    return None


def sandbox_pids(cgroup: Cgroup | None, sessions: Iterable[int]) -> list[int]:
    """The sandbox's processes: its groups' members, or else those of its commands' sessions."""
    if cgroup is not None:
        for folder in cgroup.folders:
            try:
                return [int(line) for line in (folder / "cgroup.procs").read_text().split()]
            except OSError:
                continue
    wanted = set(sessions)
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and wanted:
            stat = _proc_stat(int(entry.name))
            if stat is not None and int(stat[3]) in wanted:  # field 6 of stat: the session ID
                found.append(int(entry.name))
    return found


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None once it has gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def sample(cgroup: Cgroup | None, sessions: Iterable[int]) -> Sample:
    """What the sandbox uses as of now (blocking: run it in a thread)."""
    pids = sandbox_pids(cgroup, sessions)
    cpu = _cgroup_cpu_ns(cgroup) if cgroup is not None else None
    memory = _cgroup_memory(cgroup) if cgroup is not None else None
    if cpu is None or memory is None:
        ticks, pages = 0, 0
        for pid in pids:
            stat = _proc_stat(pid)
            if stat is not None:
                ticks += int(stat[11]) + int(stat[12])  # utime, stime
                pages += int(stat[21])  # rss
        cpu = cpu if cpu is not None else ticks * 1_000_000_000 // CLOCK_TICKS
        memory = memory if memory is not None else pages * PAGE
    return Sample(cpu, memory, len(pids))


def measure(cgroup: Cgroup | None, sessions: list[int]) -> tuple[Sample, float]:
    """The sandbox's use now and its CPU use over the last CPU_WINDOW_S, in percent of one core."""
    before, started = sample(cgroup, sessions), time.monotonic()
    time.sleep(CPU_WINDOW_S)
    after = sample(cgroup, sessions)
    elapsed_ns = (time.monotonic() - started) * 1e9
    return after, round(max(0, after.cpu_ns - before.cpu_ns) * 100 / elapsed_ns, 1)
