"""Whether something in a sandbox accepts connections on a port, the way the preview proxy reaches it."""

from __future__ import annotations

import asyncio
import contextlib

# How often a waiting preview tries the port again: short enough that a server that has just
# started listening is found within a frame, long enough to cost nothing while it boots.
RETRY_S = 0.02


async def accepts(port: int, timeout_s: float) -> bool:
    """Whether a TCP connection to `port` (where the preview proxy forwards) succeeds within `timeout_s`."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


async def wait_until_listening(port: int, wait_ms: int) -> bool:
    """Try `port` until something accepts a connection (True) or `wait_ms` runs out (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000
    while True:
        left = deadline - loop.time()
        if await accepts(port, max(left, RETRY_S)):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(RETRY_S, max(deadline - loop.time(), 0)))
