"""Signed URLs: a file or an artifact reached without the API key, until the URL expires.

The URL carries what it grants (the sandbox or artifact, the path, the method,
the expiry) and a nonce, and an HMAC-SHA256 of all of them under a secret that
only this server knows (kept in its data folder, so URLs survive a restart).
Changing any of them breaks the signature. A `PUT` URL's nonce is spent by the
first write through it that succeeds; a write that fails leaves it usable.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from ._errors import ApiProblem
from ._files import Files
from ._service import Call, json_response
from ._spec import digits

DEFAULT_EXPIRY_S = 300


def clock() -> float:
    """The time signed URLs are checked against; tests replace it (a server-side clock hook)."""
    return time.time()


def invalid() -> ApiProblem:
    return ApiProblem(403, "signed_url_invalid", "This signed URL was altered, or this server did not sign it.")


class SignedUrls:
    """The operations that sign URLs, and the unauthenticated routes that serve them."""

    def __init__(self, files: Files, secret_file: Path) -> None:
        self.files = files
        self.secret = _secret(secret_file)
        self.spent: dict[str, float] = {}  # PUT nonces used, with their URL's expiry

    def _sign(self, *fields: str) -> str:
        return hmac.new(self.secret, "\n".join(fields).encode(), hashlib.sha256).hexdigest()

    def _url(self, call: Call, route: str, fields: dict[str, str], expires_in_s: int) -> dict[str, Any]:
        expires = int(clock()) + expires_in_s
        query = {**fields, "expires": str(expires), "nonce": secrets.token_urlsafe(12)}
        query["sig"] = self._sign(route, *(f"{k}={v}" for k, v in sorted(query.items())))
        base = str(call.request.base_url).rstrip("/")
        return {
            "url": f"{base}{route}?{urlencode(query)}",
            "method": fields["method"],
            "expiresAt": datetime.datetime.fromtimestamp(expires, datetime.UTC).isoformat().replace("+00:00", "Z"),
        }

    async def create_file_url(self, call: Call) -> Response:
        folder = self.files.running_folder(call)
        path = folder.virtual(call.body["path"])
        method = call.body.get("method", "GET")
        route = f"/signed/files/{call.path['sandboxId']}"
        body = self._url(call, route, {"path": path, "method": method}, call.body.get("expiresInS", DEFAULT_EXPIRY_S))
        return json_response(body, 201)

    async def create_artifact_url(self, call: Call) -> Response:
        artifact = self.files.live_artifact(call)
        left = datetime.datetime.fromisoformat(artifact["expiresAt"]).timestamp() - clock()
        expires_in_s = min((call.body or {}).get("expiresInS", DEFAULT_EXPIRY_S), max(int(left), 1))
        route = f"/signed/artifacts/{artifact['id']}"
        return json_response(self._url(call, route, {"method": "GET"}, expires_in_s), 201)

    def _check(self, request: Request) -> dict[str, str]:
        """The URL's fields if its signature holds and it has not expired: 403 otherwise."""
        query = dict(request.query_params)
        sig = query.pop("sig", "")
        expires = digits(query.get("expires", ""))
        if expires is None or "nonce" not in query:
            raise invalid()
        expected = self._sign(request.url.path, *(f"{k}={v}" for k, v in sorted(query.items())))
        if not hmac.compare_digest(sig.encode(), expected.encode()):
            raise invalid()
        if query.get("method") != ("GET" if request.method == "HEAD" else request.method):
            raise invalid()
        if clock() >= expires:
            raise ApiProblem(403, "signed_url_expired", "This signed URL has expired.", {"expiredAt": expires})
        return query

    async def serve_file(self, request: Request) -> Response:
        fields = self._check(request)
        call = Call(request, dict(request.path_params), {"path": fields["path"]}, dict(request.headers), None)
        if request.method != "PUT":
            return await self.files.read_file(call)
        now = clock()
        self.spent = {nonce: expiry for nonce, expiry in self.spent.items() if expiry > now}
        nonce = fields["nonce"]
        if nonce in self.spent:
            raise ApiProblem(409, "signed_url_used", "This signed URL was already used for a write.")
        self.spent[nonce] = float(fields["expires"])
        try:
            return json_response(await self.files.write_file(call), 200)
        except BaseException:
            del self.spent[nonce]
            raise

    async def serve_artifact(self, request: Request) -> Response:
        self._check(request)
        call = Call(request, dict(request.path_params), {}, dict(request.headers), None)
        return await self.files.download_artifact(call)


def guarded(
    serve: Callable[[Request], Awaitable[Response]], on_error: Callable[[ApiProblem], Response]
) -> Callable[[Request], Awaitable[Response]]:
    """`serve`, with an `ApiProblem` answered as the API's error envelope."""

    async def endpoint(request: Request) -> Response:
        try:
            return await serve(request)
        except ApiProblem as problem:
            return on_error(problem)

    return endpoint


def _secret(path: Path) -> bytes:
    """The server's signing secret: read from `path`, or made there (readable by the server only)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    secret = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:  # another server on this data folder made it meanwhile
        return path.read_bytes()
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret
