"""Work an asyncio program hands to a thread pool, as a lane that runs while the caller waits.

`asyncio.to_thread` and `loop.run_in_executor` submit a function to a ThreadPoolExecutor and
suspend the task until it is done; without this the timeline shows only the task "blocked".
While the run lasts, `ThreadPoolExecutor.submit` called from the traced thread with an asyncio
loop running there spawns a lane of kind "thread" named after the function ("blocking_io"),
running from the submit on. The worker thread may not record (the recorder has
one writer), so the lane's end is recorded on the loop's thread: the future's done callback
asks the loop to call back, as asyncio itself does to hand the result to the waiting task.
Submits from other threads or with no loop running pass through untraced.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import Context
from typing import TYPE_CHECKING, Any

from loopscope.tracer.events import NO_LANE, Code, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.threads import in_traced_thread

if TYPE_CHECKING:
    import asyncio


def function_name(function: Callable[..., Any]) -> str:
    """The name of the function a pool runs, through partials and to_thread's Context.run."""
    while True:
        if isinstance(function, functools.partial):
            inner = function.func
            if isinstance(getattr(inner, "__self__", None), Context) and function.args:
                function = function.args[0]  # to_thread: partial(context.run, func, *args)
            else:
                function = inner
            continue
        wrapped = getattr(function, "__wrapped__", None)
        if wrapped is None:
            break
        function = wrapped
    return str(getattr(function, "__qualname__", None) or getattr(function, "__name__", "work"))


class ThreadWork:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._original: Callable[..., Future[Any]] | None = None

    def install(self) -> None:
        # asyncio is imported here, by the asyncio model's run, not by every child's start-up
        from asyncio import events

        original = self._original = ThreadPoolExecutor.submit
        follow = self._follow

        def submit(executor: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any,
                   **kwargs: Any) -> Future[Any]:
            future = original(executor, fn, *args, **kwargs)
            if in_traced_thread():
                loop = events._get_running_loop()
                if loop is not None:
                    follow(future, fn, loop)
            return future

        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original is not None:
            ThreadPoolExecutor.submit = self._original  # type: ignore[method-assign]
            self._original = None

    def _follow(self, future: Future[Any], fn: Callable[..., Any],
                loop: asyncio.AbstractEventLoop) -> None:
        recorder = self.recorder
        if recorder.closed:
            return
        parent = recorder.current
        lane = recorder.spawn(function_name(fn), LaneKind.THREAD,
                              parent if parent != NO_LANE else NO_LANE)
        recorder.state(lane, Code.RUNNING)

        def done(finished: Future[Any]) -> None:  # in the worker thread, or here if done
            # a closed loop cannot call back: the lane then stays open to the end
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end, lane, finished)

        future.add_done_callback(done)

    def _end(self, lane: int, finished: Future[Any]) -> None:
        if self.recorder.closed:
            return
        if finished.cancelled():
            from asyncio import CancelledError

            self.recorder.end(lane, error=CancelledError())
        elif (error := finished.exception()) is not None:
            self.recorder.end(lane, error=error)
        else:
            self.recorder.end(lane, result=finished.result())
