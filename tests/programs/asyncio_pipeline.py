"""An asyncio producer and consumer whose data flows through generators: a pipeline imported
from a module beside it, a generator expression the producer steps through between awaits,
and a running total fed with send(). A generator expression that sum() consumes at once is
only a loop and gets no lane."""

import asyncio

from _pipeline_stages import numbers, read_lines, running_total

TEXT = "1\n2\n\n3\n4\n"


async def producer(queue):
    squares = (number * number for number in numbers(read_lines(TEXT)))
    for square in squares:
        await queue.put(square)
        await asyncio.sleep(0.001)
    await queue.put(None)


async def consumer(queue):
    totals = running_total()
    next(totals)
    total = 0
    while (item := await queue.get()) is not None:
        total = totals.send(item)
        print("total", total)
    return total


async def main():
    queue = asyncio.Queue()
    _, total = await asyncio.gather(producer(queue), consumer(queue))
    print("checked", total == sum(n * n for n in range(1, 5)))


asyncio.run(main())
