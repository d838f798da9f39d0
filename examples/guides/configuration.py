"""Configuration: timeouts, retries, logging and your own httpx client."""

import logging

import httpx

from crownest import CrowNest, CrowNestTimeoutError

# The SDK logs to the "crownest" logger (method, path, status, request ID; never bodies or keys).
# CROWNEST_LOG=debug does the same without code.
logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s %(message)s")
logging.getLogger("crownest").setLevel(logging.DEBUG)  # INFO: retries only; DEBUG: every response

seen: list[str] = []


def note(request: httpx.Request) -> None:
    seen.append(f"{request.method} {request.url.path}")


# Your own httpx client: its transport, proxies and event hooks are used as they are (you close it).
with (
    httpx.Client(event_hooks={"request": [note]}) as http,
    CrowNest(
        timeout=30,  # seconds for each request; None for no limit
        max_retries=4,  # retries of failures that are safe to retry (default 2)
        http_client=http,
    ) as client,
):
    sandbox = client.sandboxes.create(template="base")
    # Per-call options override the client's for one call.
    print(client.sandboxes.get(sandbox.id, timeout=5, max_retries=0).status)
    try:
        sandbox.commands.run("sleep 2", timeout=0.5, max_retries=0)
    except CrowNestTimeoutError:
        print("timed out on the client side after 0.5 s")
    sandbox.kill()

print(f"requests sent: {len(seen)}, first: {seen[0]}")
