"""Clean: a producer and consumers on a queue, a lock held briefly, a short sleep(0) yield,
a task awaited, an exception retrieved. Nothing here is a finding."""

import asyncio
import contextlib


async def consumer(queue, lock, totals):
    while True:
        item = await queue.get()
        async with lock:
            totals.append(item)
        queue.task_done()


async def fails():
    raise ValueError("expected")


async def main():
    queue = asyncio.Queue()
    lock = asyncio.Lock()
    totals = []
    consumers = [asyncio.create_task(consumer(queue, lock, totals)) for _ in range(3)]
    for item in range(30):
        await queue.put(item)
        await asyncio.sleep(0.002)
    await queue.join()
    for task in consumers:
        task.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    with contextlib.suppress(ValueError):
        await asyncio.create_task(fails())
    for _ in range(10):
        await asyncio.sleep(0)
    print(sum(totals))


asyncio.run(main())
