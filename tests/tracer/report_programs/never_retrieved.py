"""A task fails and nobody looks at its exception."""

import asyncio
import gc


async def fails():
    raise ValueError("nobody looks at me")  # finding: exception-never-retrieved


async def main():
    task = asyncio.get_running_loop().create_task(fails(), name="fails")
    await asyncio.sleep(0.05)
    del task
    gc.collect()


asyncio.run(main())
