"""Sixty tasks each doing 2 ms of CPU work between 10 ms sleeps: no step is long, but each
round of steps takes 120 ms, so every sleep ends about that late."""

import asyncio
import time


def crunch(seconds):
    until = time.perf_counter() + seconds
    while time.perf_counter() < until:
        pass


async def worker():
    for _ in range(3):
        crunch(0.002)
        await asyncio.sleep(0.01)  # finding: overloaded-loop


async def main():
    await asyncio.gather(*(worker() for _ in range(60)))


asyncio.run(main())
