"""The way out of a sandbox with internet: an HTTP proxy in the server, one Unix socket per sandbox.

A sandbox has no network interface but its own loopback. Its network helper
(`_agent.py`) relays 127.0.0.1:3128 inside it to this proxy, and commands get
`HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` pointing there. The proxy takes
`CONNECT host:port` (for TLS and anything else) and plain `http://` requests
in absolute form, and decides by host name, as Anthropic's sandbox-runtime
does:

- with an allow-list, the host must be one of its names, or under a
  `*.example.com` entry (which matches subdomains, not the name itself);
- every address the name resolves to must be a public one: loopback,
  private, link-local, multicast and reserved ranges are refused, so no name
  leads back to this machine or its network (the connection then goes to the
  address that was checked, not to a second lookup).

A refusal is an HTTP 403 whose body says why. The resolver and the
connector are injectable, so that tests decide names without the internet.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

Resolver = Callable[[str, int], Awaitable[list[str]]]
Connector = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]

MAX_HEAD = 64 * 1024
CONNECT_TIMEOUT_S = 10.0
CHUNK = 64 * 1024
DROPPED_HEADERS = {"proxy-connection", "proxy-authorization", "connection", "keep-alive"}


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def open_tcp(address: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(address, port)


def public_address(address: str) -> bool:
    """Whether an address is on the public internet (not this machine, its networks, or reserved)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def domain_allowed(host: str, allow_domains: list[str] | None) -> bool:
    """Whether `host` may be reached under `allow_domains` (None: any name)."""
    if allow_domains is None:
        return True
    name = host.lower().rstrip(".")
    for entry in allow_domains:
        pattern = entry.lower().rstrip(".")
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
        if name == pattern:
            return True
    return False


def split_target(target: str, default_port: int) -> tuple[str, int]:
    """(host, port) of `host:port`, `[v6]:port` or a bare host."""
    parsed = urllib.parse.urlsplit(f"//{target}")
    if not parsed.hostname:
        raise Refused(400, f"{target!r} names no host")
    try:
        port = parsed.port or default_port
    except ValueError as exc:
        raise Refused(400, f"{target!r} has a bad port") from exc
    return parsed.hostname, port


class Egress:
    """The proxy's policy and its listeners, one per sandbox with internet."""

    def __init__(self, resolve: Resolver = system_resolve, connect: Connector = open_tcp) -> None:
        self.resolve = resolve
        self.connect = connect

    async def listen(
        self, path: Path, allow_domains: list[str] | None, owner: tuple[int, int] | None
    ) -> asyncio.AbstractServer:
        """Serve the proxy at the Unix socket `path` for a sandbox with `allow_domains`."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await self._handle(reader, writer, allow_domains)
            writer.close()

        server = await asyncio.start_unix_server(handle, path=str(path), limit=MAX_HEAD)
        if owner is not None:
            os.chown(path, *owner)
        os.chmod(path, 0o600)
        return server

    async def open(
        self, host: str, port: int, allow_domains: list[str] | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to (host, port) if the policy allows it, else `Refused`."""
        if not domain_allowed(host, allow_domains):
            raise Refused(403, f"{host} is not in this sandbox's allowDomains")
        try:
            addresses = await self.resolve(host, port)
        except OSError as exc:
            raise Refused(502, f"{host} does not resolve") from exc
        if not addresses:
            raise Refused(502, f"{host} does not resolve")
        if not all(public_address(a) for a in addresses):
            raise Refused(403, f"{host} resolves to an address that is not public")
        try:
            return await asyncio.wait_for(self.connect(addresses[0], port), CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise Refused(502, f"{host}:{port} does not answer") from exc

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, allow_domains: list[str] | None
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")[:-2]
        parts = request_line.split(" ")
        try:
            if len(parts) != 3:
                raise Refused(400, "a malformed request line")
            method, target, version = parts
            if method == "CONNECT":
                host, port = split_target(target, 443)
                up_reader, up_writer = await self.open(host, port, allow_domains)
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                url = urllib.parse.urlsplit(target)
                if url.scheme != "http":
                    raise Refused(400, "only http:// URLs and CONNECT go through this proxy")
                host, port = split_target(url.netloc, 80)
                up_reader, up_writer = await self.open(host, port, allow_domains)
                kept = [h for h in header_lines if h.split(":", 1)[0].strip().lower() not in DROPPED_HEADERS]
                path = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
                lines = [f"{method} {path} {version}", *kept, "Connection: close", "", ""]
                up_writer.write("\r\n".join(lines).encode("latin-1"))
        except Refused as refusal:
            body = f"CrowNest Local sandbox proxy: {refusal.reason}.\n".encode()
            writer.write(
                f"HTTP/1.1 {refusal.status} Refused\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            return
        try:
            await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))
        finally:
            up_writer.close()


async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
