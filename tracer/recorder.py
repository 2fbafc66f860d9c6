"""The recorder every instrumentation writes to: cheap appends on the hot path, batched flushes.

Instrumentations call `record` (or the helpers built on it) from the traced thread. Events
are buffered and handed to a sink in column batches: when the buffer is full, when an
instrumentation is about to block (`flush`), or at the next event after the flush timer
fires. Nothing is ever dropped: a sink that cannot keep up blocks the recorder.

The buffer is `tracer._speedups.RecorderCore` (C columns, the clock read in C) when the
extension is built, else its pure-Python twin `PurePendingBuffer`; LOOPSCOPE_PURE_PYTHON=1
forces the twin. Both record the same events.
"""

from __future__ import annotations

import threading
import time
from array import array
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING, Protocol, cast

from loopscope.tracer.events import (
    NO_DETAIL,
    NO_LANE,
    NO_SOURCE,
    Batch,
    Clock,
    Code,
    Detail,
    Source,
    monotonic_clock,
    short_repr,
)
from loopscope.tracer.extensions import c_extension as c_extension  # (where it was)
from loopscope.tracer.values import MAX_VALUE_ROWS, VALUE_ROW, encode_values

# The C hot paths in use, or None; the asyncio model picks its proxy by this too.
SPEEDUPS = c_extension("_speedups")

_WIDTH = 6  # ints per pending event in the pure-Python buffer


# Task numbers shown by names kept apart from the name table: below this (the C twin's bits)
TASK_NUMBERS_KEPT = 1 << 24
_TASK_NUMBER_HEAD = " (Task-"


def task_number_shown(name: str) -> int | None:
    """The N of a name ending in " (Task-N)", N written without leading zeros and below
    TASK_NUMBERS_KEPT (asyncio's name for its N-th task, after the coroutine's); else None."""
    if not name.endswith(")"):
        return None
    first = len(name) - 1
    while first > 0 and "0" <= name[first - 1] <= "9":
        first -= 1
    digits = name[first:-1]
    if (not digits or len(digits) > 8 or (digits[0] == "0" and len(digits) > 1)
            or not name.endswith(_TASK_NUMBER_HEAD, 0, first)):
        return None
    number = int(digits)
    return number if number < TASK_NUMBERS_KEPT else None


class PurePendingBuffer:
    """The pending events in a flat list: the pure-Python twin of _speedups.RecorderCore.

    Flat because appending six ints costs less than building, tracking and later unzipping a
    tuple per event. `_limit` counts events; `_limit_reached` runs once that many are pending
    (0: at the next event).
    """

    def __init__(self) -> None:
        self.current = NO_LANE
        self._pending: list[int] = []
        self._pending_limit = 0
        self._now: Clock = time.perf_counter_ns
        self._value_bases = array("i")
        self._value_lengths = array("I")
        self._value_texts = bytearray()
        self._value_count = 0  # value rows so far, sent or pending
        # Recorder.detail's table: detail tuple -> index, and the tuples in index order (a
        # unique row sent by a flush is None from then on: unique_detail)
        self._details: dict[Detail, int] = {(): NO_DETAIL}
        self._detail_rows: list[Detail | None] = [()]
        self._unique_rows: list[int] = []  # unique rows not sent yet
        # Recorder.spawn's: how many lanes have taken each name, by the name's hash (the C
        # twin's table says why not by the name), and the task numbers shown by names ending
        # in " (Task-N)", which are kept apart (task_number_shown)
        self._name_uses: dict[int, int] = {}
        self._task_numbers: set[int] = set()

    @property
    def _limit(self) -> int:
        return self._pending_limit // _WIDTH

    @_limit.setter
    def _limit(self, events: int) -> None:
        self._pending_limit = events * _WIDTH

    def _set_clock(self, clock: Clock | None) -> None:
        self._now = time.perf_counter_ns if clock is None else clock

    def record(self, lane: int, code: int, other: int = NO_LANE, detail: int = NO_DETAIL,
               source: int = NO_SOURCE) -> None:
        pending = self._pending
        pending += (self._now(), lane, code, other, detail, source)
        if len(pending) >= self._pending_limit:
            self._limit_reached()

    def record_same_instant(self, lane: int, code: int, other: int = NO_LANE,
                            detail: int = NO_DETAIL, source: int = NO_SOURCE) -> None:
        """`record`, timed as the event recorded just before it while that one is pending (a
        task's READY right after its SPAWN): one clock reading less. After a flush (the step
        gate flushes every event) the clock is read: a pause there must not leave the event
        behind the time it was recorded at."""
        pending = self._pending
        pending += (pending[-_WIDTH] if pending else self._now(), lane, code, other, detail,
                    source)
        if len(pending) >= self._pending_limit:
            self._limit_reached()

    def handoff(
        self,
        origin: int,
        target: int,
        switch_detail: int,
        origin_state: int,
        origin_detail: int,
        target_source: int,
    ) -> None:
        now = self._now()
        pending = self._pending
        pending += (
            now, origin, Code.SWITCH, target, switch_detail, NO_SOURCE,
            now, origin, origin_state, target, origin_detail, NO_SOURCE,
            now, target, Code.RUNNING, NO_LANE, NO_DETAIL, target_source,
        )
        if len(pending) >= self._pending_limit:
            self._limit_reached()

    def detail(self, detail: Detail) -> int:
        """The interned index of a detail tuple."""
        index = self._details.get(detail)
        if index is None:
            if len(self._detail_rows) >= VALUE_ROW:
                raise OverflowError("more interned details than the detail column can name")
            index = self._details[detail] = len(self._detail_rows)
            self._detail_rows.append(detail)
        return index

    def unique_detail(self, detail: Detail) -> int:
        """A new row for a detail that cannot have been interned before (a sleep's, which
        holds its deadline): not kept for interning, and forgotten once a flush has sent it,
        so that a program sleeping 50,000 times does not keep 50,000 tuples alive."""
        if not isinstance(detail, tuple):
            raise TypeError("unique_detail needs a tuple")
        index = len(self._detail_rows)
        if index >= VALUE_ROW:
            raise OverflowError("more interned details than the detail column can name")
        self._detail_rows.append(detail)
        self._unique_rows.append(index)
        return index

    def _forget_unique_rows(self) -> None:
        """The unique rows sent by now are None in _detail_rows from here on."""
        rows = self._detail_rows
        for index in self._unique_rows:
            rows[index] = None
        self._unique_rows.clear()

    def value_row(self, base: int, text: str) -> int:
        """A new value row -- detail `base` plus the value `text` -- and its detail index."""
        if self._value_count >= MAX_VALUE_ROWS:
            raise OverflowError("more value rows than a detail index can name")
        if not 0 <= base < VALUE_ROW:
            raise ValueError("a value row's base must be an interned detail")
        if not isinstance(text, str):
            raise TypeError("a value row's text must be a str")
        data = text.encode("utf-8", "backslashreplace")
        self._value_bases.append(base)
        self._value_lengths.append(len(data))
        self._value_texts += data
        self._value_count += 1
        return VALUE_ROW + self._value_count - 1

    def _unique_name(self, name: str) -> str:
        """The name a new lane taking `name` is shown by: `name`, or "name #N" when N - 1 lanes
        took it before, N the first number whose name no lane has taken either. Names are
        counted by their hash (the C twin's table says why), 0 as 1 there; a name ending in
        " (Task-N)" by its task number N alone, a lane showing the same number counting as
        one that took the name before (the C twin says why)."""
        uses = self._name_uses

        def take(text: str) -> int:
            key = hash(text) or 1
            taken = uses[key] = uses.get(key, 0) + 1
            return taken

        before = 0
        number = task_number_shown(name)
        if number is not None:
            if number not in self._task_numbers:
                self._task_numbers.add(number)
                return name
            before = 1
        count = take(name) + before
        while count > 1:
            numbered = f"{name} #{count}"
            if (hash(numbered) or 1) not in uses:
                take(numbered)
                return numbered
            # a lane has that name already (the program's): the next number
            count = take(name) + before
        return name

    def _take_values(self) -> bytes:
        """The pending value rows as one section (see tracer.values); b"" when there are none."""
        bases = self._value_bases
        if not bases:
            return b""
        section = encode_values(self._value_count - len(bases), bases, self._value_lengths,
                                bytes(self._value_texts))
        self._value_bases = array("i")
        self._value_lengths = array("I")
        self._value_texts.clear()
        return section

    def _limit_reached(self) -> None:
        raise NotImplementedError

    def _take(self, origin: int) -> tuple[list[int], ...]:
        pending = self._pending
        columns = (
            [t - origin for t in pending[0::_WIDTH]],
            pending[1::_WIDTH],
            pending[2::_WIDTH],
            pending[3::_WIDTH],
            pending[4::_WIDTH],
            pending[5::_WIDTH],
        )
        pending.clear()
        return columns

    def _pending_count(self) -> int:
        return len(self._pending) // _WIDTH

    def _last_event(self) -> tuple[int, int]:
        """(code, lane) of the last pending event."""
        pending = self._pending
        return pending[-4], pending[-5]


# mypy checks against the pure twin (the C base has the same methods, see _speedups.pyi); it
# needs the statement form to see a class here, hence no ternary.
if TYPE_CHECKING or SPEEDUPS is None:  # noqa: SIM108
    _PendingBuffer = PurePendingBuffer
else:
    _PendingBuffer = SPEEDUPS.RecorderCore


class BatchSink(Protocol):
    """Receives events in column batches, in sequence order, with the table rows they need."""

    def write_batch(self, batch: Batch) -> None:
        ...


class Recorder(_PendingBuffer):
    """Collects the events of one run. Not thread-safe: one traced thread records.

    `record(lane, code, other, detail, source)` and `handoff(...)` come from the buffer base.
    """

    def __init__(
        self, sink: BatchSink, clock: Clock = monotonic_clock, batch_size: int = 8192
    ) -> None:
        super().__init__()
        self.sink = sink
        self.clock = clock
        self.origin = clock()
        self.batch_size = batch_size
        # The lane whose code is executing now, kept current by the instrumentation so that
        # output and wake-ups can be attributed to it.
        self.current = NO_LANE
        # Seconds the step gate has held a program whose clock stops while held
        # (tracer.step_gate): a model's own clock subtracts them, so they are not program time.
        self.paused_s = 0.0
        self._limit = batch_size
        # The default clock is read by the buffer itself (CLOCK_MONOTONIC in C, which is what
        # perf_counter_ns reads on Linux; perf_counter_ns in pure Python): no Python call.
        self._set_clock(_buffer_clock(clock))
        self._next_seq = 0
        self._lane_count = 0
        self._details_sent = 1
        self._sources: dict[Source, int] = {}
        self._source_rows: list[Source] = [("", 0, "")]
        self._sources_sent = 1
        self._code_lines: dict[CodeType, dict[int, int]] = {}
        self._timer: threading.Thread | None = None
        self._timer_stop = threading.Event()
        self.closed = False
        # Stepping: when set, called after every event as gate(code, lane), with everything up
        # to that event flushed; it may block the traced thread (see set_gate).
        self.gate: Callable[[int, int], None] | None = None

    def _limit_reached(self) -> None:
        """The buffer is full, the flush timer fired, or a gate wants to see every event."""
        gate = self.gate
        last_code, last_lane = self._last_event()
        self.flush()
        if gate is not None:
            gate(last_code, last_lane)

    def detail_row(self, index: int) -> Detail:
        """The interned detail tuple at `index`."""
        row = self._detail_rows[index]
        if row is None:
            raise LookupError(f"detail {index} was a unique row, forgotten once it was sent")
        return row

    def source(self, filename: str, line: int, function: str) -> int:
        key = (filename, line, function)
        index = self._sources.get(key)
        if index is None:
            index = self._sources[key] = len(self._source_rows)
            self._source_rows.append(key)
        return index

    def source_of(self, code: CodeType, line: int | None) -> int:
        """The source index of a line in a code object, cached per code object."""
        lines = self._code_lines.get(code)
        if lines is None:
            lines = self._code_lines[code] = {}
        index = lines.get(line or 0)
        if index is None:
            index = lines[line or 0] = self.source(code.co_filename, line or 0, code.co_qualname)
        return index

    # -- helpers for instrumentations -----------------------------------------------------

    def spawn(
        self,
        name: str,
        kind: str,
        parent: int = NO_LANE,
        source: int = NO_SOURCE,
        extra: Detail = (),
    ) -> int:
        """Declares a new lane and returns its id (lanes are numbered in spawn order).

        No two lanes share a name: a name already taken gets a number ("asyncio loop #2"),
        the first whose numbered name is free too.
        """
        lane = self._lane_count
        self._lane_count += 1
        shown = self._unique_name(name)
        self.record(lane, Code.SPAWN, parent, self.value_row(self.spawn_base(kind, extra), shown),
                    source)
        return lane

    def spawn_base(self, kind: str, extra: Detail = ()) -> int:
        """The detail a SPAWN's name is a value row on: one for every lane of this kind (and
        extra), where a detail per lane would have a program with 100k tasks intern, send,
        check and decode 100k details. It reads as {"name": name, "kind": kind, ...}."""
        return self.detail(("value_key", "name", "kind", kind, *extra))

    def state(
        self,
        lane: int,
        code: int,
        detail: Detail = (),
        other: int = NO_LANE,
        source: int = NO_SOURCE,
    ) -> None:
        self.record(lane, code, other, self.detail(detail) if detail else NO_DETAIL, source)

    def wake(self, woken: int, waker: int, cause: Detail) -> None:
        """An arrow from waker to woken, and the woken lane becomes ready."""
        detail = self.detail(cause)
        self.record(woken, Code.WAKE, waker, detail)
        self.record(woken, Code.READY, waker, detail)

    def switch(self, origin: int, target: int, detail: Detail = ()) -> None:
        self.record(origin, Code.SWITCH, target, self.detail(detail) if detail else NO_DETAIL)

    def end(self, lane: int, result: object = None, error: BaseException | None = None) -> None:
        if error is not None:
            message = str(error)
            if len(message) > 60:
                message = message[:59] + "…"
            detail: Detail = ("error", f"{type(error).__name__}: {message}" if message
                              else type(error).__name__)
        else:
            detail = ("result", short_repr(result))
        self.record(lane, Code.END, NO_LANE, self.detail(detail))

    def annotate(self, lane: int, detail: Detail) -> None:
        self.record(lane, Code.ANNOTATE, NO_LANE, self.detail(detail))

    @property
    def lane_count(self) -> int:
        """How many lanes have been spawned (lanes are numbered 0 to lane_count - 1)."""
        return self._lane_count

    @property
    def event_count(self) -> int:
        return self._next_seq + self._pending_count()

    # -- flushing -------------------------------------------------------------------------

    def flush(self) -> None:
        self._limit = self.batch_size if self.gate is None else 0
        count = self._pending_count()
        if not count:
            return
        first_seq = self._next_seq
        self._next_seq += count
        columns = self._take(self.origin)
        # (a row not sent yet is never None: unique rows are forgotten once sent)
        new_details = cast("list[Detail]", self._detail_rows[self._details_sent :])
        self._details_sent = len(self._detail_rows)
        self._forget_unique_rows()  # new_details holds them until the sink has them
        new_sources = self._source_rows[self._sources_sent :]
        self._sources_sent = len(self._source_rows)
        self.sink.write_batch(Batch(first_seq, columns, new_details, new_sources,
                                    self._take_values()))

    def set_gate(self, gate: Callable[[int, int], None] | None) -> None:
        """Installs (or removes) the stepping gate; costs nothing on the hot path while unset.

        A gate that pauses the program for a while and wants program time to exclude the pause
        adds the pause's length to `origin` before returning (the buffer is empty then, so no
        recorded event shifts).
        """
        self.gate = gate
        self._limit = 0 if gate is not None else self.batch_size

    def stop_flush_timer(self) -> None:
        """Stops the flush thread (gevent must not see it once it patches threading)."""
        self._timer_stop.set()
        if self._timer is not None:
            self._timer.join()
        self._timer = None
        self._timer_stop = threading.Event()

    def start_flush_timer(self, interval: float = 0.05) -> None:
        """Ask for a flush at the next event every `interval` seconds, so live views stay live.

        The timer thread only lowers the flush threshold; the traced thread does the flushing,
        so the buffer is never touched from two threads.
        """
        if self._timer is not None:
            return

        def run() -> None:
            while not self._timer_stop.wait(interval):
                self._limit = 0

        self._timer = threading.Thread(target=run, name="loopscope-flush", daemon=True)
        self._timer.start()

    def close(self) -> None:
        if self.closed:
            return
        self._timer_stop.set()
        self.flush()
        self.closed = True


def _buffer_clock(clock: Clock) -> Clock | None:
    """The clock to hand the buffer: None for "read the default clock yourself"."""
    if clock is not monotonic_clock:
        return clock
    if SPEEDUPS is not None and not SPEEDUPS.HAVE_NATIVE_CLOCK:
        return time.perf_counter_ns
    return None
