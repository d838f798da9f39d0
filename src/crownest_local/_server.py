"""`LocalServer`: CrowNest Local on a free loopback port, in a background thread."""

from __future__ import annotations

import logging
import secrets
import socket
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from crownest import AsyncCrowNest, CrowNest
from crownest._types import TimeoutTypes

from ._app import create_app
from ._beneath import remove_path
from ._guard import Guard, raise_open_files_limit
from ._service import DEFAULT_RETENTION_S, ISOLATION_WARNING, RUN_CAP_MS, Config

logger = logging.getLogger("crownest_local")

START_TIMEOUT_S = 15.0
# How long an idle connection stays open: longer than clients keep one (httpx: 5 s), as behind a
# load balancer (nginx: 75 s), so a client never sends a request on a connection the server is
# closing at that moment (uvicorn's default, 5 s, races httpx's and fails calls with ReadError).
KEEP_ALIVE_S = 75


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port). Created with IPPROTO_TCP so that asyncio turns Nagle off on
    its connections; a protocol of 0 (as `socket.create_server` gives) costs 40 ms of delayed ACK per answer."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    return sock


def new_api_key() -> str:
    return f"cn_test_local_{secrets.token_hex(16)}"


class LocalServer:
    """CrowNest Local serving in this process until `stop()` (or the end of `with`).

    `data_dir=None` keeps state in a temporary folder removed at stop; pass a
    folder to keep sandboxes' records, artifacts and idempotency keys across
    restarts. `faults` is the share of requests that fail as networks and
    gateways do (503, 429, a connection dropped before or after the operation).
    `cut_streams`, if not 0, makes every streamed answer (file content, command
    output events) lose its connection after that many bytes of its body.

    `host` and `port` are where it listens (port 0: a free one; see `base_url`);
    `api_key` is the one key it accepts (default: a new `cn_test_local_...`);
    `max_sandboxes` is how many sandboxes may run at once (one more: 403
    `quota_exceeded`). `isolation` is `"bubblewrap"` (the default; where
    bubblewrap cannot run, commands are refused with 503 `isolation_unavailable`)
    or `"none"`, which runs commands as plain processes of this user and warns at
    every start (`True` and `False` mean the same two).

    `retention` is how long (seconds) an ended sandbox's records stay readable
    before they answer 404. A request's headers must arrive within
    `header_timeout` seconds and its body keep arriving (1 KiB per
    `body_timeout` seconds), else 408; at most `max_connections` connections
    are open, `max_connections_per_client` from one address, else 503.
    `cgroups=False` enforces sandboxes' limits with rlimits only, as where the
    server may not create cgroups. `run_cap` is how long (seconds) `commands.run()`
    with `timeout_ms=0` may run (10 minutes by default); `pause_retention` how long
    (seconds) a paused sandbox is kept before it ends (24 hours by default).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        data_dir: str | Path | None = None,
        api_key: str | None = None,
        faults: float = 0.0,
        cut_streams: int = 0,
        max_sandboxes: int = 64,
        isolation: str | bool = "bubblewrap",
        retention: float = DEFAULT_RETENTION_S,
        header_timeout: float = 10.0,
        body_timeout: float = 30.0,
        max_connections: int = 1024,
        max_connections_per_client: int = 256,
        cgroups: bool = True,
        run_cap: float = RUN_CAP_MS / 1000,
        pause_retention: float = DEFAULT_RETENTION_S,
    ) -> None:
        modes = {True: "bubblewrap", False: "none", "bubblewrap": "bubblewrap", "none": "none"}
        if not isinstance(isolation, str | bool) or isolation not in modes:
            raise ValueError(f'isolation must be "bubblewrap" or "none", got {isolation!r}')
        self.host = host
        self._port = port
        self._own_data_dir = data_dir is None
        # Resolved once: sandboxes bind folders under it, from wherever bubblewrap runs.
        self.data_dir = Path(data_dir).resolve() if data_dir is not None else None
        self.api_key = api_key or new_api_key()
        self._config: Config | None = None
        self.faults = faults
        self.cut_streams = cut_streams
        self.max_sandboxes = max_sandboxes
        self.isolation = modes[isolation]
        self.retention = retention
        self.cgroups = cgroups
        self.run_cap = run_cap
        self.pause_retention = pause_retention
        self.guard = Guard(header_timeout, body_timeout, max_connections, max_connections_per_client)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._stats: Counter[str] = Counter()
        self._app: Any = None

    def __repr__(self) -> str:
        where = self.base_url if self._socket is not None else "not running"
        return f"LocalServer({where}, data_dir={str(self.data_dir)!r})"

    @property
    def base_url(self) -> str:
        """`http://<host>:<port>` of the running server (RuntimeError if it is not running)."""
        if self._socket is None:
            raise RuntimeError("LocalServer is not running: call start() or use `with LocalServer() as server:`")
        return f"http://{self.host}:{self._socket.getsockname()[1]}"

    @property
    def faults(self) -> float:
        """The share of requests that fail on purpose; it may be changed while the server runs."""
        return self._faults

    @faults.setter
    def faults(self, rate: float) -> None:
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"faults must be in [0, 1), got {rate!r}")
        self._faults = rate
        if self._config is not None:
            self._config.faults = rate

    @property
    def cut_streams(self) -> int:
        """Body bytes after which streamed answers lose their connection (0: never); changeable while running."""
        return self._cut_streams

    @cut_streams.setter
    def cut_streams(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"cut_streams must be a non-negative int, got {limit!r}")
        self._cut_streams = limit
        if self._config is not None:
            self._config.cut_streams = limit

    @property
    def stats(self) -> dict[str, int]:
        """Requests received by operation ID (e.g. `createSandbox`) and faults injected (`fault:<kind>`)."""
        return dict(self._stats)

    def take_loop_lag(self) -> float:
        """The longest the server's event loop was late (seconds) since the last call: how long one
        request held up every other."""
        return float(self._app.state.lag.take()) if self._app is not None else 0.0

    def sandbox_folder(self, sandbox_id: str) -> Path:
        """Where a running sandbox's files are on this machine: `home/` is its `/home/user`, `tmp/` its `/tmp`."""
        if self._app is None:
            raise RuntimeError("LocalServer is not running")
        return Path(self._app.state.service.folder(sandbox_id).folder)

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LocalServer:
        """Start serving in a background thread; returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("LocalServer is already running")
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="crownest-local-"))
        config = Config(
            data_dir=self.data_dir,
            api_key=self.api_key,
            faults=self.faults,
            cut_streams=self.cut_streams,
            max_sandboxes=self.max_sandboxes,
            retention_s=self.retention,
            cgroups=self.cgroups,
            run_cap_ms=int(self.run_cap * 1000),
            pause_retention_s=self.pause_retention,
            isolation=self.isolation,
        )
        if self.isolation == "none":
            warnings.warn(ISOLATION_WARNING, UserWarning, stacklevel=2)
        self._config = config
        self.guard.fit_open_files(raise_open_files_limit())
        app = self._app = create_app(config)
        self._stats = app.state.stats
        self._socket = listening_socket(self.host, self._port)
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_level="warning",
                http=self.guard.protocol(),
                ws="none",
                lifespan="on",
                timeout_keep_alive=KEEP_ALIVE_S,
                timeout_graceful_shutdown=5,
            )
        )
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("CrowNest Local did not start (see the log above)")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving: running sandboxes are killed; a temporary data folder is removed."""
        if self._server is not None:
            self._server.should_exit = True
        stopped = True
        if self._thread is not None:
            self._thread.join(timeout=30)
            stopped = not self._thread.is_alive()
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        if self._own_data_dir and self.data_dir is not None:
            if stopped:
                remove_path(self.data_dir)
            else:  # its shutdown still works in it
                logger.warning("CrowNest Local did not stop within 30 s; leaving %s in place", self.data_dir)
            self.data_dir = None

    def client(
        self,
        *,
        timeout: TimeoutTypes = 660.0,  # DEFAULT_TIMEOUT, written out for the reference
        max_retries: int = 2,  # DEFAULT_MAX_RETRIES
        http_client: httpx.Client | None = None,
        default_headers: dict[str, str] | None = None,
    ) -> CrowNest:
        """A `CrowNest` client for this server (the arguments as for `CrowNest`)."""
        return CrowNest(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            default_headers=default_headers,
        )

    def async_client(
        self,
        *,
        timeout: TimeoutTypes = 660.0,  # DEFAULT_TIMEOUT, written out for the reference
        max_retries: int = 2,  # DEFAULT_MAX_RETRIES
        http_client: httpx.AsyncClient | None = None,
        default_headers: dict[str, str] | None = None,
    ) -> AsyncCrowNest:
        """An `AsyncCrowNest` client for this server (the arguments as for `AsyncCrowNest`)."""
        return AsyncCrowNest(
            api_key=self.api_key,
            base_url=self.base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            default_headers=default_headers,
        )

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
