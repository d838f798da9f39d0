"""`crownest-local serve`: run CrowNest Local in the foreground."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path

from ._extra import MissingExtraError, load_local_server

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "crownest-local"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="crownest-local", description="CrowNest Local, a CrowNest server on this machine."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the CrowNest API until interrupted")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s, loopback only)")
    serve.add_argument("--port", type=int, default=8787, help="port (default: %(default)s; 0 for any free port)")
    serve.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="state folder (default: %(default)s)")
    serve.add_argument(
        "--api-key",
        default=os.environ.get("CROWNEST_LOCAL_API_KEY"),
        help="the key clients must send (default: a new one)",
    )
    serve.add_argument(
        "--faults", type=float, default=0.0, metavar="RATE", help="share of requests that fail on purpose (0 to 1)"
    )
    serve.add_argument(
        "--cut-streams",
        type=int,
        default=0,
        metavar="BYTES",
        help="streamed answers lose their connection after this many body bytes (0: never)",
    )
    serve.add_argument(
        "--max-sandboxes", type=int, default=64, help="running sandboxes allowed at once (default: %(default)s)"
    )
    serve.add_argument(
        "--retention",
        type=float,
        default=24 * 3600,
        metavar="SECONDS",
        help="how long an ended sandbox's records stay readable (default: %(default)s, 24 h)",
    )
    serve.add_argument(
        "--unsafe-no-isolation",
        action="store_true",
        help="run commands as plain processes of this user, with no isolation (only for code you trust)",
    )
    args = parser.parse_args(argv)

    try:  # after argument errors and --help, which need no server
        server_class = load_local_server()
    except MissingExtraError as error:
        parser.exit(1, f"{parser.prog}: {error}\n")
    server = server_class(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        api_key=args.api_key,
        faults=args.faults,
        cut_streams=args.cut_streams,
        max_sandboxes=args.max_sandboxes,
        retention=args.retention,
        isolation="none" if args.unsafe_no_isolation else "bubblewrap",
    )
    server.start()
    print(f"CrowNest Local on {server.base_url} (data in {server.data_dir})", flush=True)
    print(f"export CROWNEST_BASE_URL={server.base_url}", flush=True)
    print(f"export CROWNEST_API_KEY={server.api_key}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5) and server.running:
            pass
    finally:
        server.stop()
