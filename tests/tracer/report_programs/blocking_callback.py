"""A plain callback (not a task) that blocks: the loop itself stalls and the ticker is late."""

import asyncio
import time


def flush_to_disk():
    time.sleep(0.3)  # finding: stall


async def ticker():
    for _ in range(6):
        await asyncio.sleep(0.05)


async def main():
    asyncio.get_running_loop().call_later(0.06, flush_to_disk)
    await asyncio.create_task(ticker(), name="ticker")


asyncio.run(main())
