"""CrowNest Local: a real CrowNest server on this machine, for demos, tests and offline work.

    with LocalServer() as server:
        client = server.client()

or from a shell: `crownest-local serve`. Needs the `local` extra
(`pip install "crownest[local]"`). Where bubblewrap is installed, commands
run isolated in it; where it is not, the server says so loudly.

`LocalServer` is imported on first use: the pytest plugin and the command line
load this package in environments without the extra, and must not fail there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._server import LocalServer

__all__ = ["LocalServer"]


def __getattr__(name: str) -> Any:
    if name == "LocalServer":
        from ._extra import load_local_server

        return load_local_server()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
