"""One interactive terminal: a program on a pseudo-terminal opened inside its sandbox.

The terminal is opened by the sandbox's own process, at the end of the same chain that
starts a command (setpriv → nsenter → bwrap: the sandbox's user, namespaces, seccomp,
cgroup limits). That process is `STARTER`, a few lines of Python run by the sandbox's
interpreter: it opens a pseudo-terminal on the sandbox's own `/dev/pts` (bwrap's `--dev`
mounts a fresh devpts instance), starts the program in a new session with the terminal's
slave side as its controlling terminal and its stdin, stdout and stderr, hands the master
side to the server over an inherited socket (`SCM_RIGHTS`), and exits with the program's
status. So `tty` in the sandbox names a device of the sandbox (`/dev/pts/0`), and no
terminal of the host is ever visible inside.

The server reads the master side into an output log of raw bytes (capped like a
command's, replayed by byte offset), writes input to it, and resizes it with
`TIOCSWINSZ`, which the kernel turns into `SIGWINCH` for the program.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import struct
import termios
from collections.abc import Callable, Coroutine
from typing import Any

from ._commands import CHUNK, DRAIN_PAUSE_S, LiveCommand, OutputLog

RECEIVE_TIMEOUT_S = 10.0  # for the starter to open the terminal and hand it over

# Run as `python3 -I -S -c STARTER <fd> <cols> <rows> <program...>` inside the sandbox.
STARTER = """
import fcntl, os, socket, struct, sys, termios
channel = socket.socket(fileno=int(sys.argv[1]))
master, slave = os.openpty()
fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", int(sys.argv[3]), int(sys.argv[2]), 0, 0))
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX") if os.sysconf("SC_OPEN_MAX") > 0 else 1024)
    try:
        os.execvp(sys.argv[4], sys.argv[4:])
    except OSError as exc:
        os.write(2, f"{sys.argv[4]}: {exc.strerror}\\r\\n".encode())
    os._exit(127)
os.close(slave)
socket.send_fds(channel, [b"pty"], [master])
os.close(master)
channel.close()
status = os.waitpid(pid, 0)[1]
code = os.waitstatus_to_exitcode(status)
sys.exit(128 - code if code < 0 else code)
"""


def starter_program(channel_fd: int, cols: int, rows: int, program: list[str]) -> list[str]:
    """The argv that opens a terminal of `cols` by `rows` for `program` and hands it over on `channel_fd`."""
    return ["python3", "-I", "-S", "-c", STARTER, str(channel_fd), str(cols), str(rows), *program]


def window_size(cols: int, rows: int) -> bytes:
    return struct.pack("HHHH", rows, cols, 0, 0)


class LivePty(LiveCommand):
    """A terminal whose program is running under this server: a command whose output is the terminal's master."""

    def __init__(self, body: dict[str, Any], log: OutputLog) -> None:
        super().__init__(body, log)
        self.master: int | None = None
        self._writers: set[asyncio.Future[None]] = set()  # inputs waiting for room in the terminal

    async def start_terminal(
        self, argv: list[str], cwd: str, env: dict[str, str], preexec: Callable[[], None] | None, **spawn: Any
    ) -> None:
        """Spawn the starter (`argv`); `preexec` runs in the child before exec (it joins the sandbox's limits)."""
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=preexec,
            **spawn,
        )

    async def receive(self, channel: socket.socket) -> None:
        """Take the master side from the starter; OSError if it never comes (the starter failed)."""
        channel.settimeout(RECEIVE_TIMEOUT_S)
        _, fds, _, _ = await asyncio.to_thread(socket.recv_fds, channel, 16, 1)
        if not fds:
            raise OSError(errno.EIO, "the terminal's starter ended before it opened a terminal")
        os.set_blocking(fds[0], False)
        self.master = fds[0]

    def _pumps(self) -> list[Coroutine[Any, Any, None]]:
        return [self._pump_terminal()]

    async def _pump_terminal(self) -> None:
        assert self.master is not None
        try:
            while data := await _read(self.master):
                if self.log.truncated:
                    await asyncio.sleep(DRAIN_PAUSE_S)  # nothing more is kept: drain slowly
                    continue
                self.log.append("stdout", data)
                self.notify()
        finally:
            master, self.master = self.master, None
            asyncio.get_running_loop().remove_writer(master)  # before the close: the fd number may be reused
            for waiting in self._writers:
                if not waiting.done():
                    waiting.set_result(None)  # its input is lost with the program
            os.close(master)

    async def write_stdin(self, data: str | bytes, eof: bool) -> None:
        """Type `data` on the terminal (`eof` does not apply: a terminal has no end of input but Ctrl-D)."""
        view = memoryview(data.encode() if isinstance(data, str) else data)
        while view and self.master is not None:
            try:
                view = view[os.write(self.master, view) :]
            except BlockingIOError:
                await self._writable(self.master)
            except OSError:
                return  # the program is gone: what it did not read is lost with it

    async def _writable(self, master: int) -> None:
        """Wait until the terminal takes more input, or is closed."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._writers.add(ready)
        loop.add_writer(master, _wake, ready)
        try:
            await ready
        finally:
            self._writers.discard(ready)
            if self.master == master:
                loop.remove_writer(master)

    @property
    def stdin_open(self) -> bool:
        return self.master is not None

    def resize(self, cols: int, rows: int) -> None:
        """Set the terminal's size; the kernel sends the program `SIGWINCH`."""
        if self.master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, window_size(cols, rows))
        self.body = {**self.body, "cols": cols, "rows": rows}

    def snapshot(self) -> dict[str, Any]:
        """The Pty's wire form as of now."""
        return {**self.body, "outputTruncated": self.log.truncated}


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def _read(fd: int) -> bytes:
    """The next bytes from a terminal's master side; b"" once every program on it has closed it (EIO)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise
