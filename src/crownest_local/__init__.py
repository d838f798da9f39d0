"""CrowNest Local: a real CrowNest server on this machine, for demos, tests and offline work.

    with LocalServer() as server:
        client = server.client()

or from a shell: `crownest-local serve`. Needs the `local` extra
(`pip install "crownest[local]"`). Where bubblewrap is installed, commands
run isolated in it; where it is not, the server says so loudly.
"""

from __future__ import annotations

from ._server import LocalServer

__all__ = ["LocalServer"]
