"""Running one command: its process tree, its output log, and its final state.

Output goes to an append-only log file, one record per chunk, stdout and
stderr in the order they arrived. An event's id is the log's byte offset
after it, so a client that reconnects with `Last-Event-ID` gets exactly the
rest. Each record is valid UTF-8 (an incremental decoder replaces invalid
bytes without splitting a character), and the first MiB of each stream is
also kept for the Command's `stdout` and `stderr`.

A command's process tree ends with it: when the shell exits, whatever it
left running in its process group is killed, so that no output pipe stays
open and no process outlives its command unseen. Under bubblewrap the
command's PID namespace ends with it; without isolation, `sweep` also finds
what left the process group (`setsid`).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import os
import signal
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

OUTPUT_CAP = 1 << 20
CHUNK = 64 * 1024
STREAMS = {b"o": "stdout", b"e": "stderr"}
RECORD_HEADER = struct.Struct(">cI")


class OutputLog:
    """The whole output of one command, on disk, addressable by byte offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # (start offset, length, stream, position of the data in the file)
        self._index: list[tuple[int, int, str, int]] = []
        self.size = 0
        if path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        position = 0
        while position + RECORD_HEADER.size <= len(data):
            tag, length = RECORD_HEADER.unpack_from(data, position)
            position += RECORD_HEADER.size
            if position + length > len(data):
                break
            self._index.append((self.size, length, STREAMS[tag], position))
            self.size += length
            position += length

    def append(self, stream: str, data: bytes) -> None:
        tag = b"o" if stream == "stdout" else b"e"
        with self.path.open("ab") as f:
            position = f.tell() + RECORD_HEADER.size
            f.write(RECORD_HEADER.pack(tag, len(data)) + data)
        self._index.append((self.size, len(data), stream, position))
        self.size += len(data)

    def read_after(self, offset: int) -> Iterator[tuple[int, str, str]]:
        """(offset after the chunk, stream, text) for every chunk after `offset`."""
        pending = [entry for entry in self._index if entry[0] + entry[1] > offset]
        if not pending:
            return
        with self.path.open("rb") as f:
            for start, length, stream, position in pending:
                skip = max(offset - start, 0)
                f.seek(position + skip)
                yield start + length, stream, f.read(length - skip).decode("utf-8", "replace")


class StreamCapture:
    """Decodes one stream as it arrives and keeps its first MiB."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.head = bytearray()
        self.truncated = False

    def feed(self, data: bytes, final: bool = False) -> bytes:
        """The UTF-8 text of `data` (whole characters only), after keeping its share of the head."""
        text = self._decoder.decode(data, final).encode()
        room = OUTPUT_CAP - len(self.head)
        if len(text) > room:
            self.truncated = True
        self.head += text[: max(room, 0)]
        return text

    def text(self) -> str:
        return self.head.decode("utf-8", "ignore")


class LiveCommand:
    """A command whose process is running under this server."""

    def __init__(self, body: dict[str, Any], log: OutputLog) -> None:
        self.body = body
        self.log = log
        self.captures = {"stdout": StreamCapture(), "stderr": StreamCapture()}
        self.process: asyncio.subprocess.Process | None = None
        self.finished = asyncio.Event()
        self._changed = asyncio.Event()
        self._ended_by: str | None = None  # "killed" or "timed_out", set by the server
        self.started = time.monotonic()
        self.sweep: Callable[[signal.Signals], None] | None = None  # signals what left the process group

    async def start(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        stdin: str | None,
        keep_stdin_open: bool,
        **spawn: Any,
    ) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            **spawn,
        )
        if stdin:
            await self.write_stdin(stdin, eof=not keep_stdin_open)
        elif not keep_stdin_open:
            await self.write_stdin("", eof=True)

    async def run(self, timeout_s: float) -> None:
        """Pump the output until the process ends or its time is up."""
        assert self.process is not None and self.process.stdout and self.process.stderr
        pumps = [
            asyncio.ensure_future(self._pump("stdout", self.process.stdout)),
            asyncio.ensure_future(self._pump("stderr", self.process.stderr)),
        ]
        try:
            await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            self._ended_by = self._ended_by or "timed_out"
        self.send_signal(signal.SIGKILL)
        await self.process.wait()
        await asyncio.gather(*pumps)

    async def _pump(self, stream: str, reader: asyncio.StreamReader) -> None:
        capture = self.captures[stream]
        while True:
            data = await reader.read(CHUNK)
            text = capture.feed(data, final=not data)
            if text:
                self.log.append(stream, text)
                self.notify()
            if not data:
                return

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    def send_signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the whole process group (the sandbox's PID namespace with bubblewrap)."""
        if self.process is None:
            return  # SIGKILL goes out even after the shell exited: it clears what the shell left running
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)
        if self.sweep is not None:
            self.sweep(sig)

    def kill(self, sig: signal.Signals, reason: str) -> None:
        self._ended_by = self._ended_by or reason
        self.send_signal(sig)

    async def write_stdin(self, data: str, eof: bool) -> None:
        assert self.process is not None and self.process.stdin is not None
        stdin = self.process.stdin
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if data:
                stdin.write(data.encode())
                await stdin.drain()
            if eof:
                stdin.close()

    @property
    def stdin_open(self) -> bool:
        return self.process is not None and self.process.stdin is not None and not self.process.stdin.is_closing()

    def snapshot(self) -> dict[str, Any]:
        """The Command's wire form as of now."""
        body = dict(self.body)
        for stream, capture in self.captures.items():
            body[stream] = capture.text()
            body[f"{stream}Truncated"] = capture.truncated
        return body

    def outcome(self) -> tuple[str, int | None]:
        """Final status and exit code."""
        assert self.process is not None and self.process.returncode is not None
        if self._ended_by is not None:
            return self._ended_by, None
        code = self.process.returncode
        if code < 0:
            code = 128 - code  # killed by a signal from inside the sandbox, as a shell reports it
        return ("succeeded" if code == 0 else "failed"), code
