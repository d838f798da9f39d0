"""Sandbox handles: a `Sandbox` that can act on itself.

`client.sandboxes.create()` and `.get()` return a `SandboxHandle`. It *is* a
`Sandbox` (attribute access, mapping access by wire name, `.to_dict()`), and
adds `.kill()`, `.refresh()`, `.set_ttl()`, use as a context manager that
kills the sandbox on exit, and the sandbox's resources with its ID bound
(`.commands`, `.files`, `.artifacts`, `.previews`, generated from the spec).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import attrs

from ._generated.models.sandbox import Sandbox
from ._generated.resources import AsyncSandboxScopes, SandboxScopes

if TYPE_CHECKING:
    from ._client import AsyncCrowNest, CrowNest

__all__ = ["AsyncSandboxHandle", "SandboxHandle"]

_FIELDS = tuple(field.name for field in attrs.fields(Sandbox))


def _copy_fields(target: Sandbox, source: Sandbox) -> None:
    for name in _FIELDS:
        setattr(target, name, getattr(source, name))
    target.additional_properties = dict(source.additional_properties)


class SandboxHandle(Sandbox, SandboxScopes):
    """A sandbox, bound to the client that fetched it."""

    __slots__ = ("_client",)

    def __init__(self, client: CrowNest, sandbox: Sandbox) -> None:
        _copy_fields(self, sandbox)
        self._client = client

    def kill(self) -> None:
        """Destroy the sandbox and every process in it (killing an ended sandbox is fine)."""
        self._client.sandboxes.kill(self.id)

    def refresh(self) -> None:
        """Fetch the sandbox again and update this handle's fields in place."""
        _copy_fields(self, self._client.sandboxes.get(self.id))

    def set_ttl(self, ttl_ms: int) -> None:
        """Expire the sandbox `ttl_ms` milliseconds from now; updates `expires_at` here."""
        _copy_fields(self, self._client.sandboxes.set_ttl(self.id, ttl_ms))

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.kill()


class AsyncSandboxHandle(Sandbox, AsyncSandboxScopes):
    """A sandbox, bound to the async client that fetched it."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncCrowNest, sandbox: Sandbox) -> None:
        _copy_fields(self, sandbox)
        self._client = client

    async def kill(self) -> None:
        """Destroy the sandbox and every process in it (killing an ended sandbox is fine)."""
        await self._client.sandboxes.kill(self.id)

    async def refresh(self) -> None:
        """Fetch the sandbox again and update this handle's fields in place."""
        _copy_fields(self, await self._client.sandboxes.get(self.id))

    async def set_ttl(self, ttl_ms: int) -> None:
        """Expire the sandbox `ttl_ms` milliseconds from now; updates `expires_at` here."""
        _copy_fields(self, await self._client.sandboxes.set_ttl(self.id, ttl_ms))

    async def __aenter__(self) -> AsyncSandboxHandle:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.kill()
