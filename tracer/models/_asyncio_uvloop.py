"""uvloop's loop, traced: a subclass of uvloop.Loop that reports to a LoopTracer.

uvloop runs its loop in C (libuv), but what makes the timeline goes through methods a Python
subclass overrides: asyncio.run and gather create tasks with `create_task`, asyncio's Task and
Future schedule every step and every done-callback with `call_soon`, and asyncio.sleep sets
its timer with `call_later`. So tasks get their lanes, steps, sleeps and the wake arrows of
the futures that woke them, as on asyncio's own loop. What libuv does inside is out of
reach: the loop lane shows no polls (a note on it says so), a socket wait is "blocked" on its
future rather than an io-wait on its fd, and libuv's timers keep real time while a step holds
the program.

Imported only when the program uses uvloop (tracer.models.asyncio_model).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextvars import Context
from types import CodeType, CoroutineType
from typing import Any

import uvloop  # type: ignore[import-not-found,unused-ignore]

from loopscope.tracer.events import NO_LANE, Code
from loopscope.tracer.models._asyncio_loop import RunsOnItsLoopLane
from loopscope.tracer.models._asyncio_proxy import TracedCoroutine
from loopscope.tracer.models._asyncio_tracer import LoopTracer
from loopscope.tracer.models.toolkit import Guard
from loopscope.tracer.recorder import Recorder


def _run_wrapper_code() -> CodeType | None:
    """The code of the coroutine uvloop.run() runs around the program's own."""
    code = getattr(getattr(uvloop, "run", None), "__code__", None)
    for constant in code.co_consts if code is not None else ():
        if isinstance(constant, CodeType) and constant.co_name == "wrapper":
            return constant
    return None


_RUN_WRAPPER = _run_wrapper_code()
NO_POLLS = ("uvloop waits inside libuv, out of Loopscope's sight: this loop lane shows no "
            "polls, and a task waiting on a socket shows as blocked on its future")


class TracingUVLoop(RunsOnItsLoopLane, uvloop.Loop):  # type: ignore[misc,name-defined,unused-ignore]
    """A uvloop loop whose tasks, timers and wake-ups are recorded."""

    def __init__(self, recorder: Recorder, guard: Guard | None = None) -> None:
        super().__init__()
        self._tracer = tracer = LoopTracer(recorder, guard)
        recorder.record(tracer.loop_lane, Code.MARK, NO_LANE, recorder.detail(("text", NO_POLLS)))

    @property
    def tracer(self) -> LoopTracer:
        return self._tracer

    def create_task(self, coro: Any, **options: Any) -> Any:
        tracer = self._tracer
        if tracer.detached or type(coro) is not CoroutineType:
            return super().create_task(coro, **options)
        if coro.cr_code is _RUN_WRAPPER:
            # uvloop.run's wrapper around the program's coroutine: the lane is the program's
            main = coro.cr_frame.f_locals.get("main") if coro.cr_frame is not None else None
            name = getattr(main, "__qualname__", None)
            if isinstance(name, str):
                coro.__qualname__ = name
        proxy = TracedCoroutine(coro, tracer)
        task = super().create_task(proxy, **options)
        name = options.get("name")
        if name is None:
            # before 3.13 asyncio.create_task names the task after creating it
            caller = sys._getframe(1)
            if caller.f_code.co_name == "create_task":
                name = caller.f_locals.get("name")
        tracer.task_created(proxy, task, None if name is None else str(name))
        return task

    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any,
        context: Context | None = None,
    ) -> Any:
        # A future that completes schedules its callbacks here with itself as the argument.
        if args and not self._tracer.detached:
            callback = self._tracer.callback_scheduled(callback, args[0])
        return super().call_soon(callback, *args, context=context)

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., Any], *args: Any,
        context: Context | None = None,
    ) -> Any:
        if not self._tracer.detached:
            callback = self._tracer.timer_scheduled(delay, callback, args)
        return super().call_later(delay, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., Any], *args: Any,
        context: Context | None = None,
    ) -> Any:
        if not self._tracer.detached:
            callback = self._tracer.timer_scheduled(when - self.time(), callback, args)
        return super().call_at(when, callback, *args, context=context)


def is_uvloop_factory(factory: object) -> bool:
    """Whether a loop factory makes uvloop's loop (uvloop.new_event_loop, uvloop.Loop)."""
    return factory is uvloop.new_event_loop or factory is uvloop.Loop
