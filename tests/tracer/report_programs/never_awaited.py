"""A coroutine called without await: its body never runs."""

import asyncio


async def save():
    print("saved")


async def main():
    save()  # finding: never-awaited
    await asyncio.sleep(0.01)


asyncio.run(main())
