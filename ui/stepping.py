"""Stepping in the app: a cursor that moves event by event, live or through a recording.

`StepController` owns the cursor: the sequence number of the step the learner is looking at.
Over a recording (or the part of a held run already received) it moves by itself, forwards and
backwards; past the end of what a held run has sent it asks the run's `tracer.stepping.Stepper`
for the next step, which lets the child go that far and holds it again. Step commands queue, so
pressing N five times takes five steps even while the child is catching up. A recording can
also play back, a step at a time at a chosen speed.

`NarrationBar` shows the sentence `loopscope narrate` prints for the step at the cursor, with
the playback speed beside it. The source pane shows each lane at the line it is on at the
cursor (`tracer.step_lines`).
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from loopscope.tracer.events import CODE_NAMES
from loopscope.tracer.held_frame import HeldView
from loopscope.tracer.narrate import narration_line, time_prefix
from loopscope.tracer.step_lines import LaneLines, body_start, lane_lines
from loopscope.tracer.stepping import StepKind, find_step
from loopscope.tracer.trace import Trace
from loopscope.ui.eliding_label import ElidingLabel
from loopscope.ui.trace_notes import trace_notes

if TYPE_CHECKING:
    from loopscope.tracer.stepping import Stepper

# Playback speeds offered, in steps per second.
PLAY_SPEEDS = (1.0, 2.0, 5.0, 10.0, 30.0)
DEFAULT_PLAY_SPEED = 2.0


def step_sentence(trace: Trace, seq: int) -> str:
    """The narration line for `seq`; an event that is not a narrated step (a pause can hold
    the child anywhere) still gets a plain line."""
    line = narration_line(trace, seq)
    if line is not None:
        return line
    code = trace.code[seq]
    return (time_prefix(trace, seq) + f"{trace.lane_name(trace.lane[seq])}: "
            f"{CODE_NAMES.get(code, str(code))}")


@dataclass(frozen=True)
class SourceAtCursor:
    """What the source pane shows at the cursor."""

    filename: str
    line: int
    lane: int  # the lane that ran last
    faint: tuple[int, ...]  # the other lanes' lines in the same file


class StepController(QObject):
    """The cursor over one trace, and the live run's Stepper when the trace is still growing."""

    moved = Signal()  # the cursor moved (or was cleared): show the step
    changed = Signal()  # live state, playback or busyness changed: update the actions
    notice = Signal(str)  # a step key found nothing to go to: say so

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.trace: Trace | None = None
        self.stepper: Stepper | None = None
        self.cursor = -1
        self.message = ""  # what the narration says when there is no step at the cursor
        self._lines: LaneLines | None = None
        self._queue: list[Callable[[], object]] = []
        self._worker: asyncio.Task[None] | None = None
        self.speed = DEFAULT_PLAY_SPEED
        # Steps pass over the library's own lanes (asyncio's, aiohttp's plumbing) unless the
        # learner asks to see them (View → Show Library Lanes).
        self.mine_only = True
        self._play = QTimer(self)
        self._play.timeout.connect(self._play_tick)
        self._set_interval()

    # -- what is shown ------------------------------------------------------------------

    def attach(self, trace: Trace | None, stepper: Stepper | None = None) -> None:
        """A new trace on display: a recording (no stepper) or a live run's."""
        self.stop_playing()
        self._queue.clear()
        self.trace, self.stepper, self.cursor = trace, stepper, -1
        self._lines = lane_lines(trace) if trace is not None else None
        held = stepper is not None and stepper.run.paused
        self.message = "Held before the first step: press N or F10 to step" if held else ""
        self.moved.emit()
        self.changed.emit()

    def return_to(self, seq: int) -> None:
        """Puts the cursor back on step `seq` of a new trace holding the same events (a
        finished run with its held time cut out, tracer.held_time)."""
        if self.trace is not None and 0 <= seq < len(self.trace):
            self._move(seq)

    def run_ended(self) -> None:
        """The live run ended: what it recorded becomes a recording to scrub."""
        self.stepper = None
        if self.cursor < 0:
            self.message = ""
        self.moved.emit()
        self.changed.emit()

    def _live_state(self) -> str | None:
        """The Stepper's state; "starting" until the child is up; None without a run."""
        if self.stepper is None:
            return None
        try:
            return self.stepper.state
        except RuntimeError:  # the Run has not started its child yet
            return "starting"

    @property
    def live(self) -> bool:
        return self._live_state() not in (None, "ended")

    @property
    def held(self) -> bool:
        return self._live_state() == "held"

    @property
    def busy(self) -> bool:
        """Steps are queued or a command is on its way to the child."""
        return bool(self._queue) or (self._worker is not None and not self._worker.done())

    @property
    def playing(self) -> bool:
        return self._play.isActive()

    @property
    def can_scrub(self) -> bool:
        """The cursor can move through recorded events: a recording, or a held run."""
        return self.trace is not None and len(self.trace) > 0 and (
            self.stepper is None or self.held)

    def skipped(self) -> tuple[frozenset[int], frozenset[int]]:
        """What steps pass over: the library's lanes, and running steps in library code
        (the source pane would show asyncio's or aiohttp's code, not the program's)."""
        if not self.mine_only or self.trace is None:
            return frozenset(), frozenset()
        notes = trace_notes(self.trace)
        return notes.library_lanes(self.trace), notes.library_sources()

    def _passed_over(self, seq: int) -> bool:
        if self.trace is None:
            return False
        lanes, sources = self.skipped()
        return self.trace.lane[seq] in lanes or self.trace.source[seq] in sources

    def narration(self) -> str:
        if self.trace is None or not 0 <= self.cursor < len(self.trace):
            return self.message
        return step_sentence(self.trace, self.cursor)

    def cursor_ns(self) -> float | None:
        if self.trace is None or not 0 <= self.cursor < len(self.trace):
            return None
        return float(self.trace.ts[self.cursor])

    def held_view(self) -> HeldView | None:
        """What the held child's paused frame holds, when it is held at the cursor's step
        (tracer.held_frame)."""
        stepper, trace = self.stepper, self.trace
        if stepper is None or trace is None or not self.held or self.cursor != stepper.position:
            return None
        view = stepper.run.held_view
        return view if view is not None and view.seq == len(trace) else None

    def source_at_cursor(self) -> SourceAtCursor | None:
        trace, lines = self.trace, self._lines
        if trace is None or lines is None or self.cursor < 0:
            return None
        at = lines.at(self.cursor)
        if not at:
            return None
        # My code first: while steps pass over the library's lanes, the pane follows the
        # program's lane that ran last (a request's handler), not aiohttp's plumbing after it.
        library_lanes = self.skipped()[0]
        at = [pair for pair in at if pair[0] not in library_lanes] or at
        # Each lane at the line it is on: where it stopped once it has (its yield, its await),
        # else where it resumed; never a generator's `def` line while its first step shows.
        cursor = self.cursor
        on = [(lane, *lines.line_at(lane, run, cursor)) for lane, run in at]
        lane, filename, line = on[0]
        # Held right here, inside the function that lane last ran (it is the one running):
        # the paused frame knows the exact line it is on (the print, the call), where the
        # recording only knows where the lane resumed.
        view = self.held_view()
        if (view is not None and view.where is not None and view.where[0] == filename
                and view.where[2] == trace.sources[trace.source[at[0][1]]][2]
                and body_start(trace.meta, filename, view.where[1]) is None):
            line = view.where[1]
        faint = tuple(other_line for _, other_file, other_line in on[1:]
                      if other_file == filename)
        return SourceAtCursor(filename, line, lane, faint)

    # -- moving the cursor ----------------------------------------------------------------

    def step(self, kind: StepKind = "step") -> None:
        """The next step of `kind`: within what was recorded, else from the held child."""
        self.stop_playing()
        self._enqueue(lambda: self._forward(kind))

    def step_back(self, kind: StepKind = "step") -> None:
        self.stop_playing()
        self._enqueue(lambda: self._backward(kind))

    def first(self) -> None:
        self.stop_playing()
        self._enqueue(self._first)

    def last(self) -> None:
        """The last step received (a held run: where the child is held)."""
        self.stop_playing()
        self._enqueue(self._last)

    def seek_time(self, ns: float) -> None:
        """The last step at or before `ns` (the first step when `ns` is before it)."""
        trace = self.trace
        if trace is None or not self.can_scrub or self.busy:
            return
        self.stop_playing()
        limit = self._known_end()
        stop = bisect.bisect_right(trace.ts, int(ns), 0, limit)
        found = find_step(trace, stop - 1, -1, "step", self.skipped())
        if found is None:
            found = find_step(trace, 0, limit, "step", self.skipped())
        if found is not None:
            self._move(found)

    def pause(self) -> None:
        """Playback stops; a live run that runs freely is held at its next event."""
        if self.playing:
            self.stop_playing()
            return
        if self._live_state() in ("running", "starting"):
            self._enqueue(self._pause_live)

    def continue_(self) -> None:
        """A live run goes on at full speed; a recording plays back from the cursor."""
        if self.stepper is not None:
            if self.live:
                self._queue.clear()
                self._enqueue(self._resume_live)
            return
        if self.can_scrub and not self.playing:
            self._play.start()
            self.changed.emit()

    def stop_playing(self) -> None:
        if self._play.isActive():
            self._play.stop()
            self.changed.emit()

    def set_speed(self, steps_per_second: float) -> None:
        self.speed = max(steps_per_second, 0.1)
        self._set_interval()

    # -- inside ---------------------------------------------------------------------------

    def _set_interval(self) -> None:
        self._play.setInterval(max(int(1000 / self.speed), 1))

    def _play_tick(self) -> None:
        trace = self.trace
        if trace is None or self.busy:
            return
        found = find_step(trace, self.cursor + 1, len(trace), "step", self.skipped())
        if found is None:
            self.stop_playing()
            return
        self._move(found)

    def _known_end(self) -> int:
        """Events the cursor may move over: all of a recording; of a held run, those up to
        the Stepper's position (later ones may still change how a step is narrated)."""
        assert self.trace is not None
        if not self.live:
            return len(self.trace)
        assert self.stepper is not None
        return self.stepper.position + 1

    def _move(self, seq: int) -> None:
        self.cursor = seq
        self.message = ""
        self.moved.emit()

    def _enqueue(self, command: Callable[[], object]) -> None:
        """Runs a command now, or after those still waiting for the child."""
        if self.trace is None:
            return
        if self.busy:
            self._queue.append(command)
            return
        outcome = command()
        if isinstance(outcome, Coroutine):
            self._worker = asyncio.ensure_future(self._work(outcome))
            self.changed.emit()

    async def _work(self, first: Coroutine[object, object, None]) -> None:
        try:
            await first
            while self._queue:
                outcome = self._queue.pop(0)()
                if isinstance(outcome, Coroutine):
                    await outcome
        finally:
            self._queue.clear()
            self.changed.emit()

    def _forward_recorded(self, kind: StepKind) -> bool:
        """Moves to the next step of `kind` among the events already known; False if none."""
        trace = self.trace
        if trace is None:
            return False
        found = find_step(trace, self.cursor + 1, self._known_end(), kind,
                          self.skipped())
        if found is not None:
            self._move(found)
        return found is not None

    def _forward(self, kind: StepKind) -> Coroutine[object, object, None] | None:
        """Moves at once when the step is recorded; else the coroutine that asks the child.
        A run going on freely is held first: what it recorded before is behind it."""
        if self.stepper is None:
            if not self._forward_recorded(kind):
                self.notice.emit(f"No {_STEP_NAMES[kind]} after this one: the recording ends")
            return None
        if self.held and self._forward_recorded(kind):
            return None
        return self._forward_live(kind)

    async def _forward_live(self, kind: StepKind) -> None:
        stepper = self.stepper
        if not await self._started() or stepper is None or stepper.ended:
            return
        if stepper.position != self.cursor:
            # The cursor was behind the child: go on from where the child is held.
            self.cursor = stepper.position
        self.changed.emit()
        position = await stepper.step(kind)
        while position is not None and self._passed_over(position):
            position = await stepper.step(kind)  # the library's plumbing: on to the program's
        if position is None:
            self.message = "The run has ended"
            self.notice.emit(f"No {_STEP_NAMES[kind]} was left: the run has ended")
            self.changed.emit()
            return
        self._move(position)
        self.changed.emit()

    def _backward(self, kind: StepKind) -> None:
        trace = self.trace
        if trace is None or self.cursor <= 0:
            return
        found = find_step(trace, self.cursor - 1, -1, kind, self.skipped())
        if found is not None:
            self._move(found)

    def _first(self) -> None:
        trace = self.trace
        if trace is None:
            return
        found = find_step(trace, 0, self._known_end(), "step", self.skipped())
        if found is not None:
            self._move(found)

    def _last(self) -> None:
        trace = self.trace
        if trace is None:
            return
        found = find_step(trace, self._known_end() - 1, -1, "step", self.skipped())
        if found is not None:
            self._move(found)

    async def _started(self) -> bool:
        """Waits until the live run's child is up; False if the run went away first."""
        while self._live_state() == "starting":
            await asyncio.sleep(0.01)
        return self.stepper is not None

    async def _pause_live(self) -> None:
        stepper = self.stepper
        if not await self._started() or stepper is None or stepper.ended:
            return
        position = await stepper.pause()
        self.changed.emit()
        if position >= 0:
            self._move(position)

    async def _resume_live(self) -> None:
        stepper = self.stepper
        if not await self._started() or stepper is None or stepper.ended:
            return
        await stepper.resume()
        self.cursor = -1
        self.message = "Running… (Pause: P or F7)"
        self.moved.emit()
        self.changed.emit()


_STEP_NAMES: dict[str, str] = {"step": "step", "event": "event", "switch": "switch to another lane",
                               "io": "I/O wait or wake"}


class NarrationBar(QWidget):
    """One line saying what just happened, and the playback speed."""

    speed_chosen = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.position_label = QLabel()
        self.position_label.setMinimumWidth(90)
        self.sentence = ElidingLabel()
        self.sentence.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.sentence.setTextFormat(Qt.TextFormat.PlainText)
        font = self.sentence.font()
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.sentence.setFont(font)
        self.speed = QComboBox()
        self.speed.setToolTip("Playback speed (Continue plays a recording back)")
        for steps in PLAY_SPEEDS:
            self.speed.addItem(f"{steps:g} step/s" if steps == 1 else f"{steps:g} steps/s",
                               steps)
        self.speed.setCurrentIndex(PLAY_SPEEDS.index(DEFAULT_PLAY_SPEED))
        self.speed.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.speed.currentIndexChanged.connect(
            lambda index: self.speed_chosen.emit(float(self.speed.itemData(index))))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 3, 8, 3)
        layout.addWidget(self.position_label)
        layout.addWidget(self.sentence, 1)
        layout.addWidget(self.speed)

    def show_step(self, sentence: str, position: str) -> None:
        self.sentence.setText(sentence)
        self.position_label.setText(position)
