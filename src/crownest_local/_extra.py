"""The `local` extra: CrowNest Local's server needs Starlette and uvicorn, which `pip install crownest`
does not bring. Everything that loads the server goes through `load_local_server()`, so a missing extra
is one clear error that names the install command, never a bare ModuleNotFoundError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._server import LocalServer

INSTALL_HINT = 'CrowNest Local needs the "local" extra: pip install "crownest[local]"'
# The distributions the `local` extra adds (pyproject.toml), by their import names.
EXTRA_MODULES = frozenset({"starlette", "uvicorn"})


class MissingExtraError(ImportError):
    """The `local` extra is not installed; the message says how to install it."""


def load_local_server() -> type[LocalServer]:
    """The `LocalServer` class, imported on first use.

    Raises:
        MissingExtraError: Starlette or uvicorn is not installed.
    """
    try:
        from ._server import LocalServer
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in EXTRA_MODULES:
            raise
        raise MissingExtraError(f"{INSTALL_HINT} ({error.name} is not installed)", name=error.name) from None
    return LocalServer
