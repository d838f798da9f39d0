"""The network helper of one sandbox: it holds the sandbox's network namespace.

The server starts it (as the sandbox's user, from the text of this file, with
nothing but the standard library) when the sandbox is created, under
bubblewrap with a user namespace and a network namespace of its own (only a
loopback interface), and kills it when the sandbox ends. It serves two bridges:

- ingress, for previews: a Unix socket `ingress.sock` in the folder given; a
  client sends a port number and a newline, the helper connects to that port
  on the namespace's loopback, answers `+` (or `-` if nothing listens) and
  then relays bytes both ways. Nothing else can reach into the namespace.
- egress, when the sandbox has internet: a TCP listener on 127.0.0.1:3128
  inside the namespace, each connection relayed to the server's HTTP proxy at
  the Unix socket `egress.sock` in the same folder. It is the namespace's
  only way out, and the proxy decides where it may go.

Every command of the sandbox joins this namespace (`nsenter`), so they share
one loopback, as processes on one machine do, and none of them sees the host's.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

EGRESS_PORT = 3128
CHUNK = 65536


def pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(CHUNK):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both sides are done, then close both."""
    other = threading.Thread(target=pump, args=(b, a), daemon=True)
    other.start()
    pump(a, b)
    other.join()
    a.close()
    b.close()


def read_port(conn: socket.socket) -> int | None:
    line = b""
    while not line.endswith(b"\n") and len(line) < 8:
        data = conn.recv(1)
        if not data:
            return None
        line += data
    text = line.strip()
    return int(text) if text.isdigit() and 0 < int(text) < 65536 else None


def connect_local(port: int) -> socket.socket | None:
    for host in ("127.0.0.1", "::1"):
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError:
            continue
    return None


def ingress(conn: socket.socket) -> None:
    port = read_port(conn)
    upstream = connect_local(port) if port is not None else None
    if upstream is None:
        conn.sendall(b"-")
        conn.close()
        return
    upstream.settimeout(None)
    conn.sendall(b"+")
    relay(conn, upstream)


def egress(conn: socket.socket, proxy: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(proxy)
    except OSError:
        conn.close()
        upstream.close()
        return
    relay(conn, upstream)


def serve(listener: socket.socket, handle: Callable[..., None], *args: str) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn, *args), daemon=True).start()


def main(folder: str, internet: str) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # before any thread, for sigwait below
    listeners = []
    inbound = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    inbound.bind(os.path.join(folder, "ingress.sock"))
    inbound.listen(64)
    listeners.append(threading.Thread(target=serve, args=(inbound, ingress), daemon=True))
    if internet == "1":
        outbound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        outbound.bind(("127.0.0.1", EGRESS_PORT))
        outbound.listen(64)
        proxy = os.path.join(folder, "egress.sock")
        listeners.append(threading.Thread(target=serve, args=(outbound, egress, proxy), daemon=True))
    for thread in listeners:
        thread.start()
    sys.stdout.write(f"ready {os.getpid()}\n")  # the pid to join the namespaces of (`nsenter -t`)
    sys.stdout.flush()
    signal.sigwait({signal.SIGTERM})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
