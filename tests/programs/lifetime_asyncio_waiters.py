"""Tasks waiting on futures nobody will complete, dropped by the program: the collector frees
them (asyncio says "Task was destroyed but it is pending!"), and their finalizers run then,
before the line printed after the collection."""

import asyncio
import gc
import weakref


async def wait_for(future):
    await future


async def drop_waiters(label, waiters):
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    tasks = [asyncio.create_task(wait_for(future)) for _ in range(waiters)]
    await asyncio.sleep(0)  # each task now waits on the future
    weakref.finalize(future, print, f"{label}: future finalized")
    weakref.finalize(tasks[-1], print, f"{label}: waiter finalized")
    del future, tasks
    gc.collect()
    print(f"{label}: collected")


async def gather_all(futures):
    await asyncio.gather(*futures)


async def gathered():
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(2)]
    waiter = asyncio.create_task(gather_all(futures))
    await asyncio.sleep(0)
    weakref.finalize(futures[0], print, "gather: future finalized")
    weakref.finalize(waiter, print, "gather: waiter finalized")
    del futures, waiter
    gc.collect()
    print("gather: collected")


async def main():
    await drop_waiters("one waiter", 1)
    await drop_waiters("three waiters", 3)
    await gathered()
    print("done")


asyncio.run(main())
