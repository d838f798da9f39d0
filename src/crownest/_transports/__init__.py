"""The async client's default transport (see `_pool` for why it is not httpcore's pool).

Imported only when an `AsyncCrowNest` builds its own `httpx.AsyncClient`, so that
`import crownest` does not pay for asyncio.
"""

from ._pool import AsyncTransport

__all__ = ["AsyncTransport"]
