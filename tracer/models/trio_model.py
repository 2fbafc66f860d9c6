"""trio: every `trio.run` gets an instrument (trio's public `trio.abc.Instrument` API).

Each run is a loop lane ("trio run") that is in `poll` while trio waits for I/O or a deadline
(`before_io_wait` .. `after_io_wait`) and in `dispatch` otherwise; each task is a lane of kind
"task", spawned by the task whose nursery it runs in. A task step is `running` at the program
line it resumes at. After a step the task waits: its await chain (tracer.models._trio_waits)
says for what: `io-wait` on an fd, `sleeping` until a deadline or `blocked` on the trio call it
is in (an Event, a channel, its nursery). When trio reschedules it, the wake arrow comes from
the task that was running (cause `future`, or `task` when that task has just ended) or, between
steps, from the loop lane (cause `fd`, `timer` or `callback`, from what the task waited for).

trio's own tasks (`<init>` and the system tasks under it) get no lanes. anyio programs on the
trio backend reach `trio.run` too, and are traced the same way. The run's clock stops while a
stepping gate holds the program (tracer.step_gate), unless the program brought its own clock.

"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import trio

from loopscope.tracer.events import NO_LANE, Code, Detail, LaneKind
from loopscope.tracer.models._trio_waits import resume_frame, wait_of
from loopscope.tracer.models.handoffs import HandoffLanes, ProgramCode
from loopscope.tracer.models.toolkit import Guard, instrumented
from loopscope.tracer.naming import as_written
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder

LOOP_LANE_NAME = "trio run"
_MAX_TIMEOUT_S = 86400.0
_ENDED: Detail = ("result", "dead")  # narrated "... ends"
# trio's library coroutines that only run the program's function they are given: their task
# is named after that function (one echo handler per connection, not "_run_handler").
_HANDLER_RUNNERS = frozenset({"_run_handler"})


def _guarded(method: str) -> Callable[..., None]:
    """A trio hook that runs `method` of the instrument under its guard. The method is looked
    up when the hook runs, so it can be replaced on the class (the broken-model tests do)."""

    def hook(self: TrioInstrument, *args: Any) -> None:
        if self.guard.detached:
            return
        try:
            getattr(self, method)(*args)
        except Exception as error:
            self.guard.fail(error, self.loop_lane)

    hook.__name__ = hook.__qualname__ = method[1:]
    return hook


class TrioInstrument(trio.abc.Instrument):
    """Records one trio run. Every hook is under the model's guard, so trio never sees one
    raise (it would log the error and drop the instrument without marking the trace)."""

    def __init__(self, recorder: Recorder, guard: Guard, is_program: ProgramCode,
                 lanes: HandoffLanes, current_time: Callable[[], float]) -> None:
        self.recorder = recorder
        self.guard = guard
        self.is_program = is_program
        self.handoff_lanes = lanes
        self.current_time = current_time
        self.loop_lane = NO_LANE
        self.lanes: dict[Any, int] = {}  # trio Task -> lane
        self.waits: dict[int, Detail] = {}  # lane -> the wake cause of its fd or timer wait
        self.blocked_on: dict[int, str] = {}  # lane -> the trio call it is blocked in
        self.unstarted: dict[int, int] = {}  # lane not yet stepped -> its parent lane
        self.first_sources: dict[int, int] = {}  # lane -> where its program function starts
        self.running: Any = None  # the task in its step, if any
        self.polling = False  # the loop lane is in POLL
        self.rescheduled_itself = False
        self._root: Any = None  # trio's <init> task: its children but the first are trio's
        self._root_children = 0

    # -- the hooks trio calls: each runs the method of the same name with a leading "_" --

    before_run = _guarded("_before_run")
    after_run = _guarded("_after_run")
    task_spawned = _guarded("_task_spawned")
    task_scheduled = _guarded("_task_scheduled")
    before_task_step = _guarded("_before_task_step")
    after_task_step = _guarded("_after_task_step")
    task_exited = _guarded("_task_exited")
    before_io_wait = _guarded("_before_io_wait")
    after_io_wait = _guarded("_after_io_wait")

    # -- what each hook records ------------------------------------------------------------

    def _before_run(self) -> None:
        recorder = self.recorder
        name = self.handoff_lanes.unique_name(LOOP_LANE_NAME)
        self.loop_lane = self.handoff_lanes.spawn(name, LaneKind.LOOP, NO_LANE, 0)
        recorder.state(self.loop_lane, Code.DISPATCH)
        recorder.current = self.loop_lane

    def _after_run(self) -> None:
        self.recorder.end(self.loop_lane)
        self.recorder.current = NO_LANE

    def _task_spawned(self, task: Any) -> None:
        nursery = task.parent_nursery
        if nursery is None:
            self._root = task  # <init>
            return
        parent_task = nursery.parent_task
        if parent_task is self._root:
            self._root_children += 1
            if self._root_children > 1:
                return  # a system task: <init>'s first child is the program's main task
        parent = self.lanes.get(parent_task, self.loop_lane)
        code = self._program_code(task.coro)
        source = self.recorder.source_of(code, code.co_firstlineno) if code is not None else 0
        name = self.handoff_lanes.unique_name(self._task_name(task, code))
        extra = ("coro", code.co_name) if code is not None else ()
        lane = self.handoff_lanes.spawn(name, LaneKind.TASK, parent, source, extra)
        self.lanes[task] = lane
        self.unstarted[lane] = parent
        self.first_sources[lane] = source

    def _program_code(self, coro: Any) -> Any:
        """The code of the program's coroutine a task runs: its own; for a library wrapper
        (anyio's task handle, trio's connection handler runner), the program's coroutine or
        function it runs; else the library coroutine's own."""
        code = getattr(coro, "cr_code", None)
        frame = getattr(coro, "cr_frame", None)
        if code is None or self.is_program(code) or frame is None:
            return code
        for value in _with_attributes(frame.f_locals.values()):
            inner = getattr(value, "cr_code", None)  # a coroutine object it will run
            if inner is None and code.co_name in _HANDLER_RUNNERS:
                inner = getattr(value, "__code__", None)
            if inner is not None and self.is_program(inner):
                return inner
        return code

    def _task_name(self, task: Any, code: Any) -> str:
        """The task's name as given ("client-1"); a name trio or anyio made up from a
        function's dotted path ("__main__.hello", "trio.serve_tcp") becomes the function's
        own (for a wrapper, the program's function it runs), without what it is nested in."""
        name = str(task.name)
        if code is not None and "." in name:
            name = as_written(str(code.co_qualname))
        return name

    def _task_scheduled(self, task: Any) -> None:
        lane = self.lanes.get(task)
        if lane is None:
            return
        recorder = self.recorder
        parent = self.unstarted.get(lane)
        if parent is not None:
            recorder.state(lane, Code.READY, ("cause", "spawn"), other=parent)
            return
        running = self.running
        if running is task:
            self.rescheduled_itself = True  # its READY follows when its step ends
            return
        timed_or_io = self.waits.pop(lane, None)
        blocked_on = self.blocked_on.pop(lane, None)
        waker = self.lanes.get(running, NO_LANE) if running is not None else NO_LANE
        cause: Detail
        if waker != NO_LANE:
            if getattr(running.coro, "cr_frame", None) is None:
                # trio wakes the nursery's owner before it reports the exit: end it first
                self._task_exited(running)
                cause = ("cause", "task")
            elif blocked_on is not None:
                cause = ("cause", "blocked", "on", blocked_on)
            else:
                # Only a cancellation lets a task end another's fd wait or sleep early.
                cause = ("cause", "cancel")
        else:
            # trio hands the poll's results out before after_io_wait: the poll is over now
            self._poll_over()
            waker = self.loop_lane
            cause = timed_or_io if timed_or_io is not None else ("cause", "callback")
        recorder.wake(lane, waker, cause)

    def _before_task_step(self, task: Any) -> None:
        self.running = task
        self.rescheduled_itself = False
        lane = self.lanes.get(task)
        recorder = self.recorder
        if lane is None:
            recorder.current = self.loop_lane
            return
        self.unstarted.pop(lane, None)
        frame = resume_frame(task.coro, self.is_program)
        if frame is not None:
            source = recorder.source_of(frame.f_code, frame.f_lineno)
        else:  # a wrapper that has not called the program's function yet: where it starts
            source = self.first_sources.pop(lane, 0)
        recorder.state(lane, Code.RUNNING, source=source)
        recorder.current = lane

    def _after_task_step(self, task: Any) -> None:
        self.running = None
        recorder = self.recorder
        recorder.current = self.loop_lane
        lane = self.lanes.get(task)
        if lane is None or getattr(task.coro, "cr_frame", None) is None:
            return  # trio's own task, or one that has just ended (task_exited said so)
        if self.rescheduled_itself:
            recorder.state(lane, Code.READY, ("cause", "self"), other=lane)
            return
        wait = wait_of(task.coro, self.is_program)
        if wait.kind == "io":
            detail: Detail = ("fd", wait.fd, "mode", wait.mode)
            if wait.peer is not None:
                detail += ("peer", wait.peer)
            recorder.state(lane, Code.IO_WAIT, detail)
            self.waits[lane] = ("cause", "fd", "fd", wait.fd, "mode", wait.mode)
        elif wait.kind == "sleep":
            now_ns = recorder.clock() - recorder.origin
            left_s = max(0.0, wait.deadline - self.current_time())
            deadline_ns = now_ns + int(left_s * 1e9)
            # the sleep reads as the program asked for it; the deadline is when it really ends
            delay_s = left_s if wait.seconds is None else wait.seconds
            recorder.state(lane, Code.SLEEPING, ("delay_s", delay_s, "deadline_ns", deadline_ns))
            self.waits[lane] = ("cause", "timer", "deadline_ns", deadline_ns)
        else:
            recorder.state(lane, Code.BLOCKED, ("on", wait.on))
            self.blocked_on[lane] = wait.on

    def _task_exited(self, task: Any) -> None:
        lane = self.lanes.pop(task, None)
        if lane is None:
            return
        self.waits.pop(lane, None)
        self.blocked_on.pop(lane, None)
        self.unstarted.pop(lane, None)
        self.first_sources.pop(lane, None)
        # trio keeps a task's outcome to itself (its nursery gets it): the lane just ends
        self.recorder.record(lane, Code.END, NO_LANE, self.recorder.detail(_ENDED))

    def _before_io_wait(self, timeout: float) -> None:
        recorder = self.recorder
        # trio waits at most a day at a time; with nothing due, that is "forever"
        timeout_s = None if timeout >= _MAX_TIMEOUT_S else float(timeout)
        recorder.state(self.loop_lane, Code.POLL, ("timeout_s", timeout_s))
        self.polling = True
        recorder.current = self.loop_lane
        if timeout > 0:
            recorder.flush()  # the program is about to block: a live view sees everything

    def _after_io_wait(self, timeout: float) -> None:
        self._poll_over()

    def _poll_over(self) -> None:
        if self.polling:
            self.polling = False
            self.recorder.state(self.loop_lane, Code.DISPATCH)


def _with_attributes(values: Iterable[Any]) -> Iterator[Any]:
    """The values, each followed by its own attributes (a wrapper such as anyio's task handle
    keeps the program's coroutine in one)."""
    for value in values:
        yield value
        if isinstance(value, type):
            continue
        names = list(getattr(value, "__dict__", {}))
        for cls in type(value).__mro__:
            slots = cls.__dict__.get("__slots__", ())
            names.extend([slots] if isinstance(slots, str) else slots)
        for name in names:
            with contextlib.suppress(Exception):
                yield getattr(value, name)


class ProgramClock(trio.abc.Clock):
    """trio's clock, less the time the step gate held the program (tracer.step_gate)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return time.perf_counter() - self.recorder.paused_s

    def deadline_to_sleep_time(self, deadline: float) -> float:
        return deadline - self.current_time()


class traced_runs:
    """While active, every `trio.run` records into the recorder (one instrument per run),
    under one guard: the model's failure policy."""

    def __init__(self, recorder: Recorder, guard: Guard | None = None) -> None:
        self.recorder = recorder
        self.guard = guard if guard is not None else Guard(recorder, "trio")
        self.is_program = ProgramCode()
        self.lanes = HandoffLanes(recorder)
        self.original_run = trio.run
        self._lifecycle: contextlib.AbstractContextManager[Guard] | None = None

    def traced_run(self, async_fn: Any, *args: Any, clock: Any = None, instruments: Any = (),
                   **options: Any) -> Any:
        original_run, guard = self.original_run, self.guard
        if guard.detached:
            return original_run(async_fn, *args, clock=clock, instruments=instruments, **options)
        instrument = TrioInstrument(self.recorder, guard, self.is_program, self.lanes,
                                    trio.current_time)
        guard.on_detach(lambda: _remove_instrument(instrument))
        return original_run(
            async_fn, *args, clock=clock if clock is not None else ProgramClock(self.recorder),
            instruments=(*instruments, instrument), **options,
        )

    def install(self) -> None:
        # The public name every program (and anyio's trio backend) calls trio.run by.
        trio.run = self.traced_run  # type: ignore[assignment]

    def uninstall(self) -> None:
        trio.run = self.original_run

    def __enter__(self) -> Guard:
        self._lifecycle = instrumented(self.guard, self.install, self.uninstall)
        return self._lifecycle.__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        assert self._lifecycle is not None
        self._lifecycle.__exit__(*exc_info)


def run(recorder: Recorder, program: Program) -> None:
    with traced_runs(recorder):
        if program.scenario_module is not None:
            trio.run(program.scenario_main())
        else:
            program.run_script()


def _remove_instrument(instrument: TrioInstrument) -> None:
    """Takes the instrument out of the run it is in (after a failure, from inside a hook)."""
    # The run may be over, or trio may have removed it already; its hooks check `detached`.
    with contextlib.suppress(RuntimeError, KeyError):
        trio.lowlevel.remove_instrument(instrument)
