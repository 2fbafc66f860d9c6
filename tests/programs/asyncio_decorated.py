"""Coroutines behind a functools.wraps decorator, gathered; the program runs asyncio.run()
twice, as scripts that do a set-up pass and then the real pass often do."""

import asyncio
import functools


def logged(func):
    @functools.wraps(func)
    async def wrapper(*args):
        print(f"calling {func.__name__}{args}")
        return await func(*args)

    return wrapper


@logged
async def fetch(n):
    await asyncio.sleep(0.01 * n)
    return n * 10


async def main():
    print(await asyncio.gather(fetch(1), fetch(2), fetch(3)))


asyncio.run(main())
asyncio.run(main())
