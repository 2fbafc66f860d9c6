"""The loop idle while work waits in a thread pool, through run_in_executor: a pool of one
worker gets three jobs at once, so they queue and run one after another while the loop waits
for all of them with nothing else to do."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor


def compress(chunk):
    time.sleep(0.05)
    return chunk * 2


async def main():
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1) as pool:
        jobs = [loop.run_in_executor(pool, compress, chunk)  # finding: idle-on-thread-pool
                for chunk in range(3)]
        print(await asyncio.gather(*jobs))


asyncio.run(main())
