"""The library's logging: method, path, status, request id, attempt and delay; never bodies or headers.

`CROWNEST_LOG=debug` (or `info`) sends the `crownest` logger's records to
stderr; otherwise the records go wherever the application's logging config
sends them (nowhere by default).
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("crownest")
_configured = False


def configure_from_env() -> None:
    """Honour `CROWNEST_LOG` once: give the logger a level and a stderr handler."""
    global _configured
    level = {"debug": logging.DEBUG, "info": logging.INFO}.get(os.environ.get("CROWNEST_LOG", "").lower())
    if level is None or _configured:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    _configured = True
