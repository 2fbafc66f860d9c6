"""Four workers serialise behind one lock that each holds across an await."""

import asyncio


async def worker(lock):
    for _ in range(3):
        async with lock:  # finding: contention
            await asyncio.sleep(0.02)


async def main():
    lock = asyncio.Lock()
    await asyncio.gather(*(worker(lock) for _ in range(4)))


asyncio.run(main())
