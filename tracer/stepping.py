"""Stepping: holding a run between two events, and letting it go one step at a time.

Two halves talk over the child's two pipes:

- In the child, a `StepGate` is the recorder's gate (`Recorder.set_gate`). While it is set,
  every event is flushed and then shown to the gate, which lets the program go on or holds
  the traced thread until the parent's next command. Holding the thread holds every lane:
  tasks, greenlets and generators all run on it.
- In the parent, a `Stepper` drives a `tracer.runner.Run`: it decides where the next step
  is (the same notion of step as `tracer.narrate`), tells the child how far to run, and
  waits until the child says it is held again.

Commands (control pipe, one a line; "stop" belongs to tracer.child):

    pause              hold at the next event
    step event [N]     run until N more events (default 1) are recorded, then hold
    step switch        run until the next RUNNING, POLL or DISPATCH event, then hold
    step io            run until the next IO_WAIT, POLL, WAKE or ANNOTATE event, then hold
    resume             run freely (the gate is removed: full speed again)

Counts are relative to where the child is held; sent to a running child, every step command
simply holds at the next matching event. Each time the child is held it writes a batch of
zero events to the event pipe; its first_seq is the number of events recorded so far. That
empty batch is the parent's one sign that the child is held, and where: no new frame type.

Program time. While held, time stops for the program where the runtime lets us stop it: the
recorder's origin moves on by the pause, and so does asyncio's loop clock (through
`program_clock`), so a sleep(1) still takes one second of program time however long the
learner thought. Generators and plain greenlets keep no clock, so the same holds for them.
gevent's libev and the kernel under select() keep their own time; there the timeline keeps
real time and the pause is recorded as a MARK ("paused 3.2 s", detail `paused_ns`) on the
lane that was running, so it is not mistaken for program time.
"""

from __future__ import annotations

import _thread
import time
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Literal

from loopscope.tracer.events import NO_LANE, Clock, Code, monotonic_clock
from loopscope.tracer.narrate import HUB_WINDOW, WAIT_STATES, describe, narration_line
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

if TYPE_CHECKING:
    import asyncio

    from loopscope.tracer.runner import Run

# Real locks, taken before any model (gevent) patches _thread: the gate must block the OS
# thread itself, not just the greenlet that happens to be running.
_allocate_lock = _thread.allocate_lock

# A pause shorter than this is not marked: it is of the order of the stepping overhead
# (one command round trip), and marks for it would clutter the timeline and the narration.
PAUSE_MARK_MIN_NS = 50_000_000

CHILD_STEP_KINDS = ("event", "switch", "io")
# The codes at which "step switch" and "step io" hold the child. The parent decides which of
# them really is the step it wants; the child only must not run past one.
RUN_CODES = frozenset({Code.RUNNING, Code.POLL, Code.DISPATCH})
IO_CODES = frozenset({Code.IO_WAIT, Code.POLL, Code.WAKE, Code.ANNOTATE})
_CHILD_CODES: dict[str, frozenset[int] | None] = {
    "event": None,
    "switch": RUN_CODES,
    "io": IO_CODES,
}


class ClockPolicy(Enum):
    STOP = "stop"  # program time excludes pauses
    MARK = "mark"  # program time is real time; pauses are marked


_CLOCK_POLICIES = {
    "asyncio": ClockPolicy.STOP,
    "generator": ClockPolicy.STOP,
    "greenlet": ClockPolicy.STOP,
    "gevent": ClockPolicy.MARK,
    "select": ClockPolicy.MARK,
}


def clock_policy_for(model: str) -> ClockPolicy:
    """How a model's pauses are accounted for; a model we do not know keeps real time."""
    return _CLOCK_POLICIES.get(model, ClockPolicy.MARK)


class ProgramClock:
    """How long the gate has held the program, for runtimes whose clock we hold back with it.

    One per process, because the child runs one program: the asyncio loop's `time()`
    subtracts `paused_s` from the monotonic clock.
    """

    def __init__(self) -> None:
        self.paused_s = 0.0

    def monotonic(self) -> float:
        return time.monotonic() - self.paused_s


program_clock = ProgramClock()


class _Mode(Enum):
    FREE = "free"  # no gate: the program runs at full speed
    RUN_UNTIL = "run-until"  # gate set: hold at the first event that matches
    HELD = "held"  # the traced thread is blocked in the gate


class StepGate:
    """The child's half: holds the traced thread at events, as the parent's commands say.

    The command methods (`pause`, `resume`, `step`, `cancel`) are called from the control
    thread; `gate` is called by the recorder in the traced thread. `on_stop` is called in the
    traced thread after a cancel, to raise the stop at a moment when nothing is half-written.
    """

    def __init__(
        self,
        recorder: Recorder,
        policy: ClockPolicy,
        clock: Clock = monotonic_clock,
        on_stop: Callable[[], None] | None = None,
        held_clock: ProgramClock = program_clock,
    ) -> None:
        self.recorder = recorder
        self.policy = policy
        self.clock = clock
        self.on_stop = on_stop
        self.held_clock = held_clock
        self.pauses = 0
        self.paused_ns = 0
        self._mutex = _allocate_lock()
        # Held (acquired) except for the moment a command lets the blocked thread go.
        self._wakeup = _allocate_lock()
        self._wakeup.acquire()
        self._mode = _Mode.FREE
        self._codes: frozenset[int] | None = None
        self._count = 0  # events to run, counted from where the thread is held
        self._until = 0  # hold only once recorder.event_count has reached this
        self._cancelled = False
        self._inside = False  # the gate's own MARK must not come back into the gate

    # -- commands, from the control thread ---------------------------------------------------

    def pause(self) -> None:
        with self._mutex:
            if self._mode is _Mode.HELD:
                return
        self._command(_Mode.RUN_UNTIL, None, 0)

    def resume(self) -> None:
        self._command(_Mode.FREE, None, 0)

    def step(self, argument: str) -> None:
        """`argument` is "event [N]", "switch" or "io"; anything else is ignored."""
        kind, _, count_text = argument.strip().partition(" ")
        if kind not in _CHILD_CODES:
            return
        try:
            count = int(count_text) if count_text.strip() else 1
        except ValueError:
            return
        self._command(_Mode.RUN_UNTIL, _CHILD_CODES[kind], max(1, count) if kind == "event"
                      else 0)

    def cancel(self) -> None:
        """The run is stopping: let a held thread go, and never hold it again."""
        with self._mutex:
            self._cancelled = True
            if self._mode is _Mode.HELD:
                self._mode = _Mode.FREE
                self._wakeup.release()

    def _command(self, mode: _Mode, codes: frozenset[int] | None, count: int) -> None:
        with self._mutex:
            if self._cancelled:
                return
            was = self._mode
            self._mode, self._codes = mode, codes
            if was is _Mode.HELD:
                # The thread computes the count's target itself once it is running again.
                self._count, self._until = count, 0
                self._wakeup.release()
                return
            # A running program: the command holds it at the next matching event.
            self._count = self._until = 0
        if mode is not _Mode.FREE and was is _Mode.FREE:
            # Racing the traced thread's flush can leave the recorder batching for a while;
            # the gate is then reached at its next flush (every model flushes before it
            # blocks), so the pause is late at worst, never lost.
            self.recorder.set_gate(self.gate)
        elif mode is _Mode.FREE and was is not _Mode.FREE:
            self.recorder.set_gate(None)

    # -- the gate, in the traced thread --------------------------------------------------------

    def gate(self, code: int, lane: int) -> None:
        if self._inside:
            return
        with self._mutex:
            if self._cancelled:
                stopping = True
            else:
                stopping = False
                if self._mode is not _Mode.RUN_UNTIL:
                    return
                if self._codes is not None and code not in self._codes:
                    return
                if self.recorder.event_count < self._until:
                    return
                self._mode = _Mode.HELD
        if stopping:
            self.recorder.set_gate(None)
            if self.on_stop is not None:
                self.on_stop()
            return
        self._hold(lane)

    def _hold(self, lane: int) -> None:
        recorder = self.recorder
        self._inside = True
        try:
            started = self.clock()
            recorder.flush()
            recorder.sink.write_batch(recorder.event_count, _NO_COLUMNS, [], [], b"")
            self._wakeup.acquire()
            held_ns = self.clock() - started
            with self._mutex:
                mode, cancelled = self._mode, self._cancelled
                if self._count:
                    self._until = recorder.event_count + self._count
            self._account(held_ns, lane)
            if cancelled or mode is _Mode.FREE:
                recorder.set_gate(None)
        except BaseException:
            # A stop raised while announcing the pause: the program unwinds ungated.
            with self._mutex:
                self._mode = _Mode.FREE
            recorder.set_gate(None)
            raise
        finally:
            self._inside = False
        if cancelled and self.on_stop is not None:
            self.on_stop()

    def _account(self, held_ns: int, lane: int) -> None:
        self.pauses += 1
        self.paused_ns += held_ns
        recorder = self.recorder
        if self.policy is ClockPolicy.STOP:
            # The buffer is empty (flushed before holding), so no recorded event shifts.
            recorder.origin += held_ns
            self.held_clock.paused_s += held_ns / 1e9
        elif held_ns >= PAUSE_MARK_MIN_NS:
            on = recorder.current if recorder.current != NO_LANE else lane
            text = f"paused {held_ns / 1e9:.1f} s"
            recorder.record(on, Code.MARK, NO_LANE,
                            recorder.detail(("text", text, "paused_ns", held_ns)))


_NO_COLUMNS: tuple[list[int], ...] = ([], [], [], [], [], [])


# -- the parent's half ---------------------------------------------------------------------------

StepKind = Literal["step", "event", "switch", "io"]
STEP_KINDS: tuple[StepKind, ...] = ("step", "event", "switch", "io")
# Which child command gets the child closer to each kind of step without passing one.
_CHILD_KIND: dict[StepKind, str] = {"step": "event", "event": "event", "switch": "switch",
                                    "io": "io"}
# Only gevent records hub switches, the one thing whose narration depends on later events.
_MODELS_WITHOUT_HUB = frozenset({"asyncio", "generator", "greenlet", "select"})


def is_pause_mark(trace: Trace, seq: int) -> bool:
    """A MARK the gate recorded for a pause: part of the timeline, never a step."""
    return trace.code[seq] == Code.MARK and "paused_ns" in trace.details[trace.detail[seq]]


def is_io_step(trace: Trace, seq: int) -> bool:
    """An I/O wait or a wake: io-wait, a poll or its result, a wake, or a hub switch to wait
    for an fd."""
    code = trace.code[seq]
    if code in (Code.IO_WAIT, Code.POLL, Code.WAKE):
        return True
    if code == Code.ANNOTATE:
        detail = trace.details[trace.detail[seq]]
        return "readable" in detail or "writable" in detail
    if code == Code.SWITCH and _is_hub_switch(trace, seq):
        wait = _next_lane_state(trace, seq, HUB_WINDOW)
        return wait is not None and trace.code[wait] == Code.IO_WAIT
    return False


def step_lines(trace: Trace, start: int = 0) -> list[tuple[int, str]]:
    """(seq, narration line) of every step from `start` on, pause marks left out: what
    `loopscope narrate` prints for the same events."""
    lines = []
    for seq in range(start, len(trace)):
        if is_pause_mark(trace, seq):
            continue
        line = narration_line(trace, seq)
        if line is not None:
            lines.append((seq, line))
    return lines


def _is_hub_switch(trace: Trace, seq: int) -> bool:
    return trace.details[trace.detail[seq]].get("via") == "hub"


def _next_lane_state(trace: Trace, seq: int, window: int) -> int | None:
    """The first state event of seq's lane after seq, within `window` events."""
    lane = trace.lane[seq]
    for near in range(seq + 1, min(len(trace), seq + window + 1)):
        if trace.lane[near] == lane and trace.code[near] < Code.SPAWN:
            return near
    return None


def last_lane_ran(trace: Trace, stop: int) -> int:
    """The lane of the last RUNNING, POLL or DISPATCH event before `stop`, or NO_LANE."""
    for seq in range(min(stop, len(trace)) - 1, -1, -1):
        if trace.code[seq] in RUN_CODES:
            return trace.lane[seq]
    return NO_LANE


class Stepper:
    """The parent's half: steps a Run (started with `paused=True`, or paused later).

    `position` is the sequence number of the event the learner is looking at (-1 before the
    first step); `step(kind)` moves it to the next step of that kind and returns it, or None
    when the run ended without one. The child may be up to a few events past `position`:
    a gevent hub switch is only narrated once the wait it hands over for has been recorded.
    All methods are coroutines for the loop the Run reads on (qasync in the app), and each
    waits until the child is held again, so the trace already holds every event they name.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self.trace = run.trace
        self.position = -1
        # How many events the child had recorded when it was last held; None while it runs.
        self.held_at: int | None = None
        self._resumed = not run.paused
        self._checked = 0  # the search for the next step has decided every event before this
        self._last_ran = NO_LANE  # the lane that ran last, as of `_checked`
        self._ran_at_position = NO_LANE
        self._waiter: asyncio.Future[None] | None = None
        self._busy: asyncio.Lock | None = None
        self.trace.listeners.append(self._on_batch)

    @property
    def ended(self) -> bool:
        """The child has sent everything it will send."""
        return self.run.stream_closed.done()

    @property
    def state(self) -> Literal["held", "running", "ended"]:
        if self.ended:
            return "ended"
        return "held" if self.held_at is not None else "running"

    def close(self) -> None:
        """Stops listening to the trace (it stays as it is)."""
        if self._on_batch in self.trace.listeners:
            self.trace.listeners.remove(self._on_batch)

    # -- commands -----------------------------------------------------------------------------

    async def step(self, kind: StepKind = "step") -> int | None:
        """Runs the child to the next step of `kind` and returns its sequence number.

        "step" is the next narrated event, "event" the next event of any kind, "switch" the
        next narrated moment another lane starts running (or the loop starts polling), "io"
        the next narrated I/O wait, poll or wake. A running child is paused first.
        """
        if kind not in STEP_KINDS:
            raise ValueError(f"unknown step kind {kind!r}; expected one of {STEP_KINDS}")
        async with self._lock():
            if self._resumed and not self.ended:
                await self._pause()
            await self._until_held()
            self._checked, self._last_ran = self.position + 1, self._ran_at_position
            while True:
                found = self._search(kind)
                if isinstance(found, int):
                    self.position = found
                    self._ran_at_position = self._last_ran
                    return found
                if self.ended:
                    return None
                await self._command(found)

    async def pause(self) -> int:
        """Holds a running child at its next event; returns the new `position` (that event)."""
        async with self._lock():
            if self._resumed and not self.ended:
                await self._pause()
            return self.position

    async def resume(self) -> None:
        """Lets the child run freely to its end (or to the next pause or step)."""
        async with self._lock():
            if self.ended or self._resumed:
                return
            self._resumed = True
            self.held_at = None
            self.run.resume()

    async def stop(self) -> None:
        """Stops the child (held or not) and waits until it has exited."""
        await self.run.stop()

    async def wait_held(self) -> None:
        """Waits until the child is held (a run started paused holds at its first event)."""
        async with self._lock():
            await self._until_held()

    # -- inside ----------------------------------------------------------------------------

    def _lock(self) -> asyncio.Lock:
        import asyncio  # not at import time: the child imports this module before gevent

        if self._busy is None:
            self._busy = asyncio.Lock()
        return self._busy

    async def _pause(self) -> None:
        self._resumed = False
        await self._command("pause")
        if self.held_at is not None or self.ended:
            self.position = len(self.trace) - 1
            self._ran_at_position = last_lane_ran(self.trace, self.position + 1)

    def _on_batch(self, first_seq: int, count: int) -> None:
        if count == 0:
            self.held_at = first_seq
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    async def _command(self, command: str) -> None:
        self.held_at = None
        if self.run.send_command(command):
            await self._until_held()
        else:
            # The child is gone (or not reading): what it sent is all there will be.
            await self.run.stream_closed

    async def _until_held(self) -> None:
        import asyncio

        loop = asyncio.get_running_loop()
        while self.held_at is None and not self.ended:
            self._waiter = loop.create_future()
            await asyncio.wait([self._waiter, self.run.stream_closed],
                               return_when=asyncio.FIRST_COMPLETED)

    def _search(self, kind: StepKind) -> int | str:
        """The next step of `kind` among the events received, else the child command that
        brings more of the events it needs."""
        trace = self.trace
        for seq in range(self._checked, len(trace)):
            if not self._final(seq):
                return "step event 1"
            matched = self._matches(kind, seq)
            self._checked = seq + 1
            if matched:
                return seq
        return f"step {_CHILD_KIND[kind]}"

    def _matches(self, kind: StepKind, seq: int) -> bool:
        trace = self.trace
        if is_pause_mark(trace, seq):
            return False
        code, lane = trace.code[seq], trace.lane[seq]
        ran_before = self._last_ran
        if code in RUN_CODES:
            self._last_ran = lane
        if kind == "event":
            return True
        if describe(trace, seq) is None:
            return False
        if kind == "switch":
            return code in RUN_CODES and lane != ran_before
        if kind == "io":
            return is_io_step(trace, seq)
        return True

    def _final(self, seq: int) -> bool:
        """Whether the events received settle the narration of `seq` (see tracer.narrate:
        a hub switch names the wait after it, and a wait near a hub switch is left out)."""
        if self.ended or self.trace.meta.get("model") in _MODELS_WITHOUT_HUB:
            return True
        trace = self.trace
        received = len(trace)
        code = trace.code[seq]
        if code == Code.SWITCH and _is_hub_switch(trace, seq):
            return (received > seq + HUB_WINDOW
                    or _next_lane_state(trace, seq, HUB_WINDOW) is not None)
        if code in WAIT_STATES:
            # Only a hub switch between this wait and the lane's next state can absorb it.
            return (received > seq + 2 * HUB_WINDOW
                    or _next_lane_state(trace, seq, HUB_WINDOW) is not None)
        return True
