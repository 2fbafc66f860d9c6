"""A program that picks its own event loop, through asyncio.Runner's loop_factory (3.11+)."""

import asyncio


class CountingLoop(asyncio.SelectorEventLoop):
    """The kind of loop subclass programs bring along (to count, to log, to tune)."""


async def main():
    await asyncio.gather(asyncio.sleep(0.01), asyncio.sleep(0.02))
    print("ran on", type(asyncio.get_running_loop()).__name__)


with asyncio.Runner(loop_factory=CountingLoop) as runner:
    runner.run(main())
