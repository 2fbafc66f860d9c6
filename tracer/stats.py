"""Per-lane statistics: where a lane's time went, how long its steps were, how long it queued.

Pure functions over a trace's spans (finished or still growing), so the details pane, the CLI
and tests all get the same figures. Scheduling latency is the time from the moment a lane
became ready (woken) to the moment it next started running: how long the scheduler kept it
waiting in the queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loopscope.tracer.events import STATE_NAMES, Code
from loopscope.tracer.spans import Spans
from loopscope.tracer.trace import Trace


@dataclass(frozen=True)
class LaneStats:
    lane: int
    name: str
    kind: str
    # Nanoseconds spent in each state, keyed by state name ("running", "io-wait", ...); every
    # state of STATE_NAMES is present, zero when the lane never was in it.
    time_in: dict[str, int] = field(default_factory=dict)
    first_ns: int = 0  # start of the lane's first span
    last_ns: int = 0  # end of its last span
    steps: int = 0  # number of running spans
    longest_step_ns: int = 0
    longest_step_span: int = -1  # span index of the longest step, -1 when there is none
    latencies: int = 0  # number of ready -> running hand-overs measured
    total_latency_ns: int = 0
    worst_latency_ns: int = 0
    worst_latency_span: int = -1  # span index of the running span that waited longest

    @property
    def lifetime_ns(self) -> int:
        return self.last_ns - self.first_ns

    @property
    def mean_latency_ns(self) -> float | None:
        return self.total_latency_ns / self.latencies if self.latencies else None

    @property
    def mean_step_ns(self) -> float | None:
        return self.time_in.get("running", 0) / self.steps if self.steps else None


def lane_stats(trace: Trace, spans: Spans, lane: int) -> LaneStats:
    """The statistics of one lane over the spans closed so far."""
    info = _lane_info(trace, lane)
    time_in = dict.fromkeys(STATE_NAMES.values(), 0)
    indices = spans.by_lane.get(lane, ())
    state_col, start_col, end_col = spans.state, spans.start, spans.end
    steps = longest = 0
    longest_span = -1
    latencies = total_latency = worst_latency = 0
    worst_span = -1
    # Start of the ready period not yet ended by a running span, or None when not queued.
    ready_since: int | None = None
    for index in indices:
        state = state_col[index]
        start, end = start_col[index], end_col[index]
        duration = end - start
        time_in[STATE_NAMES[state]] += duration
        if state == Code.RUNNING:
            steps += 1
            if duration > longest or longest_span == -1:
                longest, longest_span = duration, index
            if ready_since is not None:
                latency = start - ready_since
                latencies += 1
                total_latency += latency
                if latency > worst_latency or worst_span == -1:
                    worst_latency, worst_span = latency, index
                ready_since = None
        elif state == Code.READY:
            if ready_since is None:  # a second READY while queued does not restart the wait
                ready_since = start
        else:
            ready_since = None  # suspended again before it ran: that wake did not lead to a step
    return LaneStats(
        lane=lane,
        name=info[0],
        kind=info[1],
        time_in=time_in,
        first_ns=start_col[indices[0]] if indices else 0,
        last_ns=max((end_col[i] for i in indices), default=0),
        steps=steps,
        longest_step_ns=longest,
        longest_step_span=longest_span,
        latencies=latencies,
        total_latency_ns=total_latency,
        worst_latency_ns=worst_latency,
        worst_latency_span=worst_span,
    )


def all_lane_stats(trace: Trace, spans: Spans) -> list[LaneStats]:
    """Statistics for every lane, in spawn order."""
    return [lane_stats(trace, spans, info.id) for info in trace.lanes]


def _lane_info(trace: Trace, lane: int) -> tuple[str, str]:
    try:
        info = trace.lane_info(lane)
    except (IndexError, StopIteration):
        return f"lane {lane}", ""
    return info.name, info.kind
