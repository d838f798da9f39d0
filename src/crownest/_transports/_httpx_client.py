"""`AsyncHttpClient`: the `httpx.AsyncClient` an `AsyncCrowNest` builds for itself."""

from __future__ import annotations

from typing import Any

import httpx


class _Cookies(httpx.Cookies):
    """httpx's cookie jar, which reads a response's cookies only when it sets one.

    httpx hands every response to the jar, which first wraps it in an urllib request and an
    email message (about a sixth of httpx's own cost per call) to find no `Set-Cookie` header.
    """

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class AsyncHttpClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` whose cookie jar skips responses that set no cookie; otherwise the same."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.cookies = options.get("cookies")

    @property
    def cookies(self) -> httpx.Cookies:
        return self._skipping_cookies

    @cookies.setter
    def cookies(self, cookies: Any) -> None:
        self._skipping_cookies = _Cookies(cookies)
