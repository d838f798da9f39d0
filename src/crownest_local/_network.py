"""Each sandbox's network: its helper process, its egress listener, and the way previews reach in.

A sandbox's network namespace is made by bubblewrap for its helper, which holds it
(`_agent.py`), started when the sandbox is created and killed when it ends.
Commands join it; the server never does. Previews connect through the
helper's ingress socket to a port on the sandbox's own loopback, so a preview
reaches only what a process of that sandbox listens on: never a port of this
machine, never the server itself, never another sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import typing
from collections.abc import Callable
from pathlib import Path

import httpcore
import httpx

from ._egress import Egress
from ._errors import ApiProblem
from ._isolation import Isolation, SandboxFolder

AGENT_SOURCE = (Path(__file__).parent / "_agent.py").read_text()
READY_TIMEOUT_S = 10.0


class SandboxNetwork:
    """The network namespace of one sandbox (through its helper) and, with internet, its egress proxy."""

    def __init__(self, helper: asyncio.subprocess.Process, proxy: asyncio.AbstractServer | None) -> None:
        self.helper = helper  # bubblewrap, which the helper dies with
        self.proxy = proxy
        self.pid = 0  # the helper itself, inside the namespaces

    @classmethod
    async def start(
        cls,
        isolation: Isolation,
        folder: SandboxFolder,
        egress: Egress,
        *,
        internet: bool,
        allow_domains: list[str] | None,
    ) -> SandboxNetwork:
        if isolation.python is None:
            raise ApiProblem(503, "isolation_unavailable", "No Python interpreter the sandbox's helper can run.")
        proxy = await egress.listen(folder.net / "egress.sock", allow_domains, folder.owner) if internet else None
        net = str(folder.net)
        helper = await asyncio.create_subprocess_exec(
            *isolation.as_user(folder.owner),
            isolation.bwrap,
            "--unshare-user",
            "--unshare-net",
            "--die-with-parent",
            "--ro-bind",
            "/",
            "/",
            "--bind",
            net,
            net,
            isolation.python,
            "-I",
            "-S",
            "-c",
            AGENT_SOURCE,
            net,
            "1" if internet else "0",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd="/",
            start_new_session=True,
        )
        network = cls(helper, proxy)
        assert helper.stdout is not None
        try:
            ready = await asyncio.wait_for(helper.stdout.readline(), READY_TIMEOUT_S)
        except TimeoutError:
            ready = b""
        words = ready.split()
        if len(words) == 2 and words[0] == b"ready" and words[1].isdigit():
            network.pid = int(words[1])
        else:
            network.stop()
            _, stderr = await helper.communicate()
            error = stderr.decode(errors="replace").strip().splitlines()
            raise ApiProblem(
                503,
                "isolation_unavailable",
                f"The sandbox's network could not be set up: {error[-1] if error else 'its helper did not start'}.",
            )
        return network

    def stop(self) -> None:
        """Kill the helper (the namespace ends with it) and stop taking proxy connections."""
        with contextlib.suppress(ProcessLookupError):
            self.helper.send_signal(signal.SIGKILL)
        if self.proxy is not None:
            self.proxy.close()

    async def wait_closed(self) -> None:
        """After `stop()`: the helper reaped and its pipes closed, so that nothing is left to the GC."""
        await self.helper.communicate()


Ingress = Callable[[str], "Path | None"]


class SandboxBackend(httpcore.AsyncNetworkBackend):
    """Connects to `(sandbox ID, port)` through that sandbox's helper, never to a host port.

    `ingress(sandbox_id)` gives the helper's socket; None means the server
    runs without isolation, and the port is then on this machine's loopback.
    """

    def __init__(self, ingress: Ingress) -> None:
        self.ingress = ingress
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        path = self.ingress(host)
        if path is None:
            return await self.inner.connect_tcp("127.0.0.1", port, timeout)
        stream = await self.inner.connect_unix_socket(str(path), timeout)
        await stream.write(f"{port}\n".encode(), timeout)
        if await stream.read(1, timeout) != b"+":
            await stream.aclose()
            raise httpcore.ConnectError(f"nothing listens on port {port} in the sandbox")
        return stream

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("previews connect only to sandbox ports")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class SandboxTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a `SandboxBackend` (pooled per sandbox and port)."""

    def __init__(self, backend: SandboxBackend) -> None:
        super().__init__()
        self._pool = httpcore.AsyncConnectionPool(network_backend=backend, max_connections=100)
