"""asyncio.TaskGroup, as in the documentation: tasks awaited together when the group exits."""

import asyncio


async def say_after(delay, what):
    await asyncio.sleep(delay)
    print(what)
    return what


async def main():
    async with asyncio.TaskGroup() as group:
        first = group.create_task(say_after(0.05, "hello"), name="first")
        second = group.create_task(say_after(0.1, "world"), name="second")
    print("both done:", first.result(), second.result())


asyncio.run(main())
