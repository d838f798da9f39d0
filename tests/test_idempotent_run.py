"""A blocking `run` whose client times out and retries gets the command's result, and runs it once."""

from __future__ import annotations

from crownest_local import LocalServer


def test_a_run_retried_after_a_client_timeout_returns_the_real_result(crownest_local: LocalServer) -> None:
    """Attempt 1 times out after 1 s; attempt 2 joins the running request and times out too;
    attempt 3 (at 3.1 s or later, after the backoff) gets the answer of the one command."""
    with crownest_local.client() as client, client.sandboxes.create(template="base") as sandbox:
        result = sandbox.commands.run("sleep 3; echo done", timeout=1, max_retries=2)
        assert (result.status, result.exit_code, result.stdout) == ("succeeded", 0, "done\n")
        assert [c.id for c in sandbox.commands.list()] == [result.id]


async def test_an_async_run_retried_after_a_client_timeout_returns_the_real_result(
    crownest_local: LocalServer,
) -> None:
    async with crownest_local.async_client() as client:
        sandbox = await client.sandboxes.create(template="base")
        try:
            result = await sandbox.commands.run("sleep 3; echo done", timeout=1, max_retries=2)
            assert (result.status, result.exit_code, result.stdout) == ("succeeded", 0, "done\n")
            assert [c.id async for c in sandbox.commands.list()] == [result.id]
        finally:
            await sandbox.kill()
