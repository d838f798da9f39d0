"""A pytest fixture for your own tests: `crownest_local`, a running CrowNest Local.

pytest loads this module through the `pytest11` entry point in every run of
every environment where `crownest` is installed, with or without the `local`
extra, so it imports nothing but pytest: the server (Starlette, uvicorn) is
imported when a test first asks for the fixture. Without the extra, such a
test fails with the install command; every other test is unaffected.

One server serves the whole session; each test gets it as is:

    def test_my_code(crownest_local):
        client = crownest_local.client()
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from ._server import LocalServer


@pytest.fixture(scope="session")
def crownest_local() -> Iterator[LocalServer]:
    """CrowNest Local on a free loopback port, with a temporary data folder, for the test session."""
    from ._extra import MissingExtraError, load_local_server

    try:
        server_class = load_local_server()
    except MissingExtraError as error:
        pytest.fail(str(error), pytrace=False)
    with server_class() as server:
        yield server
