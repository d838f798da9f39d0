"""The E2B suite's fixtures (packages/python-sdk/tests/conftest.py), on crownest: a client of the
session's CrowNest Local, and sandboxes labelled with the test's ID and killed after it."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from crownest import CrowNest, SandboxHandle
from crownest_local import LocalServer

SandboxFactory = Callable[..., SandboxHandle]


@pytest.fixture
def local(crownest_local: LocalServer) -> Iterator[CrowNest]:
    """A client of the session's CrowNest Local (E2B's tests reach the hosted API)."""
    with crownest_local.client(max_retries=0) as client:
        yield client


@pytest.fixture
def sandbox_test_id() -> str:
    return f"test_{uuid.uuid4().hex}"


@pytest.fixture
def sandbox_factory(local: CrowNest, sandbox_test_id: str) -> Iterator[SandboxFactory]:
    """Creates sandboxes (template `base` unless told) labelled `sandbox_test_id`; kills them after the test."""
    created: list[SandboxHandle] = []

    def factory(*, template: str = "base", metadata: dict[str, str] | None = None, **kwargs: Any) -> SandboxHandle:
        sandbox = local.sandboxes.create(
            template=template, metadata={"sandbox_test_id": sandbox_test_id, **(metadata or {})}, **kwargs
        )
        created.append(sandbox)
        return sandbox

    yield factory
    for sandbox in created:
        sandbox.kill()  # a no-op for one the test killed


@pytest.fixture
def sandbox(sandbox_factory: SandboxFactory) -> SandboxHandle:
    return sandbox_factory()
