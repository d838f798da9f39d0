"""The ASGI app: every operation of `openapi.yaml` routed through one dispatcher.

For each request the dispatcher gives a request ID, checks the API key,
answers 501 `not_implemented` for an operation of the spec that has no
handler yet, injects a fault if asked to, validates parameters and body against the
spec, applies the `Idempotency-Key`, calls the operation's handler, and turns
any failure into the error envelope. Previews are proxied under
`/previews/<preview id>/...`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ._errors import ApiProblem, from_os_error, not_found
from ._files import Files
from ._guard import LagMonitor
from ._network import SandboxBackend, SandboxTransport
from ._service import Call, Config, Handler, Service, json_response
from ._signed import SignedUrls, guarded
from ._snapshots import Snapshots
from ._spec import Operation, Validator, digits, invalid, load_spec, operations
from ._templates import Templates
from ._terminals import Terminals
from ._watches import Watches

logger = logging.getLogger("crownest_local")

MAX_JSON_BYTES = 1 << 20
IDEMPOTENCY_HEADER = "Idempotency-Key"
PREVIEW_TOKEN_HEADER = "x-crownest-preview-token"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host", "content-length"}
# What a preview never passes to the sandbox: the caller's credentials for CrowNest itself.
NOT_FORWARDED = HOP_BY_HOP | {"authorization", "cookie", "proxy-authorization", PREVIEW_TOKEN_HEADER}
FAULTS = ("unavailable", "rate_limited", "drop_before", "drop_after")
MAX_FAULT_STREAK = 3


class DroppedConnection(Exception):
    """Raised after the response headers to make the server close the connection mid-answer."""


class DropConnection(Response):
    """A fault: headers promising a body, then the connection closes (the client sees a network error)."""

    def __init__(self) -> None:
        super().__init__(status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
        raise DroppedConnection


class CutStream(Response):
    """A fault: a streamed answer whose connection closes after `limit` bytes of its body."""

    def __init__(self, response: Response, limit: int) -> None:
        super().__init__(status_code=response.status_code)
        self.response = response
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        room = self.limit

        async def send_until_cut(message: Any) -> None:
            nonlocal room
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                if len(body) >= room:
                    await send({"type": "http.response.body", "body": body[:room], "more_body": True})
                    raise DroppedConnection
                room -= len(body)
            await send(message)

        await self.response(scope, receive, send_until_cut)


class _QuietDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


QUIET_DROPS = _QuietDrops()


class Segment(Convertor[str]):
    """One path segment of the raw (still percent-encoded) path, decoded: an ID holding `%2F`
    stays one parameter instead of splitting the path into another route."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


register_url_convertor("segment", Segment())


class RouteOnRawPath:
    """Routes match the path as sent (`raw_path`), not its decoded form, in which `a%2Fb` is two segments."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path")
        if scope["type"] == "http" and raw:
            scope = {**scope, "path": raw.decode("latin-1")}
        await self.app(scope, receive, send)


def error_response(problem: ApiProblem, request_id: str) -> Response:
    response = json_response(problem.envelope(request_id), problem.status)
    response.headers.update(problem.headers)
    return response


def create_app(config: Config) -> Starlette:
    """The CrowNest Local ASGI app over `config.data_dir`."""
    spec = load_spec()
    service = Service(config)
    files = Files(service)
    signed = SignedUrls(files, config.data_dir / "url-secret")
    snapshots = Snapshots(service)
    templates = Templates(service, snapshots)
    terminals = Terminals(service)
    watches = Watches(service)
    handlers: dict[str, Handler] = {
        "listTemplates": templates.list_templates,
        "getTemplate": templates.get_template,
        "createSandbox": templates.create_sandbox,
        "snapshotSandbox": snapshots.snapshot_sandbox,
        "createTemplate": templates.create_template,
        "deleteTemplate": templates.delete_template,
        "forkSandbox": snapshots.fork_sandbox,
        "listSnapshots": snapshots.list_snapshots,
        "getSnapshot": snapshots.get_snapshot,
        "deleteSnapshot": snapshots.delete_snapshot,
        "listSandboxes": service.list_sandboxes,
        "getSandbox": service.get_sandbox,
        "getSandboxMetrics": service.sandbox_metrics,
        "pauseSandbox": service.pause_sandbox,
        "resumeSandbox": service.resume_sandbox,
        "killSandbox": service.kill_sandbox,
        "setSandboxTtl": service.set_sandbox_ttl,
        "runCommand": service.run_command,
        "startCommand": service.start_command,
        "listCommands": service.list_commands,
        "getCommand": service.get_command,
        "waitCommand": service.wait_command,
        "killCommand": service.kill_command,
        "sendCommandStdin": service.send_stdin,
        "streamCommandEvents": service.stream_events,
        "createPty": terminals.create_pty,
        "sendPtyInput": terminals.send_pty_input,
        "resizePty": terminals.resize_pty,
        "waitPty": terminals.wait_pty,
        "killPty": terminals.kill_pty,
        "streamPtyEvents": terminals.stream_pty_events,
        "writeFile": files.write_file,
        "readFile": files.read_file,
        "writeArchive": files.write_archive,
        "readArchive": files.read_archive,
        "listFiles": files.list_files,
        "getFileInfo": files.get_file_info,
        "fileExists": files.file_exists,
        "createFileUrl": signed.create_file_url,
        "createArtifactUrl": signed.create_artifact_url,
        "deleteFile": files.delete_file,
        "makeDirectory": files.make_directory,
        "moveFile": files.move_file,
        "createWatch": watches.create_watch,
        "deleteWatch": watches.delete_watch,
        "streamWatchEvents": watches.stream_watch_events,
        "createArtifact": files.create_artifact,
        "listSandboxArtifacts": files.list_sandbox_artifacts,
        "listArtifacts": files.list_artifacts,
        "getArtifact": files.get_artifact,
        "downloadArtifact": files.download_artifact,
        "deleteArtifact": files.delete_artifact,
        "createPreview": service.create_preview,
        "listPreviews": service.list_previews,
        "deletePreview": service.delete_preview,
    }
    ops = operations(spec)
    # The server serves the spec it has: an operation without a handler yet answers 501.
    missing = sorted({op.operation_id for op in ops} - handlers.keys())
    if missing:
        logger.warning("CrowNest Local has no handler for %s: they answer 501 not_implemented", ", ".join(missing))
    dispatcher = Dispatcher(config, Validator(spec), service)
    by_path: dict[str, dict[str, Operation]] = {}
    for op in ops:
        by_path.setdefault(op.path, {})[op.method] = op
    routes = [
        Route(path.replace("}", ":segment}"), dispatcher.endpoint(methods, handlers), methods=list(methods))
        for path, methods in by_path.items()
    ]
    proxy = PreviewProxy(service)
    any_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    routes.append(Route("/previews/{previewId:segment}", proxy, methods=any_method))
    routes.append(Route("/previews/{previewId:segment}/{rest:path}", proxy, methods=any_method))

    def refused(problem: ApiProblem) -> Response:
        return error_response(problem, new_request_id())

    routes.append(
        Route("/signed/files/{sandboxId}", guarded(signed.serve_file, refused), methods=["GET", "HEAD", "PUT"])
    )
    routes.append(
        Route("/signed/artifacts/{artifactId}", guarded(signed.serve_artifact, refused), methods=["GET", "HEAD"])
    )

    lag = LagMonitor()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.startup()
        lag.start()
        transport = SandboxTransport(SandboxBackend(service.ingress))
        async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30.0, read=None)) as http:
            proxy.http = http
            yield
        lag.stop()
        await service.shutdown()
        watches.close()

    async def no_route(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code, message = {
            404: ("not_found", f"No route {request.url.path}."),
            405: ("method_not_allowed", f"{request.url.path} does not take {request.method}."),
        }.get(status, ("internal_error", "An unexpected error."))
        request_id = new_request_id()
        headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}  # 405 carries `Allow`
        response = error_response(ApiProblem(status, code, message, headers=headers), request_id)
        response.headers["X-Request-Id"] = request_id
        return response

    logging.getLogger("uvicorn.error").addFilter(QUIET_DROPS)  # the same object: added once however many apps
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: no_route},
        middleware=[Middleware(RouteOnRawPath)],
    )
    app.state.stats = dispatcher.stats
    app.state.not_implemented = tuple(missing)
    app.state.lag = lag
    app.state.service = service
    app.state.watches = watches
    return app


def new_request_id() -> str:
    return f"req_{secrets.token_hex(12)}"


class Dispatcher:
    def __init__(self, config: Config, validator: Validator, service: Service) -> None:
        self.config = config
        self.validator = validator
        self.service = service
        self.random = random.Random()
        # Requests by operation ID and injected faults by kind, for tests of retry behaviour.
        self.stats: Counter[str] = Counter()
        self._streaks: dict[str, int] = {}  # faults in a row by Idempotency-Key
        self._in_flight: dict[str, asyncio.Event] = {}  # set when the request holding that key has answered
        self.key_scope = hashlib.sha256(config.api_key.encode()).hexdigest()[:16]

    def endpoint(self, methods: dict[str, Operation], handlers: dict[str, Handler]) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            op = methods[request.method if request.method != "HEAD" else "GET"]
            return await self.dispatch(op, handlers.get(op.operation_id), request)

        return endpoint

    async def dispatch(self, op: Operation, handler: Handler | None, request: Request) -> Response:
        request_id = new_request_id()
        self.stats[op.operation_id] += 1
        try:
            self._authenticate(request)
            if handler is None:
                raise ApiProblem(
                    501,
                    "not_implemented",
                    f"CrowNest Local does not implement {op.operation_id} yet.",
                    {"operationId": op.operation_id},
                )
            fault = self._fault(request.headers.get(IDEMPOTENCY_HEADER))
            if fault == "drop_before":
                return DropConnection()
            if fault in ("unavailable", "rate_limited"):
                status = 503 if fault == "unavailable" else 429
                raise ApiProblem(
                    status,
                    fault,
                    "Injected fault: try again shortly.",
                    headers={"Retry-After": "1", "retry-after-ms": "20"},
                )
            call = await self._parse(op, request)
            response = await self._idempotent(op, call, handler, request_id)
            if fault == "drop_after":
                return DropConnection()
            if self.config.cut_streams and isinstance(response, StreamingResponse | FileResponse):
                response = CutStream(response, self.config.cut_streams)
        except ApiProblem as problem:
            response = error_response(problem, request_id)
        except ClientDisconnect:
            response = Response(status_code=400)  # no one is left to read it; nothing to log
        except Exception as exc:
            known = from_os_error(exc) if isinstance(exc, OSError) else None
            if known is None:
                logger.exception("%s %s failed", request.method, request.url.path)
                known = ApiProblem(500, "internal_error", "An unexpected error.")
            response = error_response(known, request_id)
        response.headers["X-Request-Id"] = request_id
        return response

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization")
        if not header:
            raise ApiProblem(401, "missing_api_key", "Send your API key as 'Authorization: Bearer <key>'.")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(key.strip().encode(), self.config.api_key.encode()):
            raise ApiProblem(401, "invalid_api_key", "The API key is not valid for this server.")

    def _fault(self, idempotency_key: str | None) -> str | None:
        """The fault to inject into this request, if any.

        Each request fails with probability `faults`, except that attempts carrying one
        `Idempotency-Key` fail at most MAX_FAULT_STREAK times in a row: the soak proves
        exactly-once behaviour, and a client with that many retries always gets through.
        """
        streak = self._streaks.pop(idempotency_key, 0) if idempotency_key else 0
        if not self.config.faults or streak >= MAX_FAULT_STREAK or self.random.random() >= self.config.faults:
            return None
        if idempotency_key:
            self._streaks[idempotency_key] = streak + 1
        fault = self.random.choice(FAULTS)
        self.stats[f"fault:{fault}"] += 1
        return fault

    async def _parse(self, op: Operation, request: Request) -> Call:
        query: dict[str, Any] = {}
        headers: dict[str, str] = {}
        for param in op.parameters:
            if param.location == "path":
                continue
            if param.location == "header":
                value = request.headers.get(param.name)
                if value is not None:
                    if param.name == IDEMPOTENCY_HEADER:
                        self._check_idempotency_key(value, param.schema)
                    headers[param.name.lower()] = value
                continue
            values = request.query_params.getlist(param.name)
            if not values:
                if param.required:
                    invalid(param.name, "is required")
                continue
            converted = query_value(values, param.schema)
            self.validator.check(converted, param.schema, param.name)
            query[param.name] = converted
        body: Any = None
        if op.body_media_type == "application/json":
            body = await self._json_body(request, op)
        return Call(request=request, path=dict(request.path_params), query=query, headers=headers, body=body)

    def _check_idempotency_key(self, value: str, schema: Mapping[str, Any]) -> None:
        try:
            self.validator.check(value, schema, IDEMPOTENCY_HEADER)
        except ApiProblem as problem:
            raise ApiProblem(
                400,
                "invalid_idempotency_key",
                "The Idempotency-Key must be 1 to 255 printable ASCII characters.",
                problem.details,
            ) from None

    async def _json_body(self, request: Request, op: Operation) -> Any:
        too_large = ApiProblem(
            413, "payload_too_large", "A JSON body may be at most 1 MiB.", {"limitBytes": MAX_JSON_BYTES}
        )
        declared = digits(request.headers.get("content-length", ""))
        if declared is not None and declared > MAX_JSON_BYTES:
            raise too_large  # before reading any of it
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_JSON_BYTES:
                raise too_large
        if not raw:
            if op.body_required:
                raise ApiProblem(400, "invalid_request", "A JSON body is required.", {"field": "", "reason": "missing"})
            return {}
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ApiProblem(
                415, "unsupported_media_type", "Send the body as application/json.", {"contentType": content_type}
            )
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiProblem(
                400, "invalid_request", "The body is not valid JSON.", {"field": "", "reason": "invalid JSON"}
            ) from None
        assert op.body_schema is not None
        self.validator.check(body, op.body_schema, "")
        return body

    async def _idempotent(self, op: Operation, call: Call, handler: Handler, request_id: str) -> Response:
        key = call.headers.get(IDEMPOTENCY_HEADER.lower())
        if key is None:
            return to_response(await handler(call), op)
        fingerprint = hashlib.sha256(
            f"{op.method} {call.request.url.path}\n{json.dumps(call.body, sort_keys=True)}".encode()
        ).hexdigest()
        replay = await self._claim(key, fingerprint)
        if replay is not None:
            status, body = replay
            return Response(body, status, media_type="application/json", headers={"Idempotent-Replayed": "true"})
        self._in_flight[key] = finished = asyncio.Event()
        try:
            response = to_response(await handler(call), op)
        except ApiProblem as problem:
            response = error_response(problem, request_id)
        except BaseException:
            self.service.store.release_key(self.key_scope, key)
            raise
        else:
            self.service.store.finish_key(self.key_scope, key, response.status_code, bytes(response.body))
        finally:
            del self._in_flight[key]
            finished.set()
        return response

    async def _claim(self, key: str, fingerprint: str) -> tuple[int, bytes] | None:
        """`claim_key`, except that a retry of a request still being served here waits for it
        and then replays its answer (or, if it was forgotten, runs itself): a client whose
        blocking `run` timed out gets the command's result instead of 409 `idempotency_key_in_use`."""
        while True:
            try:
                return self.service.store.claim_key(self.key_scope, key, fingerprint)
            except ApiProblem as problem:
                running = self._in_flight.get(key)
                if problem.code != "idempotency_key_in_use" or running is None:
                    raise
                await running.wait()


def to_response(result: Any, op: Operation) -> Response:
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    return json_response(result, op.success_status)


def query_value(values: list[str], schema: Mapping[str, Any]) -> Any:
    """A query parameter's text converted to its schema's type (the validator then checks it)."""
    kind = schema.get("type")
    if kind == "array":
        return values
    value = values[-1]
    if kind == "integer":
        number = digits(value.removeprefix("-"))
        return value if number is None else -number if value.startswith("-") else number
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, value)
    return value


class PreviewProxy:
    """Forwards `/previews/<id>/<path>` to the preview's port; private previews need their token.

    The port is the one in the preview's own sandbox (see `_network.py`); the
    caller's `Authorization`, `Cookie` and hop-by-hop headers stay here.
    """

    def __init__(self, service: Service) -> None:
        self.service = service
        self.http: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._forward(request)
        except ApiProblem as problem:
            response = error_response(problem, new_request_id())
        await response(scope, receive, send)

    async def _forward(self, request: Request) -> Response:
        preview_id = request.path_params["previewId"]
        preview = self.service.store.get("preview", preview_id)
        if preview is None:
            raise not_found("preview", "previewId", preview_id)
        self.service.running_sandbox(preview["sandboxId"])
        if preview["visibility"] == "private":
            token = request.headers.get(PREVIEW_TOKEN_HEADER, "")
            if not hmac.compare_digest(token.encode(), preview.get("token", "").encode()):
                raise ApiProblem(
                    403, "permission_denied", "This preview is private: send its token.", {"previewId": preview_id}
                )
        assert self.http is not None
        listed = {name.strip().lower() for name in request.headers.get("connection", "").split(",")}
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED | listed]
        headers.append(("host", f"localhost:{preview['port']}"))
        rest = f"{request.path_params.get('rest', '')}?{request.url.query}".rstrip("?")
        upstream = self.http.build_request(
            request.method,
            f"http://{preview['sandboxId']}:{preview['port']}/{rest}",
            headers=headers,
            content=request.stream(),
        )
        try:
            answer = await self.http.send(upstream, stream=True)
        except httpx.TransportError as exc:
            raise ApiProblem(
                502,
                "unavailable",
                f"Nothing answers on port {preview['port']} in the sandbox.",
                {"port": preview["port"]},
            ) from exc
        return StreamingResponse(
            answer.aiter_raw(),
            answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP},
            background=BackgroundTask(answer.aclose),
        )
