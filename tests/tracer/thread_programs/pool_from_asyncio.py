"""An asyncio task hands work to a thread pool the program made: each piece of work is a lane
of its own, and the pool's workers get none."""

import asyncio
import concurrent.futures
import time


def blocking_io(n):
    time.sleep(0.01)
    return n


async def main():
    loop = asyncio.get_running_loop()
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        print(sum(await asyncio.gather(*(loop.run_in_executor(pool, blocking_io, n)
                                         for n in range(4)))))
        await asyncio.sleep(0.02)  # the workers are idle meanwhile
        print(await loop.run_in_executor(pool, blocking_io, 9))


asyncio.run(main())
