"""Two functions handed to asyncio's thread pool share a lock; the second waits for the first."""

import asyncio
import threading
import time

ledger = threading.Lock()


def post():
    with ledger:
        time.sleep(0.2)


def audit():
    while not ledger.locked():  # post has it before audit comes for it
        time.sleep(0.001)
    with ledger:  # waits here
        pass


async def main():
    await asyncio.gather(asyncio.to_thread(post), asyncio.to_thread(audit))


asyncio.run(main())
