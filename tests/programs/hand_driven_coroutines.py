"""async def coroutines driven by hand: a trampoline that send()s None until StopIteration,
as pyperformance's coroutines benchmark and the seeds' yield-based coroutines do."""

import types


@types.coroutine
def switch():
    yield


async def fib(n):
    if n < 2:
        await switch()
        return n
    return await fib(n - 1) + await fib(n - 2)


def run(coro):
    steps = 0
    try:
        while True:
            coro.send(None)
            steps += 1
    except StopIteration as stop:
        return stop.value, steps


print(run(fib(6)))
