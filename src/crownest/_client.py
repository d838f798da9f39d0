"""`CrowNest` and `AsyncCrowNest`: configuration, lifetime, and lazy resources.

The resources (`client.sandboxes`, `client.commands`, ...) are generated
from the spec, one per tag, and each is imported on first use so that
`import crownest` stays as cheap as `import httpx`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

import httpx

from ._base_client import AsyncAPIClient, SyncAPIClient
from ._generated.resources import AsyncClientResources, ClientResources
from ._types import NOT_GIVEN, NotGiven, TimeoutTypes

__all__ = ["AsyncCrowNest", "CrowNest"]


class CrowNest(SyncAPIClient, ClientResources):
    """The synchronous CrowNest client.

    Args:
        api_key: Org-scoped API key; defaults to the `CROWNEST_API_KEY` environment variable.
        base_url: API base URL; defaults to `CROWNEST_BASE_URL`, then `https://api.crownest.dev`.
        timeout: Seconds per request (660 allows the longest command, 600 s, plus a margin),
            an `httpx.Timeout`, or `None` for no limit. Connecting always gives up after 5 s.
        max_retries: Retries of a failed request that is safe to retry (default 2).
        http_client: An `httpx.Client` to send requests with (you close it).
        default_headers: Headers added to every request.

    Raises:
        CrowNestError: No API key was given or found in the environment.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: TimeoutTypes = 660.0,  # DEFAULT_TIMEOUT, written out for the reference
        max_retries: int = 2,  # DEFAULT_MAX_RETRIES
        http_client: httpx.Client | None = None,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            default_headers=default_headers,
        )

    def with_options(
        self,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        default_headers: Mapping[str, str] | None = None,
    ) -> CrowNest:
        """A copy of this client with other defaults, sharing its connection pool.

        `client.with_options(timeout=5).sandboxes.get(id)` changes one call; keep the copy to
        change many. Headers add to this client's. Closing the copy leaves the pool open: the
        original client owns it.
        """
        copy: CrowNest = self._copy_with(timeout, max_retries, default_headers)
        return copy

    def __enter__(self) -> CrowNest:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncCrowNest(AsyncAPIClient, AsyncClientResources):
    """The asynchronous CrowNest client: the same surface as `CrowNest`, with `await`.

    Args:
        api_key: Org-scoped API key; defaults to the `CROWNEST_API_KEY` environment variable.
        base_url: API base URL; defaults to `CROWNEST_BASE_URL`, then `https://api.crownest.dev`.
        timeout: Seconds per request (660 allows the longest command, 600 s, plus a margin),
            an `httpx.Timeout`, or `None` for no limit. Connecting always gives up after 5 s.
        max_retries: Retries of a failed request that is safe to retry (default 2).
        http_client: An `httpx.AsyncClient` to send requests with (you close it).
        default_headers: Headers added to every request.

    Raises:
        CrowNestError: No API key was given or found in the environment.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: TimeoutTypes = 660.0,  # DEFAULT_TIMEOUT, written out for the reference
        max_retries: int = 2,  # DEFAULT_MAX_RETRIES
        http_client: httpx.AsyncClient | None = None,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            http_client=http_client,
            default_headers=default_headers,
        )

    def with_options(
        self,
        *,
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
        default_headers: Mapping[str, str] | None = None,
    ) -> AsyncCrowNest:
        """A copy of this client with other defaults, sharing its connection pool.

        `client.with_options(timeout=5).sandboxes.get(id)` changes one call; keep the copy to
        change many. Headers add to this client's. Closing the copy leaves the pool open: the
        original client owns it.
        """
        copy: AsyncCrowNest = self._copy_with(timeout, max_retries, default_headers)
        return copy

    async def __aenter__(self) -> AsyncCrowNest:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
