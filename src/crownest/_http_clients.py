"""The SDK's own httpx clients, for users who pass an `http_client` (a proxy, certificates, event
hooks) and want the SDK's connection behaviour with it.

`DefaultHttpxClient(proxy=..., verify=...)` takes every `httpx.Client` argument; those left out
get the SDK's defaults: 100 connections all kept alive, TCP keepalive, the 660 s timeout with a
5 s connect phase, and no redirects. The clients the SDK makes for itself are made the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ._base_client import DEFAULT_LIMITS, DEFAULT_TIMEOUT, keepalive_options, make_timeout

__all__ = ["DefaultAsyncHttpxClient", "DefaultHttpxClient"]

# Arguments that configure the connection pool: they go to the transport the SDK makes (and to the
# client too, which applies them to the proxy transports it makes itself).
_POOL_OPTIONS = ("verify", "cert", "trust_env", "http1", "http2")


def _client_options(
    kwargs: dict[str, Any], transport: Callable[..., httpx.BaseTransport | httpx.AsyncBaseTransport]
) -> dict[str, Any]:
    """`kwargs` over the SDK's defaults, with a transport keeping the SDK's limits and keepalive."""
    options: dict[str, Any] = {"timeout": make_timeout(DEFAULT_TIMEOUT), "follow_redirects": False, **kwargs}
    options.setdefault("limits", DEFAULT_LIMITS)
    if "transport" not in options:
        pool = {name: options[name] for name in _POOL_OPTIONS if name in options}
        options["transport"] = transport(socket_options=keepalive_options(), limits=options["limits"], **pool)
    return options


def sync_client_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a `DefaultHttpxClient`: httpx's transport, with sockets that keep each
    attempt's deadline (`_sync_transport`)."""
    from ._sync_transport import SyncTransport  # httpcore: once a sync client is built, as httpx does

    return _client_options(kwargs, SyncTransport)


def async_client_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a `DefaultAsyncHttpxClient` (the one place that picks its transport).

    The SDK's own asyncio transport (`_transports`, many times faster than httpcore's pool under
    concurrent calls), unless a pool option asks for what only httpx's transport does.
    """
    if "transport" not in kwargs and not any(name in kwargs for name in _POOL_OPTIONS):
        from ._transports import AsyncTransport  # asyncio: once an async client is built

        limits = kwargs.get("limits", DEFAULT_LIMITS)
        kwargs = {
            **kwargs,
            "limits": limits,
            "transport": AsyncTransport(socket_options=keepalive_options(), limits=limits),
        }
    return _client_options(kwargs, httpx.AsyncHTTPTransport)


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which reads a response's cookies only when it sets one.

    httpx hands every response to the jar, which first wraps it in an urllib request and an
    email message (about a sixth of httpx's own cost per call) to find no `Set-Cookie` header.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class _SkippingCookies:
    """A client whose cookie jar is a `_Cookies` (a sixth of httpx's cost per call otherwise)."""

    _skipping_cookies: httpx.Cookies

    @property
    def cookies(self) -> httpx.Cookies:
        return self._skipping_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._skipping_cookies = _Cookies(cookies)


class DefaultHttpxClient(_SkippingCookies, httpx.Client):
    """An `httpx.Client` with the SDK's defaults (see the module); any httpx argument overrides them.

    Its cookie jar skips answers that set no cookie. `keeps_attempt_deadlines` says whether every
    request goes through the SDK's transport, whose sockets end each attempt at its deadline (not
    so with a `transport`, `mounts` or `proxy` of yours: the SDK then runs each attempt in a worker
    thread to bound it, at some cost per call).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**sync_client_options(kwargs))
        self.cookies = kwargs.get("cookies")
        self.keeps_attempt_deadlines = not any(name in kwargs for name in ("transport", "proxy", "mounts"))


class DefaultAsyncHttpxClient(_SkippingCookies, httpx.AsyncClient):
    """An `httpx.AsyncClient` with the SDK's defaults; any httpx argument overrides them.

    Its cookie jar skips answers that set no cookie.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**async_client_options(kwargs))
        self.cookies = kwargs.get("cookies")
