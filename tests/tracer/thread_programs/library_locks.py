"""Threads that only wait on the standard library's own locks: asyncio's to_thread (its
default pool's futures), a SimpleQueue. None of these is the program's primitive."""

import asyncio
import queue
import time


def slow(n):
    time.sleep(0.02)
    return n


async def main():
    print(sum(await asyncio.gather(*(asyncio.to_thread(slow, n) for n in range(4)))))


asyncio.run(main())
simple = queue.SimpleQueue()
simple.put(1)
print(simple.get())
