"""A SelectorEventLoop that reports to a LoopTracer, and its selector.

The overrides only observe: each one hands its arguments to the tracer (which may wrap a
callback to know, later, why the callback ran) and then does exactly what the base class does,
with whatever keyword arguments this Python's base class takes passed on untouched (3.14's
`eager_start=` to create_task, 3.15's `context=` to _add_reader).
"""

from __future__ import annotations

import asyncio
import selectors
import sys
from asyncio import base_events, taskgroups, tasks
from asyncio.events import Handle
from collections.abc import Callable
from contextvars import Context
from time import monotonic as _monotonic
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from loopscope.tracer.models._asyncio_proxy import TracedCoroutine
from loopscope.tracer.models._asyncio_tracer import LoopTracer
from loopscope.tracer.models.toolkit import Guard
from loopscope.tracer.recorder import SPEEDUPS, Recorder

_BaseEventLoop = base_events.BaseEventLoop
# the Task class itself, which asyncio.Task stops being while tracing (TaskBuiltDirectly)
_RealTask: type[asyncio.Task[Any]] = tasks.Task

# asyncio.run's own clean-up tasks: not the program's, so they get no lanes.
# Sets of ids, not of code objects: hashing a code object walks its bytecode (3.12+), and
# every create_task looks here. The functions live as long as asyncio, so the ids stay theirs.
_CLEANUP_CODES = frozenset(
    {
        id(_BaseEventLoop.shutdown_asyncgens.__code__),
        id(_BaseEventLoop.shutdown_default_executor.__code__),
    }
)

# Before 3.13 these call loop.create_task(coro) and set the task's name afterwards; the name
# the program chose is then read from their `name` argument, so the lane gets it at spawn.
# From 3.13 on they pass the name along, and the caller's frame (which sys._getframe has to
# build, for every task) is not looked at.
_NAMING_CALLER_CODES = (tasks.create_task.__code__, taskgroups.TaskGroup.create_task.__code__)
_NAMING_CALLERS = frozenset(id(code) for code in _NAMING_CALLER_CODES)
_NAMED_AFTERWARDS = sys.version_info < (3, 13)


class TracingSelector(selectors.DefaultSelector):
    """The platform's default selector; each select is the loop lane's `poll` state."""

    tracer: LoopTracer | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        tracer = self.tracer
        if tracer is None or tracer.detached:
            return super().select(timeout)
        tracer.poll_started(timeout)
        if timeout is None or timeout > 0:
            # Flush only when the poll will really wait: a loop under load polls with a
            # timeout but finds fds ready at once, and a flush per poll would dominate.
            ready = super().select(0)
            if not ready:
                tracer.before_blocking()
                ready = super().select(timeout)
        else:
            ready = super().select(timeout)
        tracer.poll_returned(ready)
        return ready


def _watching_fds(add: Callable[..., asyncio.Handle], kind: str) -> Callable[..., asyncio.Handle]:
    """The loop's `add` (_add_reader or _add_writer) telling the tracer first that a callback
    waits for `fd` to be ready to `kind` (read, write). The base's function is called as is,
    without super(): every wait of a program doing I/O comes here."""

    def watching(self: TracingEventLoop, fd: Any, callback: Callable[..., Any], *args: Any,
                 **options: Any) -> asyncio.Handle:
        if not self._tracer.detached:
            callback = self._tracer.fd_watched(fd, kind, callback, args)
        return add(self, fd, callback, *args, **options)

    watching.__name__ = add.__name__
    return watching


class RunsOnItsLoopLane:
    """What a traced loop of any kind (asyncio's, uvloop's) does around running and closing:
    while it runs, the recorder's current lane is its loop lane; closing ends that lane."""

    _tracer: LoopTracer

    def run_forever(self) -> None:
        tracer = self._tracer
        recorder = tracer.recorder
        outer = recorder.current
        if not tracer.detached:
            recorder.current = tracer.loop_lane
        try:
            super().run_forever()  # type: ignore[misc]
        finally:
            if not tracer.detached:
                recorder.current = outer

    def close(self) -> None:
        super().close()  # type: ignore[misc]
        self._tracer.loop_closed()


class PureLoopHooks:
    """The traced loop's create_task and call_soon, which every task and every step go
    through: the twin of tracer._speedups.LoopHooksCore, which does the same without a Python
    frame of its own."""

    _tracer: LoopTracer
    _task_factory: Any
    _debug: bool
    _closed: bool
    _ready: Any

    def create_task(self, coro: Any, **options: Any) -> asyncio.Task[Any]:
        loop: Any = self  # a TracingEventLoop
        tracer = self._tracer
        if tracer.detached or type(coro) is not CoroutineType or id(coro.cr_code) in _CLEANUP_CODES:
            return _BaseEventLoop.create_task(loop, coro, **options)
        try:
            proxy = TracedCoroutine(coro, tracer)
        except Exception as error:  # ours, not the program's: the task runs untraced
            tracer.detach(error)
            return _BaseEventLoop.create_task(loop, coro, **options)
        # The name the program gave, found before the task is made: an eager task's lane is
        # spawned by its first step, which runs inside the Task constructor, and takes it
        # from the proxy (LoopTracer.spawn_eager).
        name = options.get("name")
        if name is None and _NAMED_AFTERWARDS:
            caller = sys._getframe(1)
            if id(caller.f_code) in _NAMING_CALLERS:
                name = caller.f_locals.get("name")
        if name is not None:
            proxy._name = name = str(name)
        if self._task_factory is None and not self._debug and not self._closed:
            # What BaseEventLoop.create_task does then (3.11-3.14), minus its own frame and
            # _check_closed's: a program with 100k tasks passes here 100k times.
            task = _RealTask(proxy, loop=loop, **options)
        else:
            task = _BaseEventLoop.create_task(loop, proxy, **options)
        tracer.task_created(proxy, task, name)
        return task

    def call_soon(
        self, callback: Callable[..., Any], *args: Any, context: Context | None = None
    ) -> asyncio.Handle:
        loop: Any = self  # a TracingEventLoop
        # A future that completes schedules its callbacks here with itself as the argument.
        if args and not self._tracer.detached:
            callback = self._tracer.callback_scheduled(callback, args[0])
        if self._closed or self._debug:  # the base's checks
            return _BaseEventLoop.call_soon(loop, callback, *args, context=context)
        # What BaseEventLoop.call_soon does when not in debug mode, minus two calls: every
        # task step goes through here, so the override must cost next to nothing.
        handle = Handle(callback, args, loop, context)
        self._ready.append(handle)
        return handle


if TYPE_CHECKING or SPEEDUPS is None:
    _LoopHooks = PureLoopHooks
else:
    _LoopHooks = SPEEDUPS.LoopHooksCore
    SPEEDUPS.configure_loop_hooks(
        _BaseEventLoop.create_task, _BaseEventLoop.call_soon, _RealTask, Handle,
        TracedCoroutine, _CLEANUP_CODES, _NAMING_CALLER_CODES, _NAMED_AFTERWARDS,
    )


# (mypy sees PureLoopHooks' call_soon, whose signature is looser than the base's generic one)
class TracingEventLoop(RunsOnItsLoopLane, _LoopHooks, asyncio.SelectorEventLoop):  # type: ignore[misc]
    """An asyncio event loop whose tasks, waits and wake-ups are recorded."""

    def __init__(self, recorder: Recorder, guard: Guard | None = None) -> None:
        # The tracer must exist before the base class registers its self-pipe reader.
        self._tracer = tracer = LoopTracer(recorder, guard)
        selector = TracingSelector()
        selector.tracer = tracer
        super().__init__(selector)

    @property
    def tracer(self) -> LoopTracer:
        return self._tracer

    def time(self) -> float:
        # Time the stepping gate held the program is not program time: a sleep(1) still
        # waits one second of it, however long the run was paused (tracer.step_gate).
        return _monotonic() - self._tracer.recorder.paused_s

    # The timer and fd hooks below repeat their guard inline rather than share a helper:
    # a program doing I/O goes through them for every wait, where a call more shows.

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., Any], *args: Any, context: Context | None = None
    ) -> asyncio.TimerHandle:
        if delay is None:
            raise TypeError("delay must not be None")
        # the tracer sees the delay asked for, not one worked back from the deadline
        when = self.time() + delay
        if not self._tracer.detached:
            callback = self._tracer.timer_scheduled(delay, callback, args)
        return _BaseEventLoop.call_at(self, when, callback, *args, context=context)

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., Any], *args: Any, context: Context | None = None
    ) -> asyncio.TimerHandle:
        if not self._tracer.detached:
            callback = self._tracer.timer_scheduled(when - self.time(), callback, args)
        return super().call_at(when, callback, *args, context=context)

    _add_reader = _watching_fds(asyncio.SelectorEventLoop._add_reader, "read")  # type: ignore[attr-defined]
    _add_writer = _watching_fds(asyncio.SelectorEventLoop._add_writer, "write")  # type: ignore[attr-defined]


class _LooksLikeTask(type):
    """isinstance/issubclass against the stand-in answer as they would for the real Task."""

    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, _RealTask)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, _RealTask)


class TaskBuiltDirectly(_RealTask, metaclass=_LooksLikeTask):  # type: ignore[misc,valid-type]
    """Stands in for `asyncio.Task` while tracing, for code that builds Tasks itself.

    aiohttp on 3.12 and 3.13 runs each connection and request in
    `asyncio.Task(coro, loop=loop, eager_start=True)`, never calling create_task; without this
    its handlers would get no lanes. It returns a real Task around a traced coroutine.
    """

    def __new__(cls, coro: Any, *, loop: Any = None, **options: Any) -> Any:  # type: ignore[misc]
        target = loop if loop is not None else asyncio.events._get_running_loop()
        if (
            not isinstance(target, TracingEventLoop)
            or target.tracer.detached
            or type(coro) is not CoroutineType
        ):
            return _RealTask(coro, loop=loop, **options)
        try:
            proxy = TracedCoroutine(coro, target.tracer)
        except Exception as error:  # ours, not the program's: the task runs untraced
            target.tracer.detach(error)
            return _RealTask(coro, loop=loop, **options)
        name = options.get("name")
        if name is not None:  # for an eager start, as in create_task
            proxy._name = name = str(name)
        task = _RealTask(proxy, loop=loop, **options)
        target.tracer.task_created(proxy, task, name)
        return task
