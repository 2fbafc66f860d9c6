"""An asyncio program that also keeps a coroutine-style generator (a running averager, fed
with send()) -- two models at once; the asyncio one is followed, and the run says what else
the program did."""

import asyncio


def averager():
    total = count = 0
    average = None
    while True:
        value = yield average
        total += value
        count += 1
        average = total / count


async def sample(n):
    await asyncio.sleep(0.001 * n)
    return n


async def main():
    running = averager()
    next(running)
    for value in await asyncio.gather(*(sample(n) for n in (1, 2, 3))):
        print("average", running.send(value))


asyncio.run(main())
