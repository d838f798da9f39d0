"""Freezing a sandbox's processes where they are, and thawing them.

The strongest mechanism the sandbox's groups offer wins: the cgroup v1
`freezer` controller (`freezer.state`), else cgroup v2's `cgroup.freeze`;
the kernel then stops every process of the group at once, also one forked
while freezing, and the processes cannot tell. Without either, the server
sends SIGSTOP to each of the sandbox's processes (those of its group, or of
its commands' sessions) until no new one appears, and SIGCONT to thaw: a
process may see the stop (its parent gets SIGCHLD), and a process that
handles SIGCONT runs its handler.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from ._limits import Cgroup, Limiter
from ._metrics import sandbox_pids

FREEZE_WAIT_S = 5.0  # a freezing group settles within milliseconds; past this the state is reported as is
SIGNAL_ROUNDS = 20


def mechanism(cgroup: Cgroup | None) -> str:
    """What pauses the sandbox of `cgroup`: `cgroup-v1 freezer`, `cgroup-v2 freeze` or `SIGSTOP`."""
    if cgroup is not None:
        if "freezer" in cgroup.controllers:
            return "cgroup-v1 freezer"
        if _v2_folder(cgroup) is not None:
            return "cgroup-v2 freeze"
    return "SIGSTOP"


def server_mechanism(limiter: Limiter) -> str:
    """What pauses sandboxes on this server, for its start-up log."""
    for hierarchy in limiter.hierarchies:
        if "freezer" in hierarchy.controllers:
            return "cgroup-v1 freezer"
    if any(h.version == 2 for h in limiter.hierarchies):
        return "cgroup-v2 freeze"
    return "SIGSTOP/SIGCONT of each process (no cgroup freezer here)"


def _v2_folder(cgroup: Cgroup) -> Path | None:
    return next((folder for folder in cgroup.folders if (folder / "cgroup.freeze").exists()), None)


def freeze(cgroup: Cgroup | None, sessions: Iterable[int]) -> None:
    """Stop every process of the sandbox (blocking: run it in a thread)."""
    _set(cgroup, sessions, frozen=True)


def thaw(cgroup: Cgroup | None, sessions: Iterable[int]) -> None:
    """Let every process of the sandbox go on from where it stopped (blocking: run it in a thread)."""
    _set(cgroup, sessions, frozen=False)


def _set(cgroup: Cgroup | None, sessions: Iterable[int], *, frozen: bool) -> None:
    kind = mechanism(cgroup)
    deadline = time.monotonic() + FREEZE_WAIT_S
    if cgroup is not None and kind == "cgroup-v1 freezer":
        state = cgroup.controllers["freezer"] / "freezer.state"
        want = "FROZEN" if frozen else "THAWED"
        state.write_text(want)
        while state.read_text().strip() != want and time.monotonic() < deadline:
            time.sleep(0.005)
        return
    if cgroup is not None and kind == "cgroup-v2 freeze":
        folder = _v2_folder(cgroup)
        assert folder is not None
        (folder / "cgroup.freeze").write_text("1" if frozen else "0")
        want_line = f"frozen {int(frozen)}"
        while want_line not in (folder / "cgroup.events").read_text() and time.monotonic() < deadline:
            time.sleep(0.005)
        return
    sessions = list(sessions)
    sig = signal.SIGSTOP if frozen else signal.SIGCONT
    signalled: set[int] = set()
    for _ in range(SIGNAL_ROUNDS):  # a process may fork while we stop its siblings: go until none is new
        new = [pid for pid in sandbox_pids(cgroup, sessions) if pid not in signalled]
        if not new:
            break
        for pid in new:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        signalled.update(new)
