"""The task table: one row per lane with where its time went and how its steps were spread.

`LaneTable` folds a trace's spans (tracer.spans) lane by lane and keeps up as they grow, so the
report and the app's live Tasks view read the same rows; feeding it again costs only the spans
and events new since the last time. Its figures agree with tracer.stats (the details pane's):
a step is a running span, and scheduling latency is the time from becoming ready to the next
running span, a second READY while queued not restarting the wait.

Per lane: time in each state, steps and their p50/p99/max, scheduling latency p50/p99/max,
the wake and switch arrows it gave and received, and whether it ended. Percentiles are
nearest-rank: p99 of 10 steps is the longest one.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from loopscope.tracer.events import STATE_NAMES, Code, ended_cancelled
from loopscope.tracer.spans import Spans, column_rows
from loopscope.tracer.trace import Trace

WAITING_STATES = ("io-wait", "sleeping", "blocked")


def _new_rows(first: int, stop: int, *columns: array[int]) -> list[npt.NDArray[np.int64]]:
    """Rows `first` to `stop` of each column, as int64 arrays."""
    return [column_rows(column, first, stop) for column in columns]


@dataclass(frozen=True)
class Spread:
    """How a set of durations is spread (ns); all zero when there are none."""

    count: int = 0
    p50: int = 0
    p99: int = 0
    max: int = 0


@dataclass(frozen=True)
class LaneRow:
    lane: int
    name: str
    kind: str
    # "ended", "cancelled", "failed" (ended with another error) or "alive" (never ended)
    status: str
    time_in: dict[str, int]  # ns per state name, every state of STATE_NAMES present
    steps: Spread  # running spans
    latency: Spread  # ready -> running
    wakes_given: int  # wake and switch arrows drawn from this lane
    wakes_received: int  # ... and to it
    self_wakes: int  # times it made itself ready (asyncio.sleep(0), a yield to the loop)
    first_ns: int
    last_ns: int

    @property
    def running_ns(self) -> int:
        return self.time_in["running"]

    @property
    def waiting_ns(self) -> int:
        return sum(self.time_in[state] for state in WAITING_STATES)

    @property
    def cost_ns(self) -> int:
        """What the lane cost the thread: the time its own code ran (a loop's dispatching)."""
        return self.time_in["running"] + self.time_in["dispatch"]


def spread(durations: npt.NDArray[np.int64] | list[int]) -> Spread:
    count = len(durations)
    if not count:
        return Spread()
    values = np.asarray(durations, dtype=np.int64)
    # a partial sort puts just the three ranks in place: linear, for a live table's sake
    ranks = sorted({_rank(count, 50), _rank(count, 99), count - 1})
    placed = np.partition(values, ranks)
    return Spread(count, int(placed[_rank(count, 50)]), int(placed[_rank(count, 99)]),
                  int(placed[count - 1]))


def _rank(count: int, percent: int) -> int:
    return max(0, math.ceil(percent * count / 100) - 1)


IntArray = npt.NDArray[np.int64]
_EMPTY: IntArray = np.empty(0, dtype=np.int64)
_STATE_SLOTS = max(STATE_NAMES) + 1


@dataclass
class _LaneFold:
    time_in: list[int] = field(default_factory=lambda: [0] * _STATE_SLOTS)
    steps: list[IntArray] = field(default_factory=list)  # chunks, one per update
    latencies: list[IntArray] = field(default_factory=list)
    ready_since: int | None = None  # start of the ready period not yet ended by a step
    wakes_given: int = 0
    wakes_received: int = 0
    self_wakes: int = 0
    status: str = "alive"
    first_ns: int | None = None
    last_ns: int = 0
    cached: LaneRow | None = None

    def all_steps(self) -> IntArray:
        if len(self.steps) > 1:
            self.steps[:] = [np.concatenate(self.steps)]
        return self.steps[0] if self.steps else _EMPTY

    def all_latencies(self) -> IntArray:
        if len(self.latencies) > 1:
            self.latencies[:] = [np.concatenate(self.latencies)]
        return self.latencies[0] if self.latencies else _EMPTY


class LaneTable:
    """Feed it with `update(trace, spans)` as often as wanted; `rows()` gives the table.

    Each update folds only the spans closed and the events recorded since the last one, with
    numpy over the new part of the columns: a live view pays for what is new, not for the run.
    """

    def __init__(self) -> None:
        self._start_over(None, None)

    def _start_over(self, trace: Trace | None, spans: Spans | None) -> None:
        self._lanes: dict[int, _LaneFold] = {}
        self._events_seen = 0
        self._spans_seen = 0
        self._trace = trace
        self._spans = spans

    def update(self, trace: Trace, spans: Spans) -> None:
        if trace is not self._trace or spans is not self._spans:
            self._start_over(trace, spans)  # another run, or its spans folded anew
        self._fold_events(trace)
        self._fold_spans(spans)

    def _fold(self, lane: int) -> _LaneFold:
        fold = self._lanes.get(lane)
        if fold is None:
            fold = self._lanes[lane] = _LaneFold()
        return fold

    def _fold_spans(self, spans: Spans) -> None:
        first, stop = self._spans_seen, len(spans)
        if first >= stop:
            return
        self._spans_seen = stop
        # Spans close in time order on each lane, so a stable sort by lane keeps each lane's
        # new spans in their order.
        lanes, states, starts, ends = _new_rows(
            first, stop, spans.lane, spans.state, spans.start, spans.end)
        order = np.argsort(lanes, kind="stable")
        lanes, states, starts, ends = lanes[order], states[order], starts[order], ends[order]
        durations = ends - starts
        count = len(lanes)
        positions = np.arange(count)
        same_lane_before = np.zeros(count, dtype=bool)
        same_lane_before[1:] = lanes[1:] == lanes[:-1]
        ready = states == Code.READY
        running = states == Code.RUNNING
        # the start of the ready period each READY span belongs to: a second READY while
        # queued does not restart the wait
        ready_before = np.zeros(count, dtype=bool)
        ready_before[1:] = ready[:-1] & same_lane_before[1:]
        opens_period = ready & ~ready_before
        period_first = np.maximum.accumulate(np.where(opens_period, positions, 0))
        period_start = starts[period_first]
        boundaries = np.flatnonzero(~same_lane_before)
        for at, end in zip(boundaries, [*boundaries[1:], count], strict=True):
            lane = int(lanes[at])
            fold = self._fold(lane)
            fold.cached = None
            carried = fold.ready_since
            if carried is not None and ready[at]:  # the lane's ready period goes on
                period_start[at:end][period_first[at:end] == at] = carried
            np.add.at(time_in := np.zeros(_STATE_SLOTS, dtype=np.int64), states[at:end],
                      durations[at:end])
            fold.time_in = [total + int(more) for total, more in zip(fold.time_in, time_in,
                                                                      strict=True)]
            if fold.first_ns is None:
                fold.first_ns = int(starts[at])
            fold.last_ns = max(fold.last_ns, int(ends[at:end].max()))
            steps = running[at:end]
            if steps.any():
                fold.steps.append(durations[at:end][steps])
            # a step ends a ready period begun by the span before it (or before this update)
            waited = steps & ready_before[at:end]
            latencies = starts[at:end][waited] - period_start[at:end][np.flatnonzero(waited) - 1]
            if running[at] and carried is not None:
                latencies = np.concatenate(([int(starts[at]) - carried], latencies))
            if len(latencies):
                fold.latencies.append(latencies.astype(np.int64))
            last = end - 1
            fold.ready_since = int(period_start[last]) if ready[last] else None

    def _fold_events(self, trace: Trace) -> None:
        first, stop = self._events_seen, len(trace)
        if first >= stop:
            return
        self._events_seen = stop
        codes, lanes, others = _new_rows(first, stop, trace.code, trace.lane, trace.other)
        wakes, switches = codes == Code.WAKE, codes == Code.SWITCH
        # a wake is drawn from `other` (the waker) to `lane`; a switch the other way
        givers = np.concatenate((others[wakes], lanes[switches]))
        takers = np.concatenate((lanes[wakes], others[switches]))
        themselves = lanes[(codes == Code.READY) & (others == lanes)]
        for counted, attribute in ((givers, "wakes_given"), (takers, "wakes_received"),
                                   (themselves, "self_wakes")):
            counted = counted[counted >= 0]
            if not len(counted):
                continue
            per_lane = np.bincount(counted)
            for lane in np.flatnonzero(per_lane):
                fold = self._fold(int(lane))
                setattr(fold, attribute, getattr(fold, attribute) + int(per_lane[lane]))
                fold.cached = None
        for offset in np.flatnonzero(codes == Code.END):
            seq = first + int(offset)
            fold = self._fold(trace.lane[seq])
            detail = trace.details[trace.detail[seq]]
            fold.status = ("cancelled" if ended_cancelled(detail)
                           else "failed" if "error" in detail else "ended")
            fold.cached = None

    def rows(self) -> list[LaneRow]:
        """Every lane seen so far, in spawn order."""
        trace = self._trace
        if trace is None:
            return []
        rows = []
        for info in trace.lanes:
            fold = self._fold(info.id)
            if fold.cached is None:
                fold.cached = LaneRow(
                    lane=info.id,
                    name=info.name,
                    kind=info.kind,
                    status=fold.status,
                    time_in={name: fold.time_in[code] for code, name in STATE_NAMES.items()},
                    steps=spread(fold.all_steps()),
                    latency=spread(fold.all_latencies()),
                    wakes_given=fold.wakes_given,
                    wakes_received=fold.wakes_received,
                    self_wakes=fold.self_wakes,
                    first_ns=fold.first_ns or 0,
                    last_ns=fold.last_ns,
                )
            rows.append(fold.cached)
        return rows

    def step_durations(self, lane: int | None = None) -> IntArray:
        """Every step's duration (one lane's, or all lanes'): for a histogram."""
        folds = self._lanes.values() if lane is None else [self._fold(lane)]
        return np.concatenate([_EMPTY, *(fold.all_steps() for fold in folds)])

    def latencies(self, lane: int | None = None) -> IntArray:
        folds = self._lanes.values() if lane is None else [self._fold(lane)]
        return np.concatenate([_EMPTY, *(fold.all_latencies() for fold in folds)])


def lane_rows(trace: Trace, spans: Spans) -> list[LaneRow]:
    """The table of a finished trace, in spawn order."""
    table = LaneTable()
    table.update(trace, spans)
    return table.rows()


def by_cost(rows: list[LaneRow]) -> list[LaneRow]:
    """Costliest first: the time a lane's code held the thread, then its scheduling delays."""
    return sorted(rows, key=lambda row: (-row.cost_ns, -row.latency.max, row.lane))
