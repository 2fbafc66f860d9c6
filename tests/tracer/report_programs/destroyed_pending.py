"""A task nobody keeps a reference to is collected while it still waits."""

import asyncio
import gc


async def waits_forever():
    await asyncio.Event().wait()  # finding: destroyed-pending


def main():
    loop = asyncio.new_event_loop()
    loop.create_task(waits_forever(), name="orphan")  # noqa: RUF006  # (the point)
    loop.run_until_complete(asyncio.sleep(0.01))
    loop.close()
    gc.collect()


main()
