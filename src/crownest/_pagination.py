"""Cursor pagination: iterate over every item across pages, lazily.

`client.sandboxes.list()` returns a pager. Iterating it (`for` / `async for`)
fetches one page at a time as the items run out; `first_page()` fetches just
one page and gives its `data` and `next_cursor`, and the page's
`has_next_page()` and `get_next_page()` go on from there; `pages()` iterates
page by page. Listing the same pager twice sends the requests again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._exceptions import CrowNestError
from ._types import NOT_GIVEN, NotGiven, RequestSpec, TimeoutTypes

if TYPE_CHECKING:
    from ._base_client import AsyncAPIClient, SyncAPIClient

T = TypeVar("T")


class _BasePage(Generic[T]):
    __slots__ = ("data", "next_cursor", "_request_id", "_fetch_next")

    def __init__(
        self, data: list[T], next_cursor: str | None, request_id: str | None, fetch_next: Callable[[Any], Any]
    ) -> None:
        self.data = data
        """The page's items."""
        self.next_cursor = next_cursor
        """The cursor of the next page; None on the last."""
        self._request_id = request_id
        """The `X-Request-Id` of the answer this page came from."""
        self._fetch_next = fetch_next

    def has_next_page(self) -> bool:
        """Whether a page follows this one."""
        return self.next_cursor is not None

    def _check_has_next(self) -> None:
        if self.next_cursor is None:
            raise CrowNestError("This is the last page: check has_next_page() before get_next_page().")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(data=<{len(self.data)} items>, next_cursor={self.next_cursor!r})"


class Page(_BasePage[T]):
    """One page of a list: its items (`data`) and the cursor of the next page (None on the last)."""

    __slots__ = ()

    def get_next_page(self) -> Page[T]:
        """Fetch the page after this one (`CrowNestError` on the last page)."""
        self._check_has_next()
        page: Page[T] = self._fetch_next(self)
        return page


class AsyncPage(_BasePage[T]):
    """One page of a list, from an `AsyncPager`: as `Page`, with `await page.get_next_page()`."""

    __slots__ = ()

    async def get_next_page(self) -> AsyncPage[T]:
        """Fetch the page after this one (`CrowNestError` on the last page)."""
        self._check_has_next()
        page: AsyncPage[T] = await self._fetch_next(self)
        return page


P = TypeVar("P", bound=_BasePage[Any])


def _page(kind: type[P], model: Any, item: Callable[[Any], Any], fetch_next: Callable[[Any], Any]) -> P:
    cursor = model.next_cursor
    cursor = cursor if isinstance(cursor, str) and cursor else None
    return kind([item(x) for x in model.data], cursor, model._request_id, fetch_next)


MAX_EMPTY_PAGES = 100  # empty pages in a row, each pointing to another, before the listing gives up


class _Walk:
    """Where a chain of pages is (one per `first_page()`, followed by `get_next_page()` and by
    `pages()`): the cursors already followed, and how many empty pages came in a row.
    A server whose cursors go round in a circle, or lead from empty page to empty page without
    end, would keep a `for` loop over a list going forever."""

    __slots__ = ("seen", "empty")

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.empty = 0

    def next(self, page: _BasePage[Any]) -> str:
        """The cursor of the page after `page`, or CrowNestError for a listing that would not end."""
        cursor = page.next_cursor
        assert cursor is not None
        if cursor in self.seen:
            raise CrowNestError(f"The API gave the cursor {cursor[:60]!r} again; stopping instead of listing forever.")
        self.empty = 0 if page.data else self.empty + 1
        if self.empty > MAX_EMPTY_PAGES:
            raise CrowNestError(f"The API sent {self.empty} empty pages in a row; stopping instead of listing forever.")
        self.seen.add(cursor)
        return cursor


class _Pager(Generic[T]):
    __slots__ = ("_spec", "_item", "_timeout", "_max_retries")

    def __init__(
        self,
        spec: RequestSpec,
        item: Callable[[Any], T],
        timeout: TimeoutTypes | NotGiven = NOT_GIVEN,
        max_retries: int | NotGiven = NOT_GIVEN,
    ) -> None:
        self._spec = spec
        self._item = item
        self._timeout = timeout
        self._max_retries = max_retries

    def _spec_after(self, cursor: str | None) -> RequestSpec:
        return self._spec if cursor is None else self._spec.with_cursor(cursor)


class SyncPager(_Pager[T]):
    """Every item of a list, across pages; iterate with `for`."""

    __slots__ = ("_client",)

    def __init__(self, client: SyncAPIClient, spec: RequestSpec, item: Callable[[Any], T], **options: Any) -> None:
        super().__init__(spec, item, **options)
        self._client = client

    def first_page(self) -> Page[T]:
        """Fetch only the first page (it starts after the `cursor` you passed, if any)."""
        return self._fetch(None, _Walk())

    def pages(self) -> Iterator[Page[T]]:
        """Each page in turn, fetched as you go."""
        page = self.first_page()
        yield page
        while page.has_next_page():
            page = page.get_next_page()
            yield page

    def __iter__(self) -> Iterator[T]:
        for page in self.pages():
            yield from page.data

    def _fetch(self, cursor: str | None, walk: _Walk) -> Page[T]:
        model = self._client.request(self._spec_after(cursor), timeout=self._timeout, max_retries=self._max_retries)
        return _page(Page, model, self._item, lambda page: self._fetch(walk.next(page), walk))


class AsyncPager(_Pager[T]):
    """Every item of a list, across pages; iterate with `async for`."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncAPIClient, spec: RequestSpec, item: Callable[[Any], T], **options: Any) -> None:
        super().__init__(spec, item, **options)
        self._client = client

    async def first_page(self) -> AsyncPage[T]:
        """Fetch only the first page (it starts after the `cursor` you passed, if any)."""
        return await self._fetch(None, _Walk())

    async def pages(self) -> AsyncIterator[AsyncPage[T]]:
        """Each page in turn, fetched as you go."""
        page = await self.first_page()
        yield page
        while page.has_next_page():
            page = await page.get_next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page.data:
                yield item

    async def _fetch(self, cursor: str | None, walk: _Walk) -> AsyncPage[T]:
        model = await self._client.request(
            self._spec_after(cursor), timeout=self._timeout, max_retries=self._max_retries
        )
        return _page(AsyncPage, model, self._item, lambda page: self._fetch(walk.next(page), walk))
