"""Timeouts and cancellation as the asyncio documentation shows them: asyncio.timeout(),
wait_for() and a task cancelled by another."""

import asyncio


async def slow(seconds):
    await asyncio.sleep(seconds)
    return seconds


async def main():
    try:
        async with asyncio.timeout(0.05):
            await slow(10)
    except TimeoutError:
        print("timeout() fired")
    try:
        await asyncio.wait_for(slow(10), timeout=0.05)
    except TimeoutError:
        print("wait_for() timed out")
    victim = asyncio.create_task(slow(10), name="victim")
    await asyncio.sleep(0.01)
    victim.cancel()
    try:
        await victim
    except asyncio.CancelledError:
        print("victim cancelled")


asyncio.run(main())
