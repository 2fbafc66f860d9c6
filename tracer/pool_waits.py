"""A program's thread pool's idle workers: blocked on the pool's work queue, woken by a submit.

A `ThreadPoolExecutor`'s worker with nothing to do waits in `SimpleQueue.get`, a C method
that records nothing, so its lane looked busy from its first task to the pool's shutdown.
For a pool the program makes (its `__init__` called from the program's code), the work queue
is a `WorkQueue`: a worker that finds it empty is blocked "on work queue" until an item comes,
and the thread whose `submit` (or shutdown) put that item in wakes it, as threads' waits on
the program's own queues are drawn (tracer.thread_waits). Pools a library makes, asyncio's
default executor among them, keep their plain queue; and a pool an asyncio task hands work
to is left alone from its first such submit on, since each piece of work is then a lane of
its own (tracer.thread_work) and a lane per worker would draw the same work twice.

Installed when the program first imports `concurrent.futures.thread` (tracer.after_import):
a program that never uses a pool never loads it.
"""

from __future__ import annotations

import functools
import queue
import sys
from concurrent.futures import thread
from types import FrameType
from typing import Any

from loopscope.tracer import thread_waits
from loopscope.tracer.threads import in_traced_thread, os_thread_ident

_KIND = "work queue"


class WorkQueue(queue.SimpleQueue):  # type: ignore[type-arg]
    """The work queue of a pool the program made; its waits and puts are noted."""

    def __init__(self, made: tuple[str, int, str, int]) -> None:
        self._loopscope_made = made
        self._waiting: set[int] = set()  # the workers waiting for an item (set.add is atomic)
        self._let_go: tuple[int, int] | None = None  # who last put an item in, and when
        self._from_a_loop = False  # an asyncio task has handed work to the pool

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        watcher = thread_waits._watcher
        if not block or watcher is None or self._from_a_loop or \
                getattr(watcher.local, "waiting", False):
            return super().get(block, timeout)
        try:
            return super().get(False)
        except queue.Empty:
            pass
        noted = watcher.guarded(self._wait_begins, watcher)
        if noted is None:
            return super().get(True, timeout)
        who, started, name = noted
        try:
            return super().get(True, timeout)
        finally:
            self._waiting.discard(os_thread_ident())
            # resumed where the worker's next task says (its RUNNING span), not in the pool
            watcher.guarded(watcher._end, who, started, self._let_go, name, None)

    def _wait_begins(self, watcher: thread_waits.ThreadWaits) -> tuple[int, int, str] | None:
        who = watcher._waiter()
        if who is None:
            return None
        name = watcher.name(self, self._loopscope_made)
        started = watcher._begin(who, ("on", _KIND, "primitive", name))
        self._waiting.add(os_thread_ident())
        return who, started, name

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        watcher = thread_waits._watcher
        if not self._from_a_loop and in_traced_thread() and _loop_running():
            self._from_a_loop = True  # before the worker this submit may start
        if self._waiting and watcher is not None:
            self._let_go = watcher.lets_go()
        super().put(item, block, timeout)


def _loop_running() -> bool:
    asyncio = sys.modules.get("asyncio")
    return asyncio is not None and asyncio.events._get_running_loop() is not None


def watch_pools(watcher: thread_waits.ThreadWaits) -> None:
    """From now on, a ThreadPoolExecutor the program makes gets a WorkQueue."""
    pool_type = thread.ThreadPoolExecutor
    built = pool_type.__init__

    @functools.wraps(built)
    def __init__(pool: thread.ThreadPoolExecutor, *args: Any, **kwargs: Any) -> None:
        built(pool, *args, **kwargs)
        if thread_waits._watcher is watcher:
            made = watcher.guarded(_made_by_program, watcher, pool, sys._getframe(1))
            if made is not None and isinstance(pool._work_queue, queue.SimpleQueue) and \
                    pool._work_queue.empty():
                pool._work_queue = WorkQueue(made)  # no worker has started yet

    pool_type.__init__ = __init__  # type: ignore[method-assign,assignment]
    watcher.on_uninstall(lambda: setattr(pool_type, "__init__", built))


def _made_by_program(watcher: thread_waits.ThreadWaits, pool: thread.ThreadPoolExecutor,
                     frame: FrameType | None) -> tuple[str, int, str, int] | None:
    """Where the program made `pool`, whose `__init__` `frame` called (past its subclasses'
    `__init__`s), or None: a library made it."""
    while frame is not None and frame.f_code.co_name == "__init__" and \
            frame.f_locals.get("self") is pool:
        frame = frame.f_back
    return watcher.made_by_program(frame, _KIND)
