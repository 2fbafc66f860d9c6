"""Threads that only wait on the standard library's own locks: a pool's futures, asyncio's
to_thread, a SimpleQueue. None of these is the program's primitive."""

import asyncio
import queue
import time
from concurrent.futures import ThreadPoolExecutor


def slow(n):
    time.sleep(0.02)
    return n


with ThreadPoolExecutor(max_workers=2) as pool:
    futures = [pool.submit(slow, n) for n in range(6)]
    print(sum(future.result() for future in futures))


async def main():
    print(sum(await asyncio.gather(*(asyncio.to_thread(slow, n) for n in range(4)))))


asyncio.run(main())
simple = queue.SimpleQueue()
simple.put(1)
print(simple.get())
