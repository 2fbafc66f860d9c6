"""The child's half of stepping: holding the traced thread between two events.

A `StepGate` is the recorder's gate (`Recorder.set_gate`) while the parent wants the run held
or stepped. While it is set, every event is flushed and then shown to the gate, which lets the
program go on or holds the traced thread until the parent's next command. Holding the thread
holds every lane: tasks, greenlets and generators all run on it. (The parent's half, which
decides where a step is, is `tracer.stepping`.)

Commands (control pipe, one a line; "stop" belongs to tracer.child):

    pause              hold at the next event
    step event [N]     run until N more events (default 1) are recorded, then hold
    step switch        run until the next RUNNING, POLL or DISPATCH event, then hold
    step io            run until the next IO_WAIT, POLL, WAKE or ANNOTATE event, then hold
    resume             run freely (the gate is removed: full speed again)

Counts are relative to where the child is held; sent to a running child, every step command
simply holds at the next matching event. Each time the child is held it writes a batch of
zero events to the event pipe; its first_seq is the number of events recorded so far. That
empty batch is the parent's one sign that the child is held, and where. Just before it, a
HELD frame says what the paused frame of the program holds (tracer.held_frame): its place
and its local variables, for the app's Details pane.

Program time. While held, time stops for the program where the runtime lets us stop it (the
model's `ClockPolicy.STOP`): the recorder's origin moves on by the pause and the pause is added
to `recorder.paused_s`, which the model's own clock subtracts (the asyncio loop's `time()`,
trio's clock), so a sleep(1) still takes one second of program time however long the learner
thought. Generators and plain greenlets keep no clock, so the same holds for them. gevent's
libev and the kernel under select() keep their own time (`ClockPolicy.MARK`); there the
timeline keeps real time and the pause is recorded as a MARK ("paused 3.2 s", detail
`paused_ns`) on the lane that was running, so it is not mistaken for program time.
"""

from __future__ import annotations

import _thread
from collections.abc import Callable
from enum import Enum

from loopscope.tracer.events import NO_LANE, Batch, Clock, Code, monotonic_clock
from loopscope.tracer.models.toolkit import ClockPolicy
from loopscope.tracer.recorder import Recorder

__all__ = ["IO_CODES", "PAUSE_MARK_MIN_NS", "RUN_CODES", "ClockPolicy", "StepGate"]

# Real locks, taken before any model (gevent) patches _thread: the gate must block the OS
# thread itself, not just the greenlet that happens to be running.
_allocate_lock = _thread.allocate_lock

# A pause shorter than this is not marked: it is of the order of the stepping overhead
# (one command round trip), and marks for it would clutter the timeline and the narration.
PAUSE_MARK_MIN_NS = 50_000_000

# The codes at which "step switch" and "step io" hold the child. The parent decides which of
# them really is the step it wants; the child only must not run past one.
RUN_CODES = frozenset({Code.RUNNING, Code.POLL, Code.DISPATCH})
IO_CODES = frozenset({Code.IO_WAIT, Code.POLL, Code.WAKE, Code.ANNOTATE})
_CHILD_CODES: dict[str, frozenset[int] | None] = {
    "event": None,
    "switch": RUN_CODES,
    "io": IO_CODES,
}


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
    ) -> None:
        self.recorder = recorder
        self.policy = policy
        self.clock = clock
        self.on_stop = on_stop
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
            recorder.flush()
            # Reading the paused frame is the gate's own work, not time the run was held.
            view = self._held_view(lane)
            started = self.clock()
            if view is not None:
                recorder.sink.write_held(view)  # type: ignore[attr-defined]
            recorder.sink.write_batch(Batch(recorder.event_count, _NO_COLUMNS, [], []))
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

    def _held_view(self, lane: int) -> dict[str, object] | None:
        """The paused frame's place and locals (tracer.held_frame), sent just before the
        empty batch that says the thread is held; None for a sink that cannot take them."""
        if not hasattr(self.recorder.sink, "write_held"):
            return None
        # imported at the first hold: a run that is never stepped does not load it (nor the
        # dataclasses module it needs)
        from loopscope.tracer.held_frame import held_view

        try:
            return held_view(self.recorder.event_count, lane)
        except Exception:  # reading the frame must never stop the program
            return None

    def _account(self, held_ns: int, lane: int) -> None:
        self.pauses += 1
        self.paused_ns += held_ns
        recorder = self.recorder
        if self.policy is ClockPolicy.STOP:
            # The buffer is empty (flushed before holding), so no recorded event shifts.
            recorder.origin += held_ns
            recorder.paused_s += held_ns / 1e9
        elif held_ns >= PAUSE_MARK_MIN_NS:
            on = recorder.current if recorder.current != NO_LANE else lane
            text = f"paused {held_ns / 1e9:.1f} s"
            recorder.record(on, Code.MARK, NO_LANE,
                            recorder.detail(("text", text, "paused_ns", held_ns)))


_NO_COLUMNS: tuple[list[int], ...] = ([], [], [], [], [], [])
