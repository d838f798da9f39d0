"""`make demo`: start CrowNest Local, then run the product page's worked example and async example.

The examples are the page's code unchanged; they find the server through
CROWNEST_BASE_URL and CROWNEST_API_KEY, as they would find the hosted API.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from crownest_local import LocalServer

EXAMPLES = Path(__file__).resolve().parent / "product_page"


def main() -> None:
    with LocalServer() as server:
        print(f"CrowNest Local is serving on {server.base_url}\n", flush=True)
        env = os.environ | {"CROWNEST_BASE_URL": server.base_url, "CROWNEST_API_KEY": server.api_key}
        for name in ("worked_example.py", "async_client.py"):
            print(f"$ python examples/product_page/{name}", flush=True)
            subprocess.run([sys.executable, str(EXAMPLES / name)], env=env, check=True)
            print(flush=True)


if __name__ == "__main__":
    main()
