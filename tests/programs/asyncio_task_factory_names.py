"""Task factories, as libraries write them: one that makes a plain Task (3.13.0's create_task
then calls task.set_name(None) itself), one that passes name=None on to set_name, and
asyncio's eager factory. Each task prints the name asyncio gives it."""

import asyncio


def plain_factory(loop, coro, **kwargs):
    return asyncio.Task(coro, loop=loop, **kwargs)


def none_naming_factory(loop, coro, name=None, **kwargs):
    task = asyncio.Task(coro, loop=loop, **kwargs)
    task.set_name(name)
    return task


async def child(label):
    print(f"{label}: {asyncio.current_task().get_name()}")


async def main():
    loop = asyncio.get_running_loop()
    loop.set_task_factory(plain_factory)
    await asyncio.create_task(child("plain"))
    loop.set_task_factory(none_naming_factory)
    await asyncio.create_task(child("set_name(None)"))
    if hasattr(asyncio, "eager_task_factory"):
        loop.set_task_factory(asyncio.eager_task_factory)
        await asyncio.create_task(child("eager"))


asyncio.run(main())
