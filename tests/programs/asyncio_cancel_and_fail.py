"""Three tasks that end three ways: one cancelled by another, one failing, one finishing."""

import asyncio


async def sleeper():
    await asyncio.sleep(10)


async def broken():
    await asyncio.sleep(0.01)
    raise ValueError("broken on purpose")


async def worker():
    await asyncio.sleep(0.02)
    return "done"


async def main():
    victim = asyncio.create_task(sleeper(), name="victim")
    failing = asyncio.create_task(broken(), name="broken")
    finishing = asyncio.create_task(worker(), name="worker")
    await asyncio.sleep(0.005)
    victim.cancel()
    results = await asyncio.gather(victim, failing, finishing, return_exceptions=True)
    print([type(result).__name__ for result in results])


asyncio.run(main())
