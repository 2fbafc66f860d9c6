"""time.sleep itself handed to asyncio's thread pool, as asyncio's docs do with blocking calls."""

import asyncio
import time


async def main() -> None:
    await asyncio.to_thread(time.sleep, 0.02)
    await asyncio.get_running_loop().run_in_executor(None, time.sleep, 0.03)
    # the program sees the time.sleep it would see untraced
    print(time.sleep.__name__, time.sleep.__qualname__, time.sleep.__module__)


asyncio.run(main())
