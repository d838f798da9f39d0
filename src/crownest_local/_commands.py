"""Running one command: its process tree, its output log, and its final state.

Output goes to an append-only log file, one record per chunk, stdout and
stderr in the order they arrived. An event's id is the log's byte offset
after it, so a client that reconnects with `Last-Event-ID` gets exactly the
rest. Each record is valid UTF-8 (an incremental decoder replaces invalid
bytes without splitting a character), and the first MiB of each stream is
also kept for the Command's `stdout` and `stderr`. The log keeps the first
64 MiB of output; past it the process runs on, its output is read slowly and
dropped, and the Command says `outputTruncated`.

A command's process tree ends with it: when the shell exits, whatever it
left running in its process group is killed, so that no output pipe stays
open and no process outlives its command unseen. Under bubblewrap the
command's PID namespace ends with it; without isolation, `sweep` also finds
what left the process group (`setsid`).
"""

from __future__ import annotations

import asyncio
import bisect
import codecs
import contextlib
import json
import os
import signal
import struct
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

OUTPUT_CAP = 1 << 20
# What a command's output log keeps on disk (stdout and stderr together); past it output is read and dropped.
LOG_CAP = 64 << 20
CHUNK = 64 * 1024
DRAIN_PAUSE_S = 0.01  # between reads of output that is dropped: at most 6.4 MB/s of a flood is read
STREAMS = {b"o": "stdout", b"e": "stderr"}
RECORD_HEADER = struct.Struct(">cI")
CHECKPOINT = struct.Struct(">QQ")  # (output offset, file position) of a record's start
CHECKPOINT_BYTES = 1 << 20
CHECKPOINT_RECORDS = 1024
HELD_CHECK_S = 1.0  # how often a held command's wait looks whether it was released


class OutputLog:
    """The output of one command, on disk, addressable by byte offset, read in constant memory.

    Records are `tag, length, UTF-8 bytes`. Every MiB of output, or every 1,024 records,
    a checkpoint (output offset, file position) goes to a side file, so that a replay
    from any offset seeks near it and reads at most 1,024 records to get there.
    """

    def __init__(self, path: Path, *, raw: bool = False) -> None:
        self.path = path
        self.raw = raw  # a terminal's bytes as they came (else whole UTF-8 characters)
        self.index_path = path.with_suffix(".idx")
        self.size = 0  # output bytes kept
        self.truncated = False
        self._file_size = 0
        self._checkpoints: list[tuple[int, int]] = [(0, 0)]
        self._since_checkpoint = (0, 0)  # (bytes, records)
        self._writer: BinaryIO | None = None
        if path.exists():
            self._load()

    def _load(self) -> None:
        if self.index_path.exists():
            data = self.index_path.read_bytes()
            self._checkpoints += [
                CHECKPOINT.unpack_from(data, at) for at in range(0, len(data) - CHECKPOINT.size + 1, CHECKPOINT.size)
            ]
        self.size, self._file_size = self._checkpoints[-1]
        for end, _, _, _, position in self._records(*self._checkpoints[-1]):
            self.size, self._file_size = end, position
        self.truncated = self.size >= LOG_CAP

    def append(self, stream: str, data: bytes) -> None:
        """Add `data` (whole UTF-8 characters unless `raw`) to the log; past LOG_CAP it is dropped and the log truncated."""
        room = LOG_CAP - self.size
        if len(data) > room:
            self.truncated = True
            data = data[:room] if self.raw else data[:room].decode("utf-8", "ignore").encode()
        if not data:
            return
        if self._writer is None:
            self._writer = self.path.open("ab", buffering=0)
        self._writer.write(RECORD_HEADER.pack(b"o" if stream == "stdout" else b"e", len(data)) + data)
        self.size += len(data)
        self._file_size += RECORD_HEADER.size + len(data)
        size, records = self._since_checkpoint[0] + len(data), self._since_checkpoint[1] + 1
        if size >= CHECKPOINT_BYTES or records >= CHECKPOINT_RECORDS:
            self._checkpoints.append((self.size, self._file_size))
            with self.index_path.open("ab") as index:
                index.write(CHECKPOINT.pack(self.size, self._file_size))
            size, records = 0, 0
        self._since_checkpoint = (size, records)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def read_after(self, offset: int) -> Iterator[tuple[int, str, str]]:
        """(offset after the chunk, stream, text) for every chunk after `offset`, as of now."""
        for end, stream, data in self.bytes_after(offset):
            yield end, stream, data.decode("utf-8", "replace")

    def bytes_after(self, offset: int) -> Iterator[tuple[int, str, bytes]]:
        """(offset after the chunk, stream, bytes) for every chunk after `offset`, as of now."""
        at = bisect.bisect_right(self._checkpoints, (offset, 1 << 63)) - 1
        limit = self.size
        for end, stream, start, data, _ in self._records(*self._checkpoints[max(at, 0)], limit=limit):
            if end > offset:
                yield end, stream, data[max(offset - start, 0) :]

    def _records(
        self, size: int, position: int, limit: int | None = None
    ) -> Iterator[tuple[int, str, int, bytes, int]]:
        """(offset after, stream, offset before, bytes, file position after) of the records from a checkpoint."""
        with contextlib.suppress(FileNotFoundError), self.path.open("rb") as f:
            f.seek(position)
            while limit is None or size < limit:
                header = f.read(RECORD_HEADER.size)
                if len(header) < RECORD_HEADER.size:
                    return
                tag, length = RECORD_HEADER.unpack(header)
                data = f.read(length)
                if len(data) < length:
                    return
                position += RECORD_HEADER.size + length
                yield size + length, STREAMS[tag], size, data, position
                size += length


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
        self._deadline: float | None = None  # monotonic time its time limit ends; None: no limit
        self._held_at: float | None = None  # while its sandbox is paused: since when (its clock is stopped)
        self.started = time.monotonic()
        self.sweep: Callable[[signal.Signals], None] | None = None  # signals what left the process group

    async def start(
        self,
        argv: list[str],
        cwd: str,
        env: dict[str, str],
        stdin: str | None,
        keep_stdin_open: bool,
        preexec: Callable[[], None] | None = None,
        **spawn: Any,
    ) -> None:
        """Spawn the process; `preexec` runs in the child before exec (it puts the child in its sandbox's limits)."""
        self.process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec,
            **spawn,
        )
        if stdin:
            await self.write_stdin(stdin, eof=not keep_stdin_open)
        elif not keep_stdin_open:
            await self.write_stdin("", eof=True)

    async def run(self, timeout_s: float | None) -> None:
        """Pump the output until the process ends or its time (if it has a limit) is up."""
        assert self.process is not None
        pumps = [asyncio.ensure_future(pump) for pump in self._pumps()]
        self._deadline = None if timeout_s is None else time.monotonic() + timeout_s
        exited = asyncio.ensure_future(self.process.wait())
        while not exited.done():
            if self._deadline is None:
                await asyncio.wait({exited})
                break
            left = HELD_CHECK_S if self._held_at is not None else self._deadline - time.monotonic()
            if left <= 0:
                self._ended_by = self._ended_by or "timed_out"
                break
            await asyncio.wait({exited}, timeout=left)
        self.send_signal(signal.SIGKILL)
        await self.process.wait()
        await asyncio.gather(*pumps)

    def _pumps(self) -> list[Coroutine[Any, Any, None]]:
        """What reads the process's output into the log until it ends."""
        assert self.process is not None and self.process.stdout and self.process.stderr
        return [self._pump("stdout", self.process.stdout), self._pump("stderr", self.process.stderr)]

    async def _pump(self, stream: str, reader: asyncio.StreamReader) -> None:
        capture = self.captures[stream]
        while True:
            data = await reader.read(CHUNK)
            if data and capture.truncated and self.log.truncated:
                await asyncio.sleep(DRAIN_PAUSE_S)  # nothing more is kept: drain slowly, at little cost to others
                continue
            text = capture.feed(data, final=not data)
            if text:
                self.log.append(stream, text)
                self.notify()
            if not data:
                return

    def hold(self) -> None:
        """Stop its time limit's clock (its sandbox is paused)."""
        if self._held_at is None:
            self._held_at = time.monotonic()

    def release(self) -> None:
        """Restart its time limit's clock with the time that was left."""
        if self._held_at is not None:
            if self._deadline is not None:
                self._deadline += time.monotonic() - self._held_at
            self._held_at = None

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

    async def write_stdin(self, data: str | bytes, eof: bool) -> None:
        assert self.process is not None and self.process.stdin is not None
        stdin = self.process.stdin
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            if data:
                stdin.write(data.encode() if isinstance(data, str) else data)
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
        body["outputTruncated"] = self.log.truncated
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


class Client(Protocol):
    """The side of a request an event stream needs: whether its client went away."""

    async def is_disconnected(self) -> bool: ...


async def event_stream(
    offset: int,
    request: Client,
    *,
    live: Callable[[], LiveCommand | None],
    stored_log: Callable[[], OutputLog],
    output: Callable[[str, bytes], dict[str, Any]],
    final: Callable[[], dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The Server-Sent Events of an output log after `offset`, for a command or a terminal.

    `output` events (data `output(stream, bytes)`, id the offset after them) as the log grows,
    then an `exit` event (data `final()`) once `live()` is None, the process having ended.
    """
    while True:
        current = live()
        log = current.log if current is not None else stored_log()
        for end, stream, data in log.bytes_after(offset):
            if await request.is_disconnected():  # uvicorn takes writes to a closed connection silently
                return
            offset = end
            yield f"id: {end}\nevent: output\ndata: {json.dumps(output(stream, data), ensure_ascii=False)}\n\n".encode()
        if current is None:
            yield f"id: {offset}\nevent: exit\ndata: {json.dumps(final(), ensure_ascii=False)}\n\n".encode()
            return
        if current.log.size > offset or current.finished.is_set():
            continue  # it changed while the last event was written: its notice has passed
        await current.changed(timeout_s=10)
        if current.log.size == offset and not current.finished.is_set():
            if await request.is_disconnected():
                return
            yield b": keep-alive\n\n"
