"""Whether something in a sandbox accepts connections on a port, reached the way the preview proxy reaches it."""

from __future__ import annotations

import asyncio
import contextlib

import httpcore

from ._network import Ingress, SandboxBackend

# How often a waiting preview tries the port again: short enough that a server that has just
# started listening is found within a frame, long enough to cost nothing while it boots.
RETRY_S = 0.02


async def accepts(ingress: Ingress, sandbox_id: str, port: int, timeout_s: float) -> bool:
    """Whether a connection to `port` in the sandbox (through its network helper, as previews go) succeeds."""
    try:
        stream = await SandboxBackend(ingress).connect_tcp(sandbox_id, port, timeout=timeout_s)
    except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError):
        return False
    with contextlib.suppress(OSError, httpcore.NetworkError):
        await stream.aclose()
    return True


async def wait_until_listening(ingress: Ingress, sandbox_id: str, port: int, wait_ms: int) -> bool:
    """Try `port` in the sandbox until something accepts a connection (True) or `wait_ms` runs out (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_ms / 1000
    while True:
        if await accepts(ingress, sandbox_id, port, max(deadline - loop.time(), RETRY_S)):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(RETRY_S, max(deadline - loop.time(), 0)))
