"""The parent's half of stepping: where the next step is, and a `Stepper` that gets there.

A `Stepper` drives a `tracer.runner.Run` whose child holds at events (`tracer.step_gate`): it
decides where the next step is (the same notion of step as `tracer.narrate`; `is_step` is the
rule, and the app's cursor uses it too), tells the child how far to run, and waits until the
child says it is held again (a batch of zero events).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Literal

from loopscope.tracer.events import NO_LANE, Code
from loopscope.tracer.models import narration_looks_ahead
from loopscope.tracer.narrate import HUB_WINDOW, WAIT_STATES, describe, narration_line
from loopscope.tracer.step_gate import RUN_CODES
from loopscope.tracer.trace import Trace

if TYPE_CHECKING:
    import asyncio

    from loopscope.tracer.runner import Run

StepKind = Literal["step", "event", "switch", "io"]
STEP_KINDS: tuple[StepKind, ...] = ("step", "event", "switch", "io")
# Which child command gets the child closer to each kind of step without passing one.
_CHILD_KIND: dict[StepKind, str] = {"step": "event", "event": "event", "switch": "switch",
                                    "io": "io"}


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


def is_step(trace: Trace, seq: int, kind: StepKind, ran_before: int | None = None) -> bool:
    """Whether event `seq` is a step of `kind`: the one rule `Stepper.step(kind)` stops by.

    "event" is any event, "step" any narrated one, "switch" a narrated RUNNING, POLL or
    DISPATCH on a lane other than `ran_before` (the lane that ran last before `seq`; found by
    a walk back when not given), "io" a narrated `is_io_step`. Pause marks are never steps.
    """
    if is_pause_mark(trace, seq):
        return False
    if kind == "event":
        return True
    if describe(trace, seq) is None:
        return False
    if kind == "switch":
        if trace.code[seq] not in RUN_CODES:
            return False
        if ran_before is None:
            ran_before = last_lane_ran(trace, seq)
        return trace.lane[seq] != ran_before
    if kind == "io":
        return is_io_step(trace, seq)
    return True


def find_step(trace: Trace, start: int, stop: int, kind: StepKind,
              skip: tuple[Collection[int], Collection[int]] = ((), ())) -> int | None:
    """The first step of `kind` from `start` towards `stop` (exclusive; either direction),
    passing over `skip`: the events of its lanes and those at its source locations (the app
    passes the library's own lanes and code, so stepping stays in the user's code)."""
    direction = 1 if stop >= start else -1
    lanes, sources = skip
    for seq in range(start, stop, direction):
        if (is_step(trace, seq, kind) and trace.lane[seq] not in lanes
                and trace.source[seq] not in sources):
            return seq
    return None


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
        ran_before = self._last_ran
        if self.trace.code[seq] in RUN_CODES:
            self._last_ran = self.trace.lane[seq]
        return is_step(self.trace, seq, kind, ran_before)

    def _final(self, seq: int) -> bool:
        """Whether the events received settle the narration of `seq` (see tracer.narrate:
        a hub switch names the wait after it, and a wait near a hub switch is left out)."""
        if self.ended or not narration_looks_ahead(str(self.trace.meta.get("model", ""))):
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
