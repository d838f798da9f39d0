"""Clients pointed at a respx-mocked API, in both modes."""

from __future__ import annotations

import hashlib
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest
import respx

from crownest import AsyncCrowNest, CrowNest

if TYPE_CHECKING:
    from crownest_local import LocalServer

BASE_URL = "https://api.test"
API_KEY = "cn_test_k3y_that_must_never_leak"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CROWNEST_API_KEY", raising=False)
    monkeypatch.delenv("CROWNEST_BASE_URL", raising=False)


@pytest.fixture
def api() -> Iterator[respx.MockRouter]:
    # using="httpx" mocks at httpx's client, so both clients' transports are covered: respx's default
    # patches httpcore, which AsyncCrowNest's own transport does not use.
    with respx.mock(base_url=BASE_URL, assert_all_called=False, using="httpx") as router:
        yield router


@pytest.fixture
def client() -> Iterator[CrowNest]:
    with CrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=0) as c:
        yield c


@pytest.fixture
async def async_client() -> AsyncIterator[AsyncCrowNest]:
    async with AsyncCrowNest(api_key=API_KEY, base_url=BASE_URL, max_retries=0) as c:
        yield c


class Breaks(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that sends `data`, then the connection breaks."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data
        raise httpx.ReadError("connection reset")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module", params=["bubblewrap", "fallback"])
def each_isolation(request: pytest.FixtureRequest) -> Iterator[LocalServer]:
    """The session's CrowNest Local, where bubblewrap runs commands; then one in fallback mode (without it)."""
    if request.param == "bubblewrap":
        if shutil.which("bwrap") is None:
            pytest.skip("bubblewrap is not installed here (make test installs it): cannot test the isolated mode")
        yield request.getfixturevalue("crownest_local")
    else:
        from crownest_local import LocalServer

        with pytest.warns(UserWarning, match="bubblewrap"), LocalServer(isolation=False) as fallback:
            yield fallback


def free_port() -> int:
    """A loopback TCP port that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
