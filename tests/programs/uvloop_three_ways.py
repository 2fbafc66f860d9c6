"""uvloop, chosen the three ways its documentation shows: uvloop.run(), a Runner with
loop_factory=uvloop.new_event_loop, and uvloop.install() before asyncio.run()."""

import asyncio
import warnings

import uvloop


async def fetch(n):
    await asyncio.sleep(0.01 * n)
    return n


async def main(label):
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(fetch(1), fetch(2))
    print(label, isinstance(loop, uvloop.Loop), results)


uvloop.run(main("run"))
with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
    runner.run(main("runner"))
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # the policy API, from 3.12 on
    uvloop.install()
asyncio.run(main("install"))
