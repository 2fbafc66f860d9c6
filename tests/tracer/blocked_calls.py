"""An asyncio program whose main task blocks in library calls, for the tests of how a blocked
wait is named (by the library call the program made) in-process and C against pure Python.

Three rounds, so that the later ones are named from the tracer's caches (the C proxy's own
path): a call that waits further down (Queue.join, in Event.wait), one past an __aenter__
(Lock.acquire), the program's own function innermost (Event.wait, the call in it), a library
function that calls back into the program (the program's call in the callback is named, or
the callback itself where it awaits a bare future), and asyncio.wait (in _wait).
"""

from __future__ import annotations

import asyncio
import sysconfig
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

# Where each round's main task blocks, as the trace names it
BLOCKED_ON = ["Queue.join", "Lock.acquire", "Event.wait", "Event.wait", "own_future", "wait"]

# A library's function, compiled under a file name in the standard library: library code to
# the tracer, as aiohttp's would be
_LIBRARY = """
async def call_back(callback):
    return await callback()
"""
_library: dict[str, Any] = {}
exec(compile(_LIBRARY, str(Path(sysconfig.get_paths()["stdlib"]) / "loopscope_test_helpers.py"),
             "exec"), _library)
call_back: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] = _library["call_back"]


async def worker(queue: asyncio.Queue[int]) -> None:
    await queue.get()
    await asyncio.sleep(0)
    queue.task_done()


async def holder(lock: asyncio.Lock) -> None:
    async with lock:
        await asyncio.sleep(0)


async def own_wait(event: asyncio.Event) -> None:
    await event.wait()


async def own_future(future: asyncio.Future[None]) -> None:
    await future


def set_soon(event: asyncio.Event) -> asyncio.Event:
    asyncio.get_running_loop().call_soon(event.set)
    return event


async def main() -> None:
    loop = asyncio.get_running_loop()
    helpers = []
    for _ in range(3):
        queue: asyncio.Queue[int] = asyncio.Queue()
        queue.put_nowait(1)
        helpers.append(asyncio.create_task(worker(queue)))
        await queue.join()
        lock = asyncio.Lock()
        helpers.append(asyncio.create_task(holder(lock)))
        await asyncio.sleep(0)
        async with lock:
            pass
        await own_wait(set_soon(asyncio.Event()))
        event = set_soon(asyncio.Event())
        await call_back(partial(own_wait, event))
        future = loop.create_future()
        loop.call_soon(future.set_result, None)
        await call_back(partial(own_future, future))
        await asyncio.wait([asyncio.create_task(asyncio.sleep(0))])
