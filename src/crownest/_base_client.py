"""Sending one request: auth, timeouts, idempotency keys, retries, errors, parsing.

Every generated operation reaches the network through `SyncAPIClient.request`
or `AsyncAPIClient.request`; everything that is not I/O lives in `BaseClient`
and is shared by both.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from functools import cached_property
from typing import Any

import httpx

from ._bodies import aread_body, read_body
from ._deadlines import DeadlinePassed, Job, attempt_budget, attempt_deadline, run_with_deadline
from ._downloads import Download
from ._exceptions import (
    BodyNotReplayableError,
    CrowNestApiError,
    CrowNestConnectionError,
    CrowNestError,
    CrowNestTimeoutError,
    ResponseValidationError,
    api_error_from_response,
    body_excerpt,
    loads,
    parsed,
)
from ._logs import configure_from_env, logger
from ._response import capture_response
from ._retries import is_retryable_status, retry_delay
from ._streams import AsyncStream, EventResume, RangeResume, Resume, Stream
from ._types import NOT_GIVEN, NotGiven, RequestSpec, TimeoutTypes, is_header_value
from ._uploads import Progress, Upload
from ._version import __version__

DEFAULT_BASE_URL = "https://api.crownest.dev"
DEFAULT_TIMEOUT = 660.0
DEFAULT_MAX_RETRIES = 2
CONNECT_TIMEOUT = 5.0
# Added to the time a server may hold an answer on purpose (`RequestSpec.wait_ms`).
WAIT_MARGIN = 30.0
USER_AGENT = f"crownest-python/{__version__}"
# Every connection may stay open between calls. httpcore 1.0 closes an idle connection whenever the
# pool holds more than `max_keepalive_connections` connections in any state (encode/httpcore#1000),
# so with httpx's default of 20 a burst of concurrent calls reconnects for nearly every request, and
# a connection closed that way can be one just handed to a waiting request (encode/httpcore#1110).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


def keepalive_options() -> list[tuple[int, int, int]]:
    """TCP keepalive: a connection whose peer vanished (a dead sandbox host, a dropped NAT entry)
    fails within about two minutes instead of hanging until the read timeout."""
    options = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPALIVE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
        if hasattr(socket, name):  # Linux has KEEPIDLE; macOS names it KEEPALIVE
            options.append((socket.IPPROTO_TCP, getattr(socket, name), value))
    return options


def make_timeout(timeout: TimeoutTypes) -> httpx.Timeout:
    """An `httpx.Timeout` whose connect phase is short whatever the overall limit, and whose wait
    for a free connection fits in an attempt's budget (its read timeout)."""
    if isinstance(timeout, httpx.Timeout):
        read = timeout.read
        if read is not None and (timeout.pool is None or timeout.pool > read):
            return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=read)
        return timeout
    if timeout is None:
        return httpx.Timeout(None, connect=CONNECT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, an httpx.Timeout or None, got {timeout!r}")
    return httpx.Timeout(float(timeout), connect=min(float(timeout), CONNECT_TIMEOUT))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(error: CrowNestError) -> str:
    if isinstance(error, CrowNestApiError):
        return f"{error.status} {error.code}"
    return type(error).__name__


def _check_headers(headers: object) -> None:
    """Refuse default headers that are not a mapping of sendable names and values (never showing a value)."""
    if headers is None:
        return
    if not isinstance(headers, Mapping):
        raise TypeError(f"default_headers must be a dict of str to str, got {type(headers).__name__}")
    for name, value in headers.items():
        _check_header(name, value)


def _check_header(name: object, value: object) -> None:
    """Refuse a default header that cannot be sent as it is (its value, maybe a secret, is not shown)."""
    if not (isinstance(name, str) and name.isascii() and name.isprintable() and name) or any(
        c in name for c in ' :"(),/;<=>?@[\\]{}'
    ):
        raise CrowNestError(f"default_headers: {name!r} is not a valid header name")
    if not isinstance(value, str) or not (value == "" or is_header_value(value)):
        raise CrowNestError(
            f"default_headers[{name!r}] must be a str of printable ASCII without line breaks or spaces at "
            "either end; the value given is not shown here"
        )


def _check_max_retries(max_retries: int) -> int:
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be a non-negative int, got {max_retries!r}")
    return max_retries


class BaseClient:
    """Configuration and the I/O-free half of sending a request."""

    _owns_http: bool  # whether close() closes the connection pool (set by the sync and async halves)

    def __init__(
        self,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: TimeoutTypes,
        max_retries: int,
        default_headers: dict[str, str] | None,
    ) -> None:
        api_key = api_key if api_key is not None else os.environ.get("CROWNEST_API_KEY")
        if not api_key:
            raise CrowNestError(
                "No API key: pass api_key= to the client or set the CROWNEST_API_KEY environment variable."
            )
        base_url = base_url or os.environ.get("CROWNEST_BASE_URL") or DEFAULT_BASE_URL
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        if base_url.startswith("http://") and not _is_loopback(httpx.URL(base_url).host):
            warnings.warn(
                f"base_url {base_url!r} is plain http and not loopback: the API key would travel unencrypted",
                stacklevel=4,  # BaseClient -> SyncAPIClient -> CrowNest -> the caller
            )
        if not (is_header_value(api_key) and " " not in api_key):
            raise CrowNestError(
                "The API key must be printable ASCII without spaces or line breaks (a key read from a file "
                "often ends with a newline: strip it); the key given is not shown here"
            )
        _check_headers(default_headers)
        configure_from_env()
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = make_timeout(timeout)
        self.max_retries = _check_max_retries(max_retries)
        self._headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **(default_headers or {}),
            "Authorization": f"Bearer {api_key}",
        }
        # Headers merged into each request; empty once an owned httpx client carries them itself
        # (merging them per call is a measurable share of the SDK's per-call cost).
        self._request_headers = self._headers

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _copy_with(
        self,
        timeout: TimeoutTypes | NotGiven,
        max_retries: int | NotGiven,
        default_headers: Mapping[str, str] | None,
    ) -> Any:
        """A copy of this client with other defaults, sending through the same connection pool
        (closing the copy leaves the pool open; the original owns it)."""
        _check_headers(default_headers)
        copy = object.__new__(type(self))
        # Cached resources (`client.sandboxes`) are bound to the client that made them: not copied.
        cached = {
            name
            for klass in type(self).__mro__
            for name, value in vars(klass).items()
            if isinstance(value, cached_property)
        }
        copy.__dict__.update({k: v for k, v in vars(self).items() if k not in cached})
        copy._owns_http = False
        if not isinstance(timeout, NotGiven):
            copy.timeout = make_timeout(timeout)
        if not isinstance(max_retries, NotGiven):
            copy.max_retries = _check_max_retries(max_retries)
        if default_headers:
            copy._headers = {**self._headers, **default_headers, "Authorization": self._headers["Authorization"]}
            copy._request_headers = {**self._request_headers, **default_headers}
        return copy

    def _build_request(
        self, http: httpx.Client | httpx.AsyncClient, spec: RequestSpec, timeout: TimeoutTypes | NotGiven
    ) -> httpx.Request:
        headers = {**self._request_headers, **spec.headers}
        if spec.idempotent and "Idempotency-Key" not in spec.headers:
            headers["Idempotency-Key"] = f"crownest-python-{os.urandom(16).hex()}"
        content: Any = spec.content
        if isinstance(content, Upload):
            if content.size is not None:
                headers["Content-Length"] = str(content.size)
            content = content.async_chunks() if isinstance(http, httpx.AsyncClient) else content.chunks()
        # None rather than an empty dict: httpx rebuilds the URL for any params given, even none.
        return http.build_request(
            spec.method,
            self.base_url + spec.path,
            params=spec.params or None,
            headers=headers or None,
            json=spec.json,
            content=content,
            timeout=self._timeout_for(spec, timeout),
        )

    def _request_for_retry(
        self, http: httpx.Client | httpx.AsyncClient, spec: RequestSpec, sent: httpx.Request, error: CrowNestError
    ) -> httpx.Request:
        """The request to send again: the same one, or for a streamed upload the same headers with
        the content read afresh; a one-shot stream that was partly sent cannot be."""
        if not isinstance(spec.content, Upload):
            return sent
        if not spec.content.replayable and spec.content.attempts:
            raise BodyNotReplayableError(
                f"{sent.method} {sent.url.path} failed ({_reason(error)}) after part of a one-shot upload stream "
                "was sent, so it was not retried. Pass bytes, a path or a seekable file to make uploads retryable."
            ) from error
        content = spec.content.async_chunks() if isinstance(http, httpx.AsyncClient) else spec.content.chunks()
        return http.build_request(
            sent.method, sent.url, headers=sent.headers, content=content, extensions=sent.extensions
        )

    def _timeout_for(self, spec: RequestSpec, timeout: TimeoutTypes | NotGiven) -> httpx.Timeout:
        """The per-call timeout as given; else the client's, its read phase stretched to cover
        what the server may take on purpose (a command's own `timeout_ms`) plus a margin."""
        if not isinstance(timeout, NotGiven):
            return make_timeout(timeout)
        base = self.timeout
        if spec.wait_ms is None or base.read is None or base.read >= spec.wait_ms / 1000 + WAIT_MARGIN:
            return base
        return httpx.Timeout(
            connect=base.connect, read=spec.wait_ms / 1000 + WAIT_MARGIN, write=base.write, pool=base.pool
        )

    def _retries(self, max_retries: int | NotGiven) -> int:
        return self.max_retries if isinstance(max_retries, NotGiven) else _check_max_retries(max_retries)

    def _retry_delay(self, request: httpx.Request, error: CrowNestError, retries_taken: int, retries: int) -> float:
        """Seconds to wait before retrying after `error` (logged); raises `error` if it is not retried."""
        delay = None
        if retries_taken < retries:
            if isinstance(error, CrowNestConnectionError):
                delay = retry_delay(retries_taken, None)
            elif isinstance(error, CrowNestApiError) and is_retryable_status(error.status, error.code):
                delay = retry_delay(retries_taken, error.response.headers)
        if delay is None:
            raise error
        logger.info(
            "%s %s failed (%s); retry %d of %d in %.2f s",
            request.method,
            request.url.path,
            _reason(error),
            retries_taken + 1,
            retries,
            delay,
        )
        return delay

    @staticmethod
    def _log_response(request: httpx.Request, response: httpx.Response, attempt: int) -> None:
        if not logger.isEnabledFor(logging.DEBUG):
            return
        logger.debug(
            "%s %s -> %d request_id=%s attempt=%d",
            request.method,
            request.url.path,
            response.status_code,
            response.headers.get("x-request-id"),
            attempt,
        )

    def _network_error(self, exc: httpx.TransportError, request: httpx.Request) -> CrowNestError:
        """The error for a failed exchange. httpx's message may quote what was sent (a header
        value, the API key), so only its class name goes into ours, plus the message of errors
        that come from the network (refused, reset, DNS), with any header value of ours cut out."""
        where = f"{request.method} {request.url.copy_with(query=None)}"
        if isinstance(exc, httpx.TimeoutException):
            return CrowNestTimeoutError(f"{where} timed out ({type(exc).__name__})")
        if isinstance(exc, httpx.LocalProtocolError | httpx.UnsupportedProtocol):
            return CrowNestError(f"{where} could not be sent: the request is not valid HTTP ({type(exc).__name__})")
        message = str(exc)
        for secret in (self._api_key, *self._headers.values(), *request.headers.values()):
            if len(secret) >= 4:
                message = message.replace(secret, "[hidden]")
        return CrowNestConnectionError(f"{where} failed: {type(exc).__name__}: {message}")

    @staticmethod
    def _deadline_error(request: httpx.Request, budget: float, what: str) -> CrowNestTimeoutError:
        return CrowNestTimeoutError(
            f"{request.method} {request.url.copy_with(query=None)} timed out: {what} took more than {budget:g} s"
        )

    @staticmethod
    def _parse(spec: RequestSpec, response: httpx.Response) -> Any:
        """The result of a 2xx response, or ResponseValidationError."""
        if spec.kind == "none":
            return None
        if spec.kind == "bytes":
            return response.content
        if spec.kind == "text":
            return response.content.decode("utf-8", errors="replace")
        try:
            body = loads(response.content)
        except ValueError:
            raise ResponseValidationError(
                f"HTTP {response.status_code}: expected JSON, got {body_excerpt(response)!r}", response=response
            ) from None
        assert spec.parse is not None
        what = f"HTTP {response.status_code}: the body"
        result = parsed(spec.parse, body, what=what, excerpt=lambda: body_excerpt(response), response=response)
        from ._models import stamp_request_id  # loaded with the models already; not at `import crownest`

        stamp_request_id(result, response.headers.get("x-request-id"))
        return result

    @staticmethod
    def _parse_event(spec: RequestSpec, event: dict[str, Any], resume: EventResume) -> Any:
        assert spec.parse is not None and resume.response is not None
        what = f"HTTP {resume.response.status_code}: an event"
        return parsed(spec.parse, event, what=what, excerpt=lambda: repr(event)[:200], response=resume.response)


class SyncAPIClient(BaseClient):
    """Sends requests with an `httpx.Client`."""

    def __init__(self, *, http_client: httpx.Client | None, **config: Any) -> None:
        super().__init__(**config)
        from ._http_clients import DefaultHttpxClient  # here: that module imports this one

        self._owns_http = http_client is None
        if http_client is None:
            self._request_headers = {}
            http_client = DefaultHttpxClient(headers=self._headers, timeout=self.timeout)
        self._http = http_client
        self._sockets_keep_deadlines = (
            isinstance(http_client, DefaultHttpxClient) and http_client.keeps_attempt_deadlines
        )

    def request(
        self,
        spec: RequestSpec,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Any:
        """Send `spec` (retrying what is safe to retry) and return its parsed result."""
        request = self._build_request(self._http, spec, timeout)
        retries = self._retries(max_retries)
        retries_taken = 0
        while True:
            error: CrowNestError
            try:
                response = self._exchange(request, deadline=spec.content is None)
            except httpx.TransportError as exc:
                error = self._network_error(exc, request)
            except CrowNestTimeoutError as exc:
                error = exc
            else:
                self._log_response(request, response, retries_taken + 1)
                if response.is_success:
                    capture_response(response)
                    return self._parse(spec, response)
                error = api_error_from_response(response)
            delay = self._retry_delay(request, error, retries_taken, retries)
            request = self._request_for_retry(self._http, spec, request, error)
            time.sleep(delay)
            retries_taken += 1

    def _exchange(self, request: httpx.Request, *, deadline: bool) -> httpx.Response:
        """One attempt, its body read (within the size limit) and the connection released; with
        `deadline`, the whole exchange ends within the attempt budget (see `_deadlines`)."""
        budget = attempt_budget(request) if deadline else None
        if budget is None:
            return self._send_and_read(request, None)
        return self._within(request, budget, lambda job: self._send_and_read(request, job), "the exchange")

    def _within(
        self,
        request: httpx.Request,
        budget: float,
        send: Callable[[Job[httpx.Response] | None], httpx.Response],
        what: str,
    ) -> httpx.Response:
        """`send()`, ended with CrowNestTimeoutError once `budget` seconds have passed: by the
        sockets of the SDK's transport, else by a worker thread (see `_deadlines`)."""
        if self._sockets_keep_deadlines:
            with attempt_deadline(budget) as bound:
                try:
                    return send(None)
                except httpx.TimeoutException:
                    if not bound.passed:
                        raise
            raise self._deadline_error(request, budget, what)
        try:
            return run_with_deadline(send, httpx.Response.close, budget)
        except DeadlinePassed:
            raise self._deadline_error(request, budget, what) from None

    def _send_and_read(self, request: httpx.Request, job: Job[httpx.Response] | None) -> httpx.Response:
        response = self._http.send(request, stream=True)
        try:
            read_body(response, None if job is None else lambda: job.abandoned)
        finally:
            response.close()
        return response

    def _open(self, request: httpx.Request, headers: httpx.Headers) -> httpx.Response:
        """Send a request for a streamed answer; its headers arrive within the attempt budget."""
        request = self._http.build_request(
            request.method,
            request.url,
            headers=headers,
            content=request.content or None,  # an `extra_body`, if any
            extensions=request.extensions,
        )
        budget = attempt_budget(request)
        if budget is None:
            return self._http.send(request, stream=True)
        return self._within(request, budget, lambda job: self._http.send(request, stream=True), "the answer's headers")

    def stream(
        self,
        spec: RequestSpec,
        resume: Resume,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Iterator[bytes]:
        """The body of `spec`'s answer in chunks as they arrive.

        After a broken connection (or a retryable status) the request goes again with
        `resume`'s headers, which ask for the rest only. Retries count failures in a
        row: an attempt that moved `resume.position()` (whole events, bytes taken) starts
        the count again.
        """
        request = self._build_request(self._http, spec, timeout)
        return self._stream_attempts(request, resume, self._retries(max_retries))

    def _stream_attempts(self, request: httpx.Request, resume: Resume, retries: int) -> Iterator[bytes]:
        retries_taken = 0
        while True:
            error: CrowNestError
            position = resume.position()
            try:
                response = self._open(request, resume.headers(request))
                try:
                    self._log_response(request, response, retries_taken + 1)
                    if not response.is_success:
                        read_body(response)
                        raise api_error_from_response(response)
                    resume.begin(response)
                    capture_response(response)
                    yield from response.iter_bytes()
                finally:
                    response.close()
                return
            except httpx.TransportError as exc:
                error = self._network_error(exc, request)
            except (CrowNestApiError, CrowNestTimeoutError) as exc:
                error = exc
            if resume.position() != position:
                retries_taken = 0
            delay = self._retry_delay(request, error, retries_taken, retries)
            time.sleep(delay)
            retries_taken += 1

    def byte_stream(
        self,
        spec: RequestSpec,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Stream[bytes]:
        """A binary answer in chunks, resumed with `Range` after a broken connection."""
        resume = RangeResume(restart=False)
        chunks = self.stream(spec, resume, timeout=timeout, max_retries=max_retries)
        return Stream(new for chunk in chunks if (new := resume.take(chunk)))

    def event_stream(
        self,
        spec: RequestSpec,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Stream[Any]:
        """Server-Sent Events, each parsed with `spec.parse`, resumed with `Last-Event-ID`."""
        resume = EventResume(spec.headers.get("Last-Event-ID"))
        chunks = self.stream(spec, resume, timeout=timeout, max_retries=max_retries)
        return Stream(self._parse_event(spec, event, resume) for chunk in chunks for event in resume.feed(chunk))

    def download(
        self,
        spec: RequestSpec,
        to: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> int:
        """Stream a binary answer into the file `to` (see `_downloads`)."""
        download = Download(to, progress)
        try:
            for chunk in self.stream(spec, download.resume, timeout=timeout, max_retries=max_retries):
                download.write(chunk)
            return download.finish()
        except BaseException:
            download.abandon()
            raise

    def download_dir(
        self,
        spec: RequestSpec,
        local_dir: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> int:
        """Stream a tar answer into a file beside `local_dir`, then extract it there (see `_archives`)."""
        from ._archives import ArchiveFile  # on first use: tarfile and its kin cost 7 ms of `import crownest`

        with ArchiveFile(local_dir) as archive:
            self.download(spec, archive.path, progress=progress, timeout=timeout, max_retries=max_retries)
            return archive.extract()

    def close(self) -> None:
        """Close the connections this client opened (not those of an `http_client` you passed)."""
        if self._owns_http:
            self._http.close()


class AsyncAPIClient(BaseClient):
    """Sends requests with an `httpx.AsyncClient`."""

    def __init__(self, *, http_client: httpx.AsyncClient | None, **config: Any) -> None:
        super().__init__(**config)
        self._owns_http = http_client is None
        if http_client is None:
            self._request_headers = {}
        if http_client is None:
            from ._http_clients import DefaultAsyncHttpxClient  # here: that module imports this one

            http_client = DefaultAsyncHttpxClient(headers=self._headers, timeout=self.timeout)
        self._http = http_client
        self._loop: object = None  # the event loop whose connections the pool holds

    async def request(
        self,
        spec: RequestSpec,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> Any:
        """Send `spec` (retrying what is safe to retry) and return its parsed result."""
        import asyncio  # imported here: ~15 ms of `import crownest`, and loaded anyway once a loop runs

        self._check_loop(asyncio.get_running_loop())
        request = self._build_request(self._http, spec, timeout)
        retries = self._retries(max_retries)
        retries_taken = 0
        while True:
            error: CrowNestError
            try:
                response = await self._exchange(request, deadline=spec.content is None)
            except httpx.TransportError as exc:
                error = self._network_error(exc, request)
            except CrowNestTimeoutError as exc:
                error = exc
            else:
                self._log_response(request, response, retries_taken + 1)
                if response.is_success:
                    capture_response(response)
                    return self._parse(spec, response)
                error = api_error_from_response(response)
            delay = self._retry_delay(request, error, retries_taken, retries)
            request = self._request_for_retry(self._http, spec, request, error)
            await asyncio.sleep(delay)
            retries_taken += 1

    async def _exchange(self, request: httpx.Request, *, deadline: bool) -> httpx.Response:
        """One attempt, its body read (within the size limit) and the connection released; with
        `deadline`, the whole exchange ends within the attempt budget (see `_deadlines`)."""
        import asyncio

        budget = attempt_budget(request) if deadline else None
        bound = asyncio.timeout(budget)
        try:
            async with bound:
                response = await self._http.send(request, stream=True)
                try:
                    await aread_body(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            if budget is None or not bound.expired():
                raise
            raise self._deadline_error(request, budget, "the exchange") from None
        return response

    async def _open(self, request: httpx.Request, headers: httpx.Headers) -> httpx.Response:
        """Send a request for a streamed answer; its headers arrive within the attempt budget."""
        import asyncio

        request = self._http.build_request(
            request.method,
            request.url,
            headers=headers,
            content=request.content or None,  # an `extra_body`, if any
            extensions=request.extensions,
        )
        budget = attempt_budget(request)
        bound = asyncio.timeout(budget)
        try:
            async with bound:
                return await self._http.send(request, stream=True)
        except TimeoutError:
            if budget is None or not bound.expired():
                raise
            raise self._deadline_error(request, budget, "the answer's headers") from None

    def stream(
        self,
        spec: RequestSpec,
        resume: Resume,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncIterator[bytes]:
        """The body of `spec`'s answer in chunks as they arrive (see `SyncAPIClient.stream`)."""
        request = self._build_request(self._http, spec, timeout)
        return self._stream_attempts(request, resume, self._retries(max_retries))

    async def _stream_attempts(self, request: httpx.Request, resume: Resume, retries: int) -> AsyncIterator[bytes]:
        import asyncio

        self._check_loop(asyncio.get_running_loop())
        retries_taken = 0
        while True:
            error: CrowNestError
            position = resume.position()
            try:
                response = await self._open(request, resume.headers(request))
                try:
                    self._log_response(request, response, retries_taken + 1)
                    if not response.is_success:
                        await aread_body(response)
                        raise api_error_from_response(response)
                    resume.begin(response)
                    capture_response(response)
                    async for chunk in response.aiter_bytes():
                        yield chunk
                finally:
                    await response.aclose()
                return
            except httpx.TransportError as exc:
                error = self._network_error(exc, request)
            except (CrowNestApiError, CrowNestTimeoutError) as exc:
                error = exc
            if resume.position() != position:
                retries_taken = 0
            delay = self._retry_delay(request, error, retries_taken, retries)
            await asyncio.sleep(delay)
            retries_taken += 1

    def byte_stream(
        self,
        spec: RequestSpec,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncStream[bytes]:
        """A binary answer in chunks, resumed with `Range` after a broken connection."""
        resume = RangeResume(restart=False)
        chunks = self.stream(spec, resume, timeout=timeout, max_retries=max_retries)
        return AsyncStream(new async for chunk in chunks if (new := resume.take(chunk)))

    def event_stream(
        self,
        spec: RequestSpec,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> AsyncStream[Any]:
        """Server-Sent Events, each parsed with `spec.parse`, resumed with `Last-Event-ID`."""
        resume = EventResume(spec.headers.get("Last-Event-ID"))
        chunks = self.stream(spec, resume, timeout=timeout, max_retries=max_retries)
        return AsyncStream(
            self._parse_event(spec, event, resume) async for chunk in chunks for event in resume.feed(chunk)
        )

    async def download(
        self,
        spec: RequestSpec,
        to: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> int:
        """Stream a binary answer into the file `to` (see `_downloads`)."""
        download = Download(to, progress)
        try:
            async for chunk in self.stream(spec, download.resume, timeout=timeout, max_retries=max_retries):
                download.write(chunk)
            return download.finish()
        except BaseException:
            download.abandon()
            raise

    async def download_dir(
        self,
        spec: RequestSpec,
        local_dir: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> int:
        """Stream a tar answer into a file beside `local_dir`, then extract it there in a worker thread."""
        import asyncio

        from ._archives import ArchiveFile  # on first use: tarfile and its kin cost 7 ms of `import crownest`

        with ArchiveFile(local_dir) as archive:
            await self.download(spec, archive.path, progress=progress, timeout=timeout, max_retries=max_retries)
            return await asyncio.to_thread(archive.extract)

    def _check_loop(self, loop: object) -> None:
        """Connections belong to the event loop that opened them: refuse to reuse them from another."""
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                "This AsyncCrowNest was first used in another event loop (each asyncio.run() makes a new one), "
                "and its connections cannot move between loops. Create the client inside the coroutine that "
                "asyncio.run() runs, or use one event loop for the client's whole life."
            )

    async def close(self) -> None:
        """Close the connections this client opened (not those of an `http_client` you passed)."""
        if self._owns_http:
            await self._http.aclose()
