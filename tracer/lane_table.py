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

from loopscope.tracer.events import STATE_NAMES, Code
from loopscope.tracer.spans import Spans
from loopscope.tracer.trace import Trace

WAITING_STATES = ("io-wait", "sleeping", "blocked")


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
    status: str  # "ended", "failed" (ended with an error) or "alive" (never ended)
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


def spread(durations: array[int] | list[int]) -> Spread:
    count = len(durations)
    if not count:
        return Spread()
    values = (np.frombuffer(durations, dtype=np.int64) if isinstance(durations, array)
              else np.asarray(durations, dtype=np.int64))
    # a partial sort puts just the three ranks in place: linear, for a live table's sake
    ranks = sorted({_rank(count, 50), _rank(count, 99), count - 1})
    placed = np.partition(values, ranks)
    return Spread(count, int(placed[_rank(count, 50)]), int(placed[_rank(count, 99)]),
                  int(placed[count - 1]))


def _rank(count: int, percent: int) -> int:
    return max(0, math.ceil(percent * count / 100) - 1)


@dataclass
class _LaneFold:
    spans_seen: int = 0
    time_in: list[int] = field(default_factory=lambda: [0] * (max(STATE_NAMES) + 1))
    steps: array[int] = field(default_factory=lambda: array("q"))
    latencies: array[int] = field(default_factory=lambda: array("q"))
    ready_since: int | None = None
    wakes_given: int = 0
    wakes_received: int = 0
    self_wakes: int = 0
    status: str = "alive"
    first_ns: int | None = None
    last_ns: int = 0
    cached: LaneRow | None = None


class LaneTable:
    """Feed it with `update(trace, spans)` as often as wanted; `rows()` gives the table."""

    def __init__(self) -> None:
        self._start_over(None, None)

    def _start_over(self, trace: Trace | None, spans: Spans | None) -> None:
        self._lanes: dict[int, _LaneFold] = {}
        self._events_seen = 0
        self._trace = trace
        self._spans = spans

    def update(self, trace: Trace, spans: Spans) -> None:
        if trace is not self._trace or spans is not self._spans:
            self._start_over(trace, spans)  # another run, or its spans folded anew
        self._fold_events(trace)
        state_col, start_col, end_col = spans.state, spans.start, spans.end
        for lane, indices in spans.by_lane.items():
            fold = self._fold(lane)
            if fold.spans_seen == len(indices):
                continue
            fold.cached = None
            for index in indices[fold.spans_seen :]:
                state = state_col[index]
                start, end = start_col[index], end_col[index]
                if fold.first_ns is None:
                    fold.first_ns = start
                fold.last_ns = max(fold.last_ns, end)
                fold.time_in[state] += end - start
                if state == Code.RUNNING:
                    fold.steps.append(end - start)
                    if fold.ready_since is not None:
                        fold.latencies.append(start - fold.ready_since)
                        fold.ready_since = None
                elif state == Code.READY:
                    if fold.ready_since is None:
                        fold.ready_since = start
                else:
                    fold.ready_since = None
            fold.spans_seen = len(indices)

    def _fold(self, lane: int) -> _LaneFold:
        fold = self._lanes.get(lane)
        if fold is None:
            fold = self._lanes[lane] = _LaneFold()
        return fold

    def _fold_events(self, trace: Trace) -> None:
        code_col, lane_col, other_col = trace.code, trace.lane, trace.other
        wake, switch, ready, end = Code.WAKE, Code.SWITCH, Code.READY, Code.END
        for seq in range(self._events_seen, len(trace)):
            code = code_col[seq]
            if code in (wake, switch):
                # a wake is drawn from `other` (the waker) to `lane`; a switch the other way
                giver, taker = ((other_col[seq], lane_col[seq]) if code == wake
                                else (lane_col[seq], other_col[seq]))
                if giver >= 0:
                    self._fold(giver).wakes_given += 1
                    self._fold(giver).cached = None
                if taker >= 0:
                    self._fold(taker).wakes_received += 1
                    self._fold(taker).cached = None
            elif code == ready and other_col[seq] == lane_col[seq]:
                fold = self._fold(lane_col[seq])
                fold.self_wakes += 1
                fold.cached = None
            elif code == end:
                fold = self._fold(lane_col[seq])
                fold.status = "failed" if "error" in trace.details[trace.detail[seq]] else "ended"
                fold.cached = None
        self._events_seen = len(trace)

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
                    steps=spread(fold.steps),
                    latency=spread(fold.latencies),
                    wakes_given=fold.wakes_given,
                    wakes_received=fold.wakes_received,
                    self_wakes=fold.self_wakes,
                    first_ns=fold.first_ns or 0,
                    last_ns=fold.last_ns,
                )
            rows.append(fold.cached)
        return rows

    def step_durations(self, lane: int | None = None) -> list[int]:
        """Every step's duration (one lane's, or all lanes'): for a histogram."""
        folds = self._lanes.values() if lane is None else [self._fold(lane)]
        return [d for fold in folds for d in fold.steps]

    def latencies(self, lane: int | None = None) -> list[int]:
        folds = self._lanes.values() if lane is None else [self._fold(lane)]
        return [d for fold in folds for d in fold.latencies]


def lane_rows(trace: Trace, spans: Spans) -> list[LaneRow]:
    """The table of a finished trace, in spawn order."""
    table = LaneTable()
    table.update(trace, spans)
    return table.rows()


def by_cost(rows: list[LaneRow]) -> list[LaneRow]:
    """Costliest first: the time a lane's code held the thread, then its scheduling delays."""
    return sorted(rows, key=lambda row: (-row.cost_ns, -row.latency.max, row.lane))
