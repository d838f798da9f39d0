"""Async: run the same job in three sandboxes at once on one AsyncCrowNest."""

import asyncio

from crownest import AsyncCrowNest


async def square(client: AsyncCrowNest, n: int) -> str:
    async with await client.sandboxes.create(template="python") as sandbox:
        result = await sandbox.commands.run(f"python -c 'print({n} * {n})'", check=True)
        return result.stdout.strip()


async def main() -> None:
    async with AsyncCrowNest() as client:
        squares = await asyncio.gather(*(square(client, n) for n in (2, 3, 4)))
        print("squares:", ", ".join(squares))


asyncio.run(main())
