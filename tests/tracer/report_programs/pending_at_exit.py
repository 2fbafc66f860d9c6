"""main returns while a task it started is still sleeping: asyncio.run cancels it."""

import asyncio


async def poller():
    while True:
        await asyncio.sleep(0.05)  # finding: pending-at-exit


async def main():
    asyncio.get_running_loop().create_task(poller(), name="poller")
    await asyncio.sleep(0.12)


asyncio.run(main())
