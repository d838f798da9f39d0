"""E2B's sandbox lifecycle tests (packages/python-sdk/tests/sync/sandbox_sync/ and api_sync/), on crownest.

E2B's `Sandbox.kill(id)` and `Sandbox.connect(id)` are `client.sandboxes.kill(id)` and
`client.sandboxes.get(id)`; `set_timeout(seconds)` is `set_ttl(milliseconds)`; `SandboxQuery(metadata=,
state=[RUNNING])` is `list(metadata=, status="running")`; a paginator's `next_items()` is a pager's
`first_page()`, whose `next_cursor` plays `next_token`.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest

from crownest import CrowNest, NotFoundError, SandboxHandle

from .conftest import SandboxFactory


def running_ids(client: CrowNest, sandbox_test_id: str) -> list[str]:
    return [s.id for s in client.sandboxes.list(status="running", metadata={"sandbox_test_id": sandbox_test_id})]


def test_start(sandbox_factory: SandboxFactory) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/test_create.py::test_start"""
    sandbox = sandbox_factory(ttl_ms=5000)
    assert sandbox.status == "running"
    assert sandbox.template == "base"


def test_metadata(local: CrowNest, sandbox_factory: SandboxFactory) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/test_create.py::test_metadata"""
    sandbox = sandbox_factory(ttl_ms=5000, metadata={"test-key": "test-value"})
    [found] = [s for s in local.sandboxes.list(metadata={"test-key": "test-value"}) if s.id == sandbox.id]
    assert found.metadata["test-key"] == "test-value"


def test_kill(local: CrowNest, sandbox: SandboxHandle, sandbox_test_id: str) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/test_kill.py::test_kill"""
    sandbox.kill()
    assert sandbox.id not in running_ids(local, sandbox_test_id)


def test_kill_existing_sandbox(local: CrowNest, sandbox: SandboxHandle, sandbox_test_id: str) -> None:
    """packages/python-sdk/tests/sync/api_sync/test_sbx_kill.py::test_kill_existing_sandbox"""
    local.sandboxes.kill(sandbox.id)
    assert sandbox.id not in running_ids(local, sandbox_test_id)
    assert local.sandboxes.get(sandbox.id).status == "killed"


def test_kill_non_existing_sandbox(local: CrowNest) -> None:
    """packages/python-sdk/tests/sync/api_sync/test_sbx_kill.py::test_kill_non_existing_sandbox

    E2B's kill returns False for an unknown ID; crownest raises NotFoundError (`sandbox_not_found`)."""
    with pytest.raises(NotFoundError) as raised:
        local.sandboxes.kill("sbx_0000000000000000")
    assert raised.value.code == "sandbox_not_found"


def test_get_info(local: CrowNest, sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/api_sync/test_sbx_info.py::test_get_info"""
    assert local.sandboxes.get(sandbox.id).id == sandbox.id


def test_connect(local: CrowNest, sandbox_factory: SandboxFactory) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/test_connect.py::test_connect

    crownest has no connection step: `sandboxes.get(id)` returns a handle that works at once."""
    sandbox = sandbox_factory(ttl_ms=10_000)
    connected = local.sandboxes.get(sandbox.id)
    assert connected.status == "running"
    assert connected.commands.run("echo connected").stdout == "connected\n"


def test_list_sandboxes(local: CrowNest, sandbox: SandboxHandle, sandbox_test_id: str) -> None:
    """packages/python-sdk/tests/sync/api_sync/test_sbx_list.py::test_list_sandboxes"""
    page = local.sandboxes.list(metadata={"sandbox_test_id": sandbox_test_id}).first_page()
    assert sandbox.id in [s.id for s in page.data]


def test_list_sandboxes_with_filter(local: CrowNest, sandbox_factory: SandboxFactory) -> None:
    """packages/python-sdk/tests/sync/api_sync/test_sbx_list.py::test_list_sandboxes_with_filter"""
    unique_id = str(uuid.uuid4())
    sandbox_factory()
    extra = sandbox_factory(metadata={"unique_id": unique_id})
    assert [s.id for s in local.sandboxes.list(metadata={"unique_id": unique_id})] == [extra.id]


def test_list_running_sandboxes(local: CrowNest, sandbox: SandboxHandle, sandbox_test_id: str) -> None:
    """packages/python-sdk/tests/sync/api_sync/test_sbx_list.py::test_list_running_sandboxes"""
    found = list(local.sandboxes.list(metadata={"sandbox_test_id": sandbox_test_id}, status="running"))
    assert any(s.id == sandbox.id and s.status == "running" for s in found)


def test_paginate_running_sandboxes(
    local: CrowNest, sandbox: SandboxHandle, sandbox_factory: SandboxFactory, sandbox_test_id: str
) -> None:
    """packages/python-sdk/tests/sync/api_sync/test_sbx_list.py::test_paginate_running_sandboxes"""
    extra = sandbox_factory()
    pager = local.sandboxes.list(metadata={"sandbox_test_id": sandbox_test_id}, status="running", limit=1)
    first = pager.first_page()
    assert [s.id for s in first.data] == [extra.id]  # newest first, as in E2B
    assert first.next_cursor is not None
    second = local.sandboxes.list(
        metadata={"sandbox_test_id": sandbox_test_id}, status="running", limit=1, cursor=first.next_cursor
    ).first_page()
    assert [(s.id, s.status) for s in second.data] == [(sandbox.id, "running")]
    assert second.next_cursor is None


def test_paginate_iterator(local: CrowNest, sandbox: SandboxHandle, sandbox_test_id: str) -> None:
    """packages/python-sdk/tests/sync/api_sync/test_sbx_list.py::test_paginate_iterator

    E2B loops `while paginator.has_next: next_items()`; a crownest pager is iterated for every page."""
    found = [s.id for s in local.sandboxes.list(metadata={"sandbox_test_id": sandbox_test_id}, limit=1)]
    assert sandbox.id in found


def test_shorten_timeout(local: CrowNest, sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/test_timeout.py::test_shorten_timeout

    E2B sleeps past a 5 s timeout; here the sandbox is waited for until it has expired (no sleep of a
    guessed length), and then it is not running."""
    sandbox.set_ttl(1000)  # the shortest TTL
    command = sandbox.commands.start("sleep 60")
    assert command.wait().status == "killed"  # the wait ends when the sandbox expires under it
    assert local.sandboxes.get(sandbox.id).status == "expired"


def test_shorten_then_lengthen_timeout(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/test_timeout.py::test_shorten_then_lengthen_timeout"""
    sandbox.set_ttl(5000)
    shortened = sandbox.expires_at
    sandbox.set_ttl(10_000)
    assert sandbox.expires_at > shortened
    sandbox.refresh()
    assert sandbox.status == "running"


def test_get_timeout(sandbox: SandboxHandle) -> None:
    """packages/python-sdk/tests/sync/sandbox_sync/test_timeout.py::test_get_timeout"""
    sandbox.refresh()
    assert isinstance(sandbox.expires_at, datetime)
    assert sandbox.expires_at.tzinfo is not None
