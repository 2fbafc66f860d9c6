"""Stalls: steps that held the thread past a threshold, with their stack and their victims.

A stall is a running span at least `threshold_ns` long (100 ms by default, the figure
asyncio's debug mode uses for slow callbacks) of a lane that shares the scheduler's thread
(not a thread pool's), or a loop lane's dispatch that long in which no
step ran: a plain callback that held the thread. Its line is where the stall sampler found the
thread most often during the step (the innermost frame of the commonest stack); a trace
without samples falls back to the line the step resumed at. Its victims are the other lanes
it held up: time they spent ready but not run during the step, and timers that fell due
during it and fired only afterwards (how late).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from loopscope.tracer.events import LaneKind, Source
from loopscope.tracer.findings import Delay, Finding
from loopscope.tracer.samples import frame_location
from loopscope.tracer.spans import Spans, column_rows
from loopscope.tracer.trace import Trace

DEFAULT_THRESHOLD_NS = 100_000_000
_RUNNING, _READY, _SLEEPING, _DISPATCH = 0, 1, 3, 6


def long_steps(trace: Trace, spans: Spans, threshold_ns: int = DEFAULT_THRESHOLD_NS,
               first: int = 0) -> list[int]:
    """The indices (from `first` on) of running spans at least `threshold_ns` long on lanes
    that share a scheduler's thread. A thread lane (work handed to a pool) runs on a thread of
    its own: however long, it holds up no scheduler; that is what it is for."""
    states = column_rows(spans.state, first)
    lanes = column_rows(spans.lane, first)
    lengths = column_rows(spans.end, first) - _held_from(trace, lanes,
                                                          column_rows(spans.start, first))
    on_threads = np.isin(lanes, _thread_lanes(trace))
    found = np.flatnonzero((states == _RUNNING) & (lengths >= threshold_ns) & ~on_threads)
    return [first + int(offset) for offset in found]


def _held_from(trace: Trace, lanes: npt.NDArray[np.int64], starts: npt.NDArray[np.int64]
               ) -> npt.NDArray[np.int64]:
    """When each step began to hold anything up. A main lane's first step is the program
    starting (imports, set-up) with nothing yet to run beside it: it counts only from the
    moment a second lane on its thread exists, so a slow `import gevent` is no stall."""
    for info in trace.lanes:
        if info.kind == LaneKind.MAIN:
            main = info.id
            break
    else:
        return starts
    # lanes are numbered as they appear, so the first other one is the earliest
    company = next((info.spawn_ts for info in trace.lanes
                    if info.id != main and info.kind != LaneKind.THREAD
                    and info.kind not in LaneKind.LOOP_KINDS), None)
    alone_until = np.iinfo(np.int64).max if company is None else company
    return np.where(lanes == main, np.maximum(starts, alone_until), starts)


def find_stalls(trace: Trace, spans: Spans,
                threshold_ns: int = DEFAULT_THRESHOLD_NS) -> list[Finding]:
    states = column_rows(spans.state)
    starts = column_rows(spans.start)
    ends = column_rows(spans.end)
    lengths = ends - starts
    found = [stall_of(trace, spans, index)
             for index in long_steps(trace, spans, threshold_ns)]
    # A loop dispatches for as long as the steps it runs take; a long dispatch in which no
    # step ran long is a callback of its own (call_soon, call_later, a hub callback) that
    # held the thread. (A thread-pool lane's step runs elsewhere and is no step of the loop.)
    running = (states == _RUNNING) & ~np.isin(column_rows(spans.lane), _thread_lanes(trace))
    for index in np.flatnonzero((states == _DISPATCH) & (lengths >= threshold_ns)):
        start, end = starts[index], ends[index]
        inside = np.clip(np.minimum(ends[running], end) - np.maximum(starts[running], start),
                         0, None)
        if lengths[index] - int(inside.sum()) >= threshold_ns:
            found.append(stall_of(trace, spans, int(index)))
    found.sort(key=lambda finding: (finding.ts_ns or 0, finding.lane or 0))
    return found


def stall_of(trace: Trace, spans: Spans, index: int) -> Finding:
    """The finding for one long running span."""
    lane = spans.lane[index]
    start, end = spans.start[index], spans.end[index]
    samples = trace.samples
    taken = samples.between(start, end, lane) or samples.between(start, end)
    dominant = samples.dominant_stack(taken)
    location: Source | None
    if dominant is not None and dominant[0]:
        stack, seen = dominant
        location = stack[0]
        located_by = "samples"
    else:
        stack, seen = (), 0
        source = spans.source[index]
        location = trace.sources[source] if source else None
        located_by = "resumed-at"
    delayed = tuple(_victims(trace, spans, lane, start, end))
    name = trace.lane_name(lane)
    where = f" at {frame_location(location)}" if location is not None else ""
    hub = _gevent_hub(trace)
    if spans.state[index] == _DISPATCH:
        what = f"{name} ran a callback for {_ms(end - start)} without yielding{where}"
    elif hub is not None and lane != hub:
        what = f"{name} blocked the gevent hub for {_ms(end - start)}{where}"
    else:
        what = f"{name} ran {_ms(end - start)} without yielding{where}"
    if delayed:
        what += f"; delayed {', '.join(f'{d.name} {_ms(d.total_ns)}' for d in delayed)}"
    return Finding(
        rule="stall", title=what, lane=lane, lane_name=name, ts_ns=start,
        duration_ns=end - start, location=location, stack=stack, samples=seen,
        seq=spans.start_seq[index], delayed=delayed,
        facts={"located_by": located_by, "samples_in_step": len(taken)},
    )


def _victims(trace: Trace, spans: Spans, stalled: int, start: int, end: int
             ) -> Iterable[Delay]:
    """Over the spans that overlap the step, in columns: a live view looks for victims
    while the run grows, so this must not walk every span in Python."""
    lanes = np.asarray(spans.lane, dtype=np.int64)
    states = np.asarray(spans.state, dtype=np.int64)
    starts = np.asarray(spans.start, dtype=np.int64)
    ends = np.asarray(spans.end, dtype=np.int64)
    overlapping = (ends > start) & (starts < end) & (lanes != stalled)
    ready = np.flatnonzero(overlapping & (states == _READY))
    ready_ns: dict[int, int] = defaultdict(int)
    for lane, overlap in zip(lanes[ready].tolist(),
                             (np.minimum(ends[ready], end) - np.maximum(starts[ready], start))
                             .tolist(), strict=True):
        ready_ns[lane] += overlap
    late_ns: dict[int, int] = defaultdict(int)
    for index in np.flatnonzero(overlapping & (states == _SLEEPING)).tolist():
        deadline = spans.detail_of(index, trace).get("deadline_ns")
        if isinstance(deadline, int) and start <= deadline < end and ends[index] > deadline:
            late_ns[int(lanes[index])] += int(ends[index]) - deadline
    delays = [Delay(lane, trace.lane_name(lane), ready_ns.get(lane, 0), late_ns.get(lane, 0))
              for lane in sorted(set(ready_ns) | set(late_ns))
              if not _is_loop(trace, lane) and (ready_ns.get(lane) or late_ns.get(lane))]
    delays.sort(key=lambda delay: (-delay.total_ns, delay.lane))
    return delays


def _thread_lanes(trace: Trace) -> list[int]:
    return [info.id for info in trace.lanes if info.kind == LaneKind.THREAD]


def _is_loop(trace: Trace, lane: int) -> bool:
    try:
        return trace.lane_info(lane).kind in LaneKind.LOOP_KINDS
    except (IndexError, StopIteration):
        return False


def _gevent_hub(trace: Trace) -> int | None:
    for info in trace.lanes:
        if info.kind == LaneKind.LOOP and info.name == "gevent hub":
            return info.id
    return None


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.0f} ms" if ns >= 10_000_000 else f"{ns / 1e6:.1f} ms"
