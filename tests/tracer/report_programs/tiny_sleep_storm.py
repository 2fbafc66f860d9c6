"""A task that polls with a sleep far shorter than a millisecond, each one a timer of its own
(a sleep's detail is a value row: the lint finds the delay in its base row)."""

import asyncio


async def poll_flag(flag):
    for _ in range(400):
        if flag.is_set():
            return
        await asyncio.sleep(0.00001)  # finding: self-wake-storm


async def main():
    flag = asyncio.Event()
    await asyncio.create_task(poll_flag(flag), name="poll_flag")


asyncio.run(main())
