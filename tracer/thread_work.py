"""Work an asyncio program hands to a thread pool, as a lane that runs while the caller waits.

`asyncio.to_thread` and `loop.run_in_executor` submit a function to a ThreadPoolExecutor and
suspend the task until it is done; without this the timeline shows only the task "blocked".
While the run lasts, `ThreadPoolExecutor.submit` called from the traced thread with an asyncio
loop running there spawns a lane of kind "thread" named after the function ("blocking_io"),
running from the submit on. The worker thread may not record (the recorder has
one writer), so the lane's end is recorded on the loop's thread: the future's done callback
asks the loop to call back, as asyncio itself does to hand the result to the waiting task.
Submits from other threads or with no loop running pass through untraced.

This is installed from inside the program's first import of `concurrent.futures.thread`
(tracer.child), so ThreadPoolExecutor is taken from that module, not from the package: on
3.15 the package's name is a lazy import, the very one being resolved at that moment.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.thread import ThreadPoolExecutor  # the module's: see above
from contextvars import Context
from types import FrameType
from typing import TYPE_CHECKING, Any

from loopscope.tracer.events import NO_LANE, NO_SOURCE, Code, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.thread_lines import on_lane, record_waiting_lines
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


# Frames of these folders are the pool's and asyncio's plumbing, not the call that handed the
# work over: asyncio.to_thread -> loop.run_in_executor -> ThreadPoolExecutor.submit.
_PLUMBING = (os.path.dirname(concurrent.futures.__file__ or "") + os.sep,
             os.path.dirname(os.path.abspath(__file__)) + os.sep)


_HANDING_OVER = frozenset({"run_in_executor", "to_thread"})


def _submitted_at(recorder: Recorder, frame: FrameType | None) -> int:
    """The source index of the line that handed the work to the pool: the first frame out
    from `submit` past the pool's, Loopscope's and asyncio's `run_in_executor`/`to_thread`.
    None (NO_SOURCE) when that frame is the event loop's own: a `to_thread()` coroutine
    run as a task of its own (by gather) has no caller left on the stack."""
    asyncio_dir = os.path.dirname(sys.modules["asyncio"].__file__ or "") + os.sep
    while frame is not None:
        code = frame.f_code
        if code.co_filename.startswith(asyncio_dir):
            if code.co_name not in _HANDING_OVER:
                return NO_SOURCE
        elif not code.co_filename.startswith(_PLUMBING):
            return recorder.source_of(code, frame.f_lineno)
        frame = frame.f_back
    return NO_SOURCE


class ThreadWork:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._original: Callable[..., Future[Any]] | None = None

    def install(self) -> None:
        # asyncio is imported here, by the asyncio model's run, not by every child's start-up
        from asyncio import events

        original = self._original = ThreadPoolExecutor.submit
        follow = self._follow
        recorder = self.recorder

        def submit(executor: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any,
                   **kwargs: Any) -> Future[Any]:
            loop = events._get_running_loop() if in_traced_thread() else None
            if loop is None or recorder.closed:
                return original(executor, fn, *args, **kwargs)
            lane = self._spawn(fn)
            try:
                # what the function prints in the worker goes on its lane
                future = original(executor, on_lane(lane, fn), *args, **kwargs)
            except BaseException as error:  # a pool that was shut down: the lane ends here
                recorder.end(lane, error=error)
                raise
            follow(future, lane, loop)
            return future

        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        if self._original is not None:
            ThreadPoolExecutor.submit = self._original  # type: ignore[method-assign]
            self._original = None

    def _spawn(self, fn: Callable[..., Any]) -> int:
        """A lane for work handed to the pool, from the line that handed it over (the caller
        of `submit`: frame 1 here is submit's own)."""
        recorder = self.recorder
        parent = recorder.current
        lane = recorder.spawn(function_name(fn), LaneKind.THREAD,
                              parent if parent != NO_LANE else NO_LANE,
                              source=_submitted_at(recorder, sys._getframe(1)))
        recorder.state(lane, Code.RUNNING)
        return lane

    def _follow(self, future: Future[Any], lane: int, loop: asyncio.AbstractEventLoop) -> None:
        def done(finished: Future[Any]) -> None:  # in the worker thread, or here if done
            # a closed loop cannot call back: the lane then stays open to the end
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end, lane, finished)

        future.add_done_callback(done)

    def _end(self, lane: int, finished: Future[Any]) -> None:
        if self.recorder.closed:
            return
        record_waiting_lines()
        if finished.cancelled():
            from asyncio import CancelledError

            self.recorder.end(lane, error=CancelledError())
        elif (error := finished.exception()) is not None:
            self.recorder.end(lane, error=error)
        else:
            self.recorder.end(lane, result=finished.result())
