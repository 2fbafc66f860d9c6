"""The asyncio.Queue documentation example, shortened: workers sleep on the items they take."""

import asyncio
import random


async def worker(name, queue):
    while True:
        sleep_for = await queue.get()
        await asyncio.sleep(sleep_for)
        queue.task_done()
        print(f"{name} has slept for {sleep_for:.2f} seconds")


async def main():
    random.seed(7)
    queue = asyncio.Queue()
    for _ in range(6):
        queue.put_nowait(random.uniform(0.01, 0.05))
    tasks = [asyncio.create_task(worker(f"worker-{i}", queue)) for i in range(3)]
    await queue.join()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    print("queue drained")


asyncio.run(main())
