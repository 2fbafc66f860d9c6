"""The recording half of the asyncio instrumentation: one LoopTracer per traced event loop.

The loop subclass (tracer.models._asyncio_loop) and the coroutine proxy call in here at the
moments that matter: a task is created, a step starts and ends, a future a task waits on is
completed, a timer or an fd callback is scheduled, the selector polls. This module turns those
into events; it never changes what the program does.

Failure policy: the instrumentation must never break the program. Any exception raised by the
recording code itself (not by the program) goes to the model's Guard (tracer.models.toolkit),
shared by every loop of the run: it is reported once on stderr and as a MARK on the loop lane,
every loop's tracer stops and the loop factories are put back, so from then on every hook only
forwards and new loops are plain, like a trio instrument that raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import weakref
from asyncio import futures, tasks
from collections.abc import Callable
from types import CodeType, CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any

from loopscope.tracer import naming
from loopscope.tracer.events import NO_DETAIL, NO_LANE, NO_SOURCE, Code, LaneKind, short_repr
from loopscope.tracer.models._asyncio_proxy import ProxyPassthroughs, TracedCoroutine
from loopscope.tracer.models._asyncio_waits import (
    LIBRARY_SIDE,
    awaiting_label,
    format_address,
    innermost_awaiter,
    peer_of,
    self_of,
    takes_self,
    transport_endpoint,
    transport_of,
    wait_mode,
    walk_await_chain,
)
from loopscope.tracer.models._program_files import ProgramFiles
from loopscope.tracer.models.toolkit import Guard
from loopscope.tracer.naming import as_written, request_label
from loopscope.tracer.recorder import SPEEDUPS, Recorder

LOOP_LANE_NAME = "asyncio loop"

_RUNNING = int(Code.RUNNING)
_READY = int(Code.READY)
_IO_WAIT = int(Code.IO_WAIT)
_SLEEPING = int(Code.SLEEPING)
_BLOCKED = int(Code.BLOCKED)
_WAKE = int(Code.WAKE)
_POLL = int(Code.POLL)
_DISPATCH = int(Code.DISPATCH)
_ANNOTATE = int(Code.ANNOTATE)
_EVENT_READ = selectors.EVENT_READ
_EVENT_WRITE = selectors.EVENT_WRITE

# what asyncio.sleep's timer calls
_TIMER_FIRES = futures._set_result_unless_cancelled  # type: ignore[attr-defined]
_GATHERING_FUTURE: type = tasks._GatheringFuture  # type: ignore[attr-defined]
_Task: type[asyncio.Task[Any]] = asyncio.Task
_Future: type = asyncio.Future

# A wait verdict for a function whose `self` leads to a transport: the wait is an fd wait.
_STREAM_READ = -1
_STREAM_WRITE = -2

# The tables the C proxy and tracer (tracer/_asyncio_core.c) read hold tuples of these fields,
# in this order; tracer/loopscope.h names the same indices (CAUSE_WAKER ...) and checks each
# row's size before reading it, so a row of the wrong shape is an error, not garbage.
#
# What is running the callback in progress: (waker lane, cause detail index, deadline_ns).
# A cause index of -1 stands for a timer whose detail is interned only if it wakes someone.
CAUSE_FIELDS = ("waker", "detail", "deadline_ns")
Cause = tuple[int, int, int]
# waiting[id(future)]: (future held weakly, lane, lane ...): the fields, then one item per
# waiting lane (see _held_weakly)
WAITERS_FIELDS = ("future",)
# The waiting table is swept of the futures that died waited on once it holds this many rows,
# and then at twice the rows a sweep leaves: each row is looked at once per row added.
SWEEP_WAITING_AT = 1024
# sleeps[id(future)]: (future, SLEEPING detail, deadline_ns) for asyncio.sleep's future, until a
# task waits on it
SLEEP_FIELDS = ("future", "detail", "deadline_ns")
# _verdicts_top/_inner[id(code)]: (code, verdict)
VERDICT_FIELDS = ("code", "verdict")
# _wait_calls[id(code)]: (code, side), the side a detail or one of _asyncio_waits' sides


# Library methods the program awaits on an object a library call returned, named by that
# call: from 3.13, as_completed() returns an _AsCompletedIterator, and each coroutine it hands
# out (`for next_done in as_completed(...)`) or awaits in __anext__ (`async for`) waits in
# its _wait_for_one.
_NAMED_BY_THE_CALL_THAT_MADE_THEM = {"_AsCompletedIterator._wait_for_one": "as_completed"}


def call_label(code: CodeType) -> str:
    """A library function the program called, as a wait names it: "Queue.join", and
    "as_completed" for the helper as_completed() made ("as_completed.<locals>._wait_for_one"
    on 3.11 and 3.12, "_AsCompletedIterator._wait_for_one" from 3.13)."""
    qualname = code.co_qualname
    named = _NAMED_BY_THE_CALL_THAT_MADE_THEM.get(qualname)
    return named if named is not None else qualname.partition(".<locals>")[0]


# _owner_details[key]: (weakref to the stream, IO_WAIT detail)
OWNER_FIELDS = ("stream", "detail")
# _code_lines[id(code)]: (code, {line: source index})
LINES_OF_FIELDS = ("code", "lines")


class LibraryLines(dict[int, int]):
    """The {line: source index} of a code object in a library file (LoopTracer.lines_of).

    A task whose own coroutine is library code (aiohttp's RequestHandler) takes each step's
    source from the innermost coroutine of the program's files it awaits, the handler's
    `await`: the C proxy tells the two apart by the dict's exact type, at no cost to the
    tasks that run the program's own coroutines.
    """

    __slots__ = ()


class PureTracerCore:
    """What the coroutine proxy reads on every step: the twin of _speedups.LoopTracerCore."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.detached = False
        self.ready_self = NO_DETAIL
        # the size of the waiting table at which it is swept next (LoopTracer.add_waiter)
        self._sweep_waiting_at = SWEEP_WAITING_AT


if TYPE_CHECKING or SPEEDUPS is None:  # noqa: SIM108  (mypy needs the statement form)
    _TracerCore = PureTracerCore
else:
    _TracerCore = SPEEDUPS.LoopTracerCore


class LoopTracer(_TracerCore):
    """Records one event loop's lanes and the states of the tasks it runs."""

    def __init__(self, recorder: Recorder, guard: Guard | None = None) -> None:
        super().__init__(recorder)
        self.record = recorder.record
        # the run's failure policy; a loop made outside traced_loops has one of its own
        self.guard = guard if guard is not None else Guard(recorder, "asyncio")
        # by a weak reference: a program may make and close many loops in one run
        stop = weakref.WeakMethod(self._stop)
        self.guard.on_detach(lambda: _call_if_alive(stop))
        # a program that runs asyncio.run() twice has two loops: the recorder numbers the
        # second lane "asyncio loop #2"
        self.loop_lane = recorder.spawn(LOOP_LANE_NAME, LaneKind.LOOP, parent=recorder.current)
        self.record(self.loop_lane, _DISPATCH)
        self.closed = False
        # set while a timer, fd or task-done callback runs, to say why things it completes woke
        self.cause: Cause | None = None
        # id(future) -> (future held weakly, lane, lane...): the lanes suspended on that future.
        # Untraced, a future nobody completes dies with the task waiting on it when the program
        # drops them; held here, both would live on (and "Task was destroyed but it is
        # pending!" would never be said).
        self.waiting: dict[int, tuple[Any, ...]] = {}
        # id(future) -> (future, SLEEPING detail, deadline_ns): futures asyncio.sleep's timers
        # will complete (SLEEP_FIELDS)
        self.sleeps: dict[int, tuple[Any, int, int]] = {}
        # id(future) -> its timer's deadline_ns: the sleeps lanes wait on now. asyncio.sleep's
        # timer runs unwrapped (no cause of its own): its wake-up's cause is made from there.
        self.sleeping: dict[int, int] = {}
        # id(future) -> (future, fd, mode, socket, address): futures fd readiness will complete
        self.io_futures: dict[int, tuple[Any, int, str, Any, Any]] = {}
        # id(code) -> (code, {line: source index}); by id for the reason _verdicts_top is
        self._code_lines: dict[int, tuple[CodeType, dict[int, int]]] = {}
        self._is_program = ProgramFiles()
        # id(code) -> (code, verdict) of the functions tasks wait in. Keyed by id because
        # hashing a code object walks its bytecode (3.12+); holding the code keeps the id.
        self._verdicts_top: dict[int, tuple[CodeType, int]] = {}
        self._verdicts_inner: dict[int, tuple[CodeType, int]] = {}
        # id(code) -> (code, side) of each function in the await chains of blocked waits:
        # PROGRAM_SIDE, LIBRARY_SIDE, or the BLOCKED detail naming that library function (made
        # once it is the call a wait is named by). Rows as VERDICT_FIELDS.
        self._wait_calls: dict[int, tuple[CodeType, int]] = {}
        self._fd_causes: dict[tuple[int, str], int] = {}
        self._peers: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._transport_details: weakref.WeakKeyDictionary[Any, dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )
        # id(stream) * 2 + (1 for a write wait) -> (weakref to the stream, IO_WAIT detail)
        self._owner_details: dict[int, tuple[weakref.ref[Any], int]] = {}
        # the types of the futures the C proxy and tracer judge themselves (others go to
        # step_waits and pure_callback_scheduled)
        self._plain_future: type = _Future
        self._gathering_future: type = _GATHERING_FUTURE
        self._plain_task: type = _Task
        # what asyncio.sleep's timer calls: a timer that gets a SLEEPING detail
        self._timer_fires: Callable[..., Any] = _TIMER_FIRES
        # what the C spawn of a task lane keeps: qualname -> spawn base (Recorder.spawn_base),
        # and the qualnames whose lanes are named by the request they serve (Python does)
        self._spawn_bases: dict[str, int] = {}
        self._named_by_request: dict[str, str] = dict(naming._REQUEST_ARGUMENTS)
        detail = recorder.detail
        self.ready_self = detail(("cause", "self"))
        self.ready_spawn = detail(("cause", "spawn"))
        self.cause_future = detail(("cause", "future"))
        self.cause_task = detail(("cause", "task"))
        # what Recorder.end records for a coroutine that returned None, the usual end
        self.end_none = detail(("result", short_repr(None)))
        self.cause_callback = detail(("cause", "callback"))
        self.on_gather = detail(("on", "gather"))
        # the details of the last poll's timeout and of a poll that found nothing ready,
        # interned at first use (-1.0 is a timeout no loop passes)
        self._poll_timeout: float | None = -1.0
        self._poll_detail = NO_DETAIL
        self._nothing_ready = NO_DETAIL

    # -- lanes --------------------------------------------------------------------------

    def lines_of(self, code: CodeType) -> dict[int, int]:
        known = self._code_lines.get(id(code))
        if known is not None and known[0] is code:
            return known[1]
        lines: dict[int, int] = {} if self._is_program(code.co_filename) else LibraryLines()
        self._code_lines[id(code)] = (code, lines)
        return lines

    def program_source(self, coro: Any) -> int:
        """For a task whose coroutine is library code: the source index of the line the
        innermost coroutine of the program's files in its await chain is suspended at,
        NO_SOURCE when there is none (the twin of _asyncio_core.c's proxy_program_source)."""
        found: tuple[Any, dict[int, int]] | None = None
        awaitable = coro
        while True:
            if isinstance(awaitable, CoroutineType):
                code, frame, awaited = awaitable.cr_code, awaitable.cr_frame, awaitable.cr_await
            elif isinstance(awaitable, GeneratorType):
                code, frame, awaited = (awaitable.gi_code, awaitable.gi_frame,
                                        awaitable.gi_yieldfrom)
            else:
                break
            if awaitable is not coro:
                lines = self.lines_of(code)
                if type(lines) is dict:
                    found = (frame, lines)
            awaitable = awaited
        if found is None or found[0] is None:
            return NO_SOURCE
        frame, lines = found
        line = frame.f_lineno
        source = lines.get(line)
        if source is None:
            source = lines[line] = self.recorder.source_of(frame.f_code, line)
        return source

    def pure_task_created(
        self, proxy: ProxyPassthroughs, task: asyncio.Task[Any], name: str | None
    ) -> None:
        if proxy._lane != NO_LANE:  # an eager task already ran its first step
            return
        try:
            self._spawn(proxy, name, task.get_name())
        except Exception as exc:
            self.detach(exc)

    if TYPE_CHECKING or SPEEDUPS is None:
        task_created = pure_task_created

    def _task_spawn_base(self, qualname: str) -> int:
        """The spawn base of the lanes of tasks running `qualname` (the C spawn's cache)."""
        base = self._spawn_bases[qualname] = self.recorder.spawn_base(
            LaneKind.TASK, ("coro", qualname))
        return base

    def _spawn(self, proxy: ProxyPassthroughs, given_name: str | None, task_name: str) -> None:
        """A lane for the task: the program's name for it, else "<coroutine> (Task-N)"."""
        recorder = self.recorder
        # the coroutine's own __qualname__: a decorator's functools.wraps has set it to the
        # name of the function it wraps, where the code's is the wrapper's
        qualname = proxy._coro.__qualname__
        # "GET /hello/alice", or the coroutine's name as written ("fetch", not
        # "main.<locals>.fetch"; the C spawn drops the same prefix)
        label = request_label(proxy._coro, qualname) or as_written(qualname)
        name = given_name if given_name is not None else f"{label} ({task_name})"
        creator = self.recorder.current
        if creator == NO_LANE:
            creator = self.loop_lane
        lane = recorder.spawn(name, LaneKind.TASK, parent=creator, extra=("coro", qualname))
        proxy._lane = lane
        proxy._name = name
        # made ready as it is made: at its SPAWN's instant (the C spawn's twin)
        recorder.record_same_instant(lane, _READY, creator, self.ready_spawn)

    # -- task steps (called by TracedCoroutine) -------------------------------------------

    def spawn_eager(self, proxy: ProxyPassthroughs) -> int:
        """The lane of an eager task, spawned by its first step, which runs inside the Task
        constructor before create_task has the task: named as create_task would name it,
        by the name the program gave (which create_task keeps in the proxy's name until the
        lane is spawned) or after the task's own ("Task-N"), the task being asyncio's
        current task while that step runs; "eager" stands in when it is not to be found."""
        given = proxy._name or None
        task_name = "eager"
        try:
            task = tasks.current_task()
        except RuntimeError:  # no running loop: a step run by something else than a loop
            task = None
        if task is not None and task.get_coro() is proxy:
            task_name = task.get_name()
        self._spawn(proxy, given, task_name)
        return proxy._lane

    def step_started(self, proxy: ProxyPassthroughs) -> int:
        """Records RUNNING at the line the coroutine resumes at; returns the lane it interrupts.

        The slow path, for throw(); send() inlines the same.
        """
        recorder = self.recorder
        outer = recorder.current
        try:
            lane = proxy._lane
            eager = lane == NO_LANE  # its first step runs as it is made: at its SPAWN's instant
            if eager:
                lane = self.spawn_eager(proxy)
            record = recorder.record_same_instant if eager else self.record
            record(lane, _RUNNING, NO_LANE, NO_DETAIL, self.resume_source(proxy))
            recorder.current = lane
        except Exception as exc:
            self.detach(exc)
        return outer

    def resume_source(self, proxy: ProxyPassthroughs) -> int:
        """The source index of the line `proxy`'s coroutine resumes at: for library code, its
        program's innermost line (LibraryLines); cached per code object and line."""
        lines = proxy._lines
        source = NO_SOURCE if type(lines) is dict else self.program_source(proxy._coro)
        frame = proxy._coro.cr_frame
        if frame is not None and not source:
            line = frame.f_lineno
            source = lines.get(line, -1)
            if source < 0:
                source = lines[line] = self.recorder.source_of(frame.f_code, line)
        return source

    def step_yielded(self, proxy: ProxyPassthroughs, outer: int, result: Any) -> None:
        if self.detached:
            return
        try:
            self.recorder.current = outer
            lane = proxy._lane
            if result is None:
                self.record(lane, _READY, lane, self.ready_self)
            else:
                self.step_waits(proxy, lane, result)
        except Exception as exc:
            self.detach(exc)

    def step_returned(self, proxy: ProxyPassthroughs, outer: int, value: Any) -> None:
        """The step finished the coroutine with `value` (the C proxy's way to say so)."""
        self._ended(proxy, outer, value, None)

    def step_ended(self, proxy: ProxyPassthroughs, outer: int, exc: BaseException) -> None:
        """The step raised `exc`: StopIteration is the coroutine returning."""
        if type(exc) is StopIteration:
            self._ended(proxy, outer, exc.value, None)
        else:
            self._ended(proxy, outer, None, exc)

    def _ended(self, proxy: ProxyPassthroughs, outer: int, value: Any,
               error: BaseException | None) -> None:
        if self.detached:
            return
        try:
            self.recorder.current = outer
            self.recorder.end(proxy._lane, result=value, error=error)
        except Exception as failure:
            self.detach(failure)

    def in_step(self) -> int:
        """The lane whose step is running, or NO_LANE while the loop runs its own callbacks."""
        current = self.recorder.current
        return NO_LANE if current == self.loop_lane else current

    # -- waits ----------------------------------------------------------------------------

    def step_waits(self, proxy: ProxyPassthroughs, lane: int, future: Any) -> None:
        """The step yielded a future: record what the lane now waits for, and remember it."""
        key = id(future)
        sleep = self.sleeps.pop(key, None)
        if sleep is not None:
            self.sleeping[key] = sleep[2]
            self.record(lane, _SLEEPING, NO_LANE, sleep[1])
            self.add_waiter(key, future, lane, timer_holds_it=True)
            return
        io = self.io_futures.pop(key, None)
        if io is not None:
            self.record(lane, _IO_WAIT, NO_LANE, self._socket_wait_detail(io))
        elif isinstance(future, _Task):
            other = lane_of_task(future)
            on = f"task {lane_name_of_task(future)}"
            self.record(lane, _BLOCKED, other, self.recorder.detail(("on", on)))
        elif type(future) is _GATHERING_FUTURE:
            self.record(lane, _BLOCKED, NO_LANE, self.on_gather)
        else:
            self._record_awaiter_wait(proxy, lane)
        self.add_waiter(key, future, lane)

    def add_waiter(self, key: int, future: Any, lane: int, timer_holds_it: bool = False) -> None:
        """waiting[id(future)] gains `lane` (the twin of _asyncio_core.c's proxy_add_waiter).
        asyncio.sleep's future, which its timer holds until the wait ends anyway, is held
        itself: a weak reference would cost the wait an object and change nothing."""
        waiting = self.waiting
        waiters = waiting.get(key)
        if waiters is not None and held_future(waiters[0]) is future:
            waiting[key] = (*waiters, lane)
            return
        # a new row, or one left by a future that died waited on, whose id is reused
        if len(waiting) >= self._sweep_waiting_at:
            self.sweep_waiting()
        waiting[key] = (future if timer_holds_it else _held_weakly(future), lane)

    def pure_sweep_waiting(self) -> None:
        """Forgets the rows of the futures that died while lanes waited on them (the program
        dropped them and their waiters), and sets the table's size at its next sweep (the
        twin of _asyncio_core.c's tracer_sweep_waiting)."""
        waiting = self.waiting
        for key in [key for key, waiters in waiting.items() if held_future(waiters[0]) is None]:
            del waiting[key]
        self._sweep_waiting_at = max(SWEEP_WAITING_AT, 2 * len(waiting))

    if TYPE_CHECKING or SPEEDUPS is None:
        sweep_waiting = pure_sweep_waiting

    def _record_awaiter_wait(self, proxy: ProxyPassthroughs, lane: int) -> None:
        """A wait on a future nobody told us about: judge it by the function that awaits it."""
        code, frame, is_top = innermost_awaiter(proxy._coro)
        verdicts = self._verdicts_top if is_top else self._verdicts_inner
        known_verdict = verdicts.get(id(code))
        if known_verdict is not None and known_verdict[0] is code:
            verdict = known_verdict[1]
        else:
            verdict = self._judge(code, frame, is_top)
            verdicts[id(code)] = (code, verdict)
        if verdict >= 0:
            if not is_top:
                verdict = self._program_call_detail(proxy._coro, verdict)
            self.record(lane, _BLOCKED, NO_LANE, verdict)
            return
        owner = self_of(frame)
        # A stream's transport does not change, so its wait detail is looked up once per
        # stream and mode: finding the transport is most of the cost of a wait.
        key = id(owner) * 2 + (verdict == _STREAM_WRITE)  # the C proxy makes the same key
        known = self._owner_details.get(key)
        if known is not None and known[0]() is owner:
            self.record(lane, _IO_WAIT, NO_LANE, known[1])
            return
        transport = transport_of(owner)
        detail = None
        if transport is not None:
            mode = "read" if verdict == _STREAM_READ else "write"
            detail = self._transport_detail(transport, mode)
        if detail is None:  # the transport closed under us: say what is awaited instead
            blocked_on = self._blocked_on(code, is_top)
            if not is_top:
                blocked_on = self._program_call_detail(proxy._coro, blocked_on)
            self.record(lane, _BLOCKED, NO_LANE, blocked_on)
            return
        self._remember_owner(key, owner, detail)
        self.record(lane, _IO_WAIT, NO_LANE, detail)

    def _program_call_detail(self, coro: Any, innermost_detail: int) -> int:
        """How a blocked wait is named: by the library function the program called, the one
        below the program's innermost coroutine in the await chain (`await queue.join()` is
        "Queue.join", not the "Event.wait" it awaits inside; `async with lock` is
        "Lock.acquire", past the lock's `__aenter__`), else by the innermost function
        (`innermost_detail`): a library task's, or the program's own awaiting a future."""
        _, entry = walk_await_chain(coro, self._wait_calls, self._is_program)
        if entry is None:
            return innermost_detail
        code, side = entry
        if side == LIBRARY_SIDE:  # first named by now
            side = self.recorder.detail(("on", call_label(code)))
            self._wait_calls[id(code)] = (code, side)
        return side

    def _remember_owner(self, key: int, owner: object, detail: int) -> None:
        owner_details = self._owner_details

        def forget(_: object) -> None:
            owner_details.pop(key, None)

        # an owner that is not weakly referenceable is looked up every time
        with contextlib.suppress(TypeError):
            self._owner_details[key] = (weakref.ref(owner, forget), detail)

    def _judge(self, code: CodeType, frame: Any, is_top: bool) -> int:
        if takes_self(code) and transport_of(self_of(frame)) is not None:
            return _STREAM_WRITE if wait_mode(code) == "write" else _STREAM_READ
        return self._blocked_on(code, is_top)

    def _blocked_on(self, code: CodeType, is_top: bool) -> int:
        return self.recorder.detail(("on", "future" if is_top else awaiting_label(code)))

    def _transport_detail(self, transport: Any, mode: str) -> int | None:
        known = self._transport_details.get(transport)
        if known is None:
            known = self._transport_details[transport] = {}
        detail = known.get(mode)
        if detail is None:
            endpoint = transport_endpoint(transport)
            if endpoint is None:
                return None
            fd, peer = endpoint
            detail = known[mode] = self._fd_detail(fd, mode, peer)
        return detail

    def _socket_wait_detail(self, io: tuple[Any, int, str, Any, Any]) -> int:
        _, fd, mode, sock, address = io
        peer = None
        if sock is not None:
            peer = self._peers.get(sock)
            if peer is None:
                peer = peer_of(sock)
                if peer is not None:
                    self._peers[sock] = peer
                else:
                    peer = format_address(address)
        return self._fd_detail(fd, mode, peer)

    def _fd_detail(self, fd: int, mode: str, peer: str | None) -> int:
        if peer is None:
            return self.recorder.detail(("fd", fd, "mode", mode))
        return self.recorder.detail(("fd", fd, "mode", mode, "peer", peer))

    # -- wake-ups (called by the loop's call_soon) ------------------------------------------

    def pure_callback_scheduled(
        self, callback: Callable[..., Any], first: Any
    ) -> Callable[..., Any]:
        """A callback is scheduled with `first` as its argument: a future completing, maybe.

        Returns the callback to schedule (wrapped when it runs on behalf of a finished task).
        The C base's callback_scheduled handles plain futures itself and calls this for the
        rest.
        """
        try:
            waiters = self.waiting.get(id(first))
            if waiters is not None and held_future(waiters[0]) is first and first.done():
                del self.waiting[id(first)]
                self._wake(first, waiters)
            if isinstance(first, _Task) and first.done():
                lane = lane_of_task(first)
                if lane != NO_LANE:
                    return self.with_cause(callback, (lane, self.cause_task, 0))
        except Exception as exc:
            self.detach(exc)
        return callback

    def _wake(self, future: Any, waiters: tuple[Any, ...]) -> None:
        # the deadline of the sleep that ends, if it is asyncio.sleep's
        slept = self.sleeping.pop(id(future), None) if self.sleeping else None
        cancelled = future.cancelled()
        finished = lane_of_task(future) if isinstance(future, _Task) else NO_LANE
        if finished != NO_LANE:
            waker, cause = finished, self.cause_task
        elif (running := self.in_step()) != NO_LANE:
            waker, cause = running, self.cause_future
        elif self.cause is not None:
            waker, cause, deadline_ns = self.cause
            if cause < 0:
                cause = self._timer_cause(deadline_ns)
        elif slept is not None and not cancelled:  # asyncio.sleep's own timer ran out
            waker = self.loop_lane
            cause = self._deadline_row("cause", "timer", slept)
        else:
            waker, cause = self.loop_lane, self.cause_callback
        if cancelled:
            cause = self.cancel_cause(cause)
        record = self.record
        for lane in waiters[1:]:
            record(lane, _WAKE, waker, cause)
            record(lane, _READY, waker, cause)

    def _timer_cause(self, deadline_ns: int) -> int:
        return self.recorder.detail(("cause", "timer", "deadline_ns", deadline_ns))

    def _deadline_row(self, key: str, value: object, deadline_ns: int) -> int:
        """{key: value, "deadline_ns": deadline_ns} as a value row (tracer.values): a shared
        interned base naming "deadline_ns" as its "int_key", plus the deadline in decimal. A
        sleep's detail and its timer's wake cause hold a deadline no other event has, so they
        cost no detail row of their own (the C base's deadline_row records the same)."""
        recorder = self.recorder
        return recorder.value_row(recorder.detail((key, value, "int_key", "deadline_ns")),
                                  str(deadline_ns))

    def cancel_cause(self, cause: int) -> int:
        """The wake cause `cause` as a cancellation: the future the lane waited on was
        cancelled (by task.cancel() in another lane, or by a timeout's timer)."""
        return self.recorder.detail((*self.recorder.detail_row(cause), "cancel", True))

    if TYPE_CHECKING or SPEEDUPS is None:
        callback_scheduled = pure_callback_scheduled

    def pure_with_cause(self, callback: Callable[..., Any], cause: Cause) -> Callable[..., Any]:
        """The callback, run with `cause` as the reason for whatever it completes."""

        def run_with_cause(*args: Any) -> Any:
            outer = self.cause
            self.cause = cause
            try:
                return callback(*args)
            finally:
                self.cause = outer

        run_with_cause.__qualname__ = getattr(callback, "__qualname__", "callback")
        return run_with_cause

    def with_cause(self, callback: Callable[..., Any], cause: Cause) -> Callable[..., Any]:
        """The callback, run with `cause` as the reason for whatever it completes."""
        if SPEEDUPS is None:
            return self.pure_with_cause(callback, cause)
        caused: Callable[..., Any] = SPEEDUPS.CausedCallback(self, callback, cause)
        return caused

    # -- timers and fds (called by the loop's call_at/call_later and _add_reader/_add_writer)

    def pure_timer_scheduled(
        self, delay: float, callback: Callable[..., Any], args: tuple[Any, ...]
    ) -> Callable[..., Any]:
        """The callback to schedule for a timer due in `delay` s, run with the timer as the
        cause of what it completes; asyncio.sleep's timer also leaves its SLEEPING detail
        for the wait on its future (the C base has its own, recording the same)."""
        try:
            recorder = self.recorder
            deadline_ns = recorder.clock() - recorder.origin + round(delay * 1e9)
            if callback is self._timer_fires and args:
                # a value row: its deadline makes it unique
                sleep = self._deadline_row("delay_s", round(delay, 6), deadline_ns)
                self.sleeps[id(args[0])] = (args[0], sleep, deadline_ns)
                # runs as it is, without a wrapper and a cause per sleep: the wake-up's cause
                # is made from the deadline the wait leaves in self.sleeping
                return callback
            return self.with_cause(callback, (self.loop_lane, -1, deadline_ns))
        except Exception as exc:
            self.detach(exc)
            return callback

    if TYPE_CHECKING or SPEEDUPS is None:
        timer_scheduled = pure_timer_scheduled

    def fd_watched(
        self, fd: Any, mode: str, callback: Callable[..., Any], args: tuple[Any, ...]
    ) -> Callable[..., Any]:
        try:
            fileno = fd if isinstance(fd, int) else fd.fileno()
            if args and isinstance(args[0], _Future):
                # sock_recv, sock_accept, sock_sendall...: (future, sock, ...) the callback
                # completes; sock_connect's third argument is the address being connected to
                address = args[2] if len(args) > 2 and isinstance(args[2], tuple) else None
                # (loop.sock_sendfile passes the fd itself there, which cannot be a weak key)
                sock = args[1] if len(args) > 1 and not isinstance(args[1], int) else None
                self.io_futures[id(args[0])] = (args[0], fileno, mode, sock, address)
            key = (fileno, mode)
            cause = self._fd_causes.get(key)
            if cause is None:
                cause = self._fd_causes[key] = self.recorder.detail(
                    ("cause", "fd", "fd", fileno, "mode", mode)
                )
            return self.with_cause(callback, (self.loop_lane, cause, 0))
        except Exception as exc:
            self.detach(exc)
            return callback

    # -- the loop lane ----------------------------------------------------------------------

    def pure_poll_started(self, timeout: float | None) -> None:
        try:
            # A busy loop polls with the same timeout (0) over and over: reuse its detail.
            if timeout != self._poll_timeout:
                self._poll_timeout = timeout
                self._poll_detail = self._poll_timeout_detail(timeout)
            self.record(self.loop_lane, _POLL, NO_LANE, self._poll_detail)
        except Exception as exc:
            self.detach(exc)

    def _poll_timeout_detail(self, timeout: float | None) -> int:
        shown = None if timeout is None else round(timeout, 4)
        return self.recorder.detail(("timeout_s", shown))

    def before_blocking(self) -> None:
        """The poll is about to block: let live views see everything up to the wait."""
        try:
            self.recorder.flush()
        except Exception as exc:
            self.detach(exc)

    def pure_poll_returned(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        if self.detached:
            return
        try:
            if ready:
                readable: list[int] = []
                writable: list[int] = []
                for key, mask in ready:
                    if mask & _EVENT_READ:
                        readable.append(key.fd)
                    if mask & _EVENT_WRITE:
                        writable.append(key.fd)
                detail = self.recorder.detail(
                    ("readable", tuple(readable), "writable", tuple(writable))
                )
            else:
                detail = self._nothing_ready
                if detail == NO_DETAIL:
                    detail = self._nothing_ready = self.recorder.detail(
                        ("readable", (), "writable", ())
                    )
            lane = self.loop_lane
            self.record(lane, _ANNOTATE, NO_LANE, detail)
            self.record(lane, _DISPATCH)
        except Exception as exc:
            self.detach(exc)

    # the C base (tracer._speedups.LoopTracerCore) has its own, recording the same events
    if TYPE_CHECKING or SPEEDUPS is None:
        poll_started = pure_poll_started
        poll_returned = pure_poll_returned

    def loop_closed(self) -> None:
        if self.detached or self.closed:
            return
        self.closed = True
        try:
            # A bare word, not a value's repr: the loop returns nothing, it is closed.
            self.recorder.record(self.loop_lane, Code.END, NO_LANE,
                                 self.recorder.detail(("result", "closed")))
        except Exception as exc:
            self.detach(exc)

    # -- the failure policy -----------------------------------------------------------------

    def detach(self, error: BaseException) -> None:
        """An internal error: the guard stops every loop's tracing for good, saying so once
        (on this loop's lane)."""
        if not self.detached:
            self.guard.fail(error, self.loop_lane)

    def _stop(self) -> None:
        """What the guard undoes for this loop: every hook only forwards from now on."""
        self.detached = True
        self.waiting.clear()
        self.sleeps.clear()
        self.sleeping.clear()
        self.io_futures.clear()
        self.cause = None


def _held_weakly(future: Any) -> Any:
    """How the waiting table holds a future: by a weak reference, so that the program's
    futures and the tasks waiting on them live as long as they would untraced; an object
    that cannot be weakly referenced (a future-like of the program's with __slots__) is held
    itself, as it always was."""
    try:
        return weakref.ref(future)
    except TypeError:
        return future


def held_future(held: Any) -> Any:
    """The future a waiting row holds (see _held_weakly); None when it has died."""
    return held() if type(held) is weakref.ref else held


def _call_if_alive(method: weakref.WeakMethod[Callable[[], None]]) -> None:
    bound = method()
    if bound is not None:
        bound()


def lane_of_task(task: Any) -> int:
    """The lane of a traced task, or NO_LANE for a task we did not wrap."""
    coro = task.get_coro()
    return coro._lane if type(coro) is TracedCoroutine else NO_LANE


def lane_name_of_task(task: Any) -> str:
    coro = task.get_coro()
    if type(coro) is TracedCoroutine:
        return coro._name
    return str(task.get_name())
