"""Clean: work handed to a thread pool while the loop keeps busy (a task draws frames, a few
milliseconds of work each), so the loop is not idle waiting for the pool."""

import asyncio
import time


def crunch():
    time.sleep(0.3)
    return "done"


async def animate(stop):
    frames = 0
    while not stop.is_set():
        deadline = time.perf_counter() + 0.004
        while time.perf_counter() < deadline:  # drawing a frame
            pass
        frames += 1
        await asyncio.sleep(0.001)
    return frames


async def main():
    stop = asyncio.Event()
    animation = asyncio.create_task(animate(stop))
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(None, crunch)
    stop.set()
    print(result, await animation > 0)


asyncio.run(main())
