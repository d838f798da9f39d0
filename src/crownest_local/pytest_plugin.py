"""A pytest fixture for your own tests: `crownest_local`, a running CrowNest Local.

Installed with `crownest[local]`; pytest finds it through the `pytest11`
entry point. One server serves the whole session; each test gets it as is:

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
    from ._server import LocalServer  # only when a test asks for it

    with LocalServer() as server:
        yield server
