"""Asyncio programs whose main task blocks in library calls, for the tests of how a blocked
wait is named (by the library call the program made) in-process and C against pure Python.

Three rounds, so that the later ones are named from the tracer's caches (the C proxy's own
path): a call that waits further down (Queue.join, in Event.wait), one past an __aenter__
(Lock.acquire), the program's own function innermost (Event.wait, the call in it), a library
function that calls back into the program (the program's call in the callback is named, or
the callback itself where it awaits a bare future), and asyncio.wait (in _wait).
as_completed_main waits in asyncio.as_completed, as a plain and (3.13+) an async iterator.
"""

from __future__ import annotations

import asyncio
import sys
import sysconfig
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

# Where each round's main task blocks, as the trace names it
BLOCKED_ON = ["Queue.join", "Lock.acquire", "Event.wait", "Event.wait", "own_future", "wait"]
# as_completed's iterator is asynchronous too from 3.13 (on 3.11 and 3.12 `async for` over
# it is a TypeError)
AS_COMPLETED_FORMS = 2 if sys.version_info >= (3, 13) else 1

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


async def after_steps(steps: int) -> int:
    for _ in range(steps):
        await asyncio.sleep(0)
    return steps


async def as_completed_main() -> list[int]:
    """Three rounds of two jobs, the second done steps before the first: each wait for the
    next one done blocks in as_completed's iterator until a job's end wakes it."""
    finished = []
    for _ in range(3):
        for next_done in asyncio.as_completed(jobs()):
            finished.append(await next_done)
        if AS_COMPLETED_FORMS == 2:
            async for done in asyncio.as_completed(jobs()):
                finished.append(done.result())
    return finished


def jobs() -> list[asyncio.Task[int]]:
    # tasks made here, in this order: as_completed makes a set of what it is given, and a
    # set of coroutines would start them in an order their addresses decide
    return [asyncio.create_task(after_steps(4)), asyncio.create_task(after_steps(1))]
