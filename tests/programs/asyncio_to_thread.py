"""Blocking work handed to threads: asyncio.to_thread and run_in_executor, as the docs show."""

import asyncio
import time


def blocking_io(seconds):
    print("worker sleeps", seconds)
    time.sleep(seconds)
    return seconds


async def main():
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(
        asyncio.to_thread(blocking_io, 0.05),
        loop.run_in_executor(None, blocking_io, 0.05),
    )
    print("threads returned", results)


asyncio.run(main())
