"""Worker threads that each run an event loop of their own, beside the main thread's."""

import asyncio
import threading


async def tick(count):
    for _ in range(count):
        await asyncio.sleep(0.001)
    return count


def worker(results, index):
    results[index] = asyncio.run(tick(20))


async def main():
    await asyncio.sleep(0.02)
    print("main loop done")


results = [0] * 6
threads = [threading.Thread(target=worker, args=(results, i)) for i in range(6)]
for thread in threads:
    thread.start()
asyncio.run(main())
for thread in threads:
    thread.join()
print("threads ticked", sum(results))
