"""A task that yields with sleep(0) in a loop instead of waiting for what it wants."""

import asyncio


async def poll_flag(flag):
    while not flag.is_set():
        await asyncio.sleep(0)  # finding: self-wake-storm


async def main():
    flag = asyncio.Event()
    asyncio.get_running_loop().call_later(0.1, flag.set)
    await asyncio.create_task(poll_flag(flag), name="poll_flag")


asyncio.run(main())
