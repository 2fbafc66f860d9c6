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

import contextlib
import gc
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from loopscope.tracer.events import LaneKind, Source
from loopscope.tracer.findings import Delay, Finding
from loopscope.tracer.samples import frame_location
from loopscope.tracer.spans import Spans, column_rows
from loopscope.tracer.trace import Trace

DEFAULT_THRESHOLD_NS = 100_000_000
_RUNNING, _READY, _SLEEPING, _DISPATCH = 0, 1, 3, 6
_INT64 = np.iinfo(np.int64)
_FEW_QUERIES = 4  # this many stalls or fewer are each tested against every span


def long_steps(trace: Trace, spans: Spans, threshold_ns: int = DEFAULT_THRESHOLD_NS,
               first: int = 0) -> list[int]:
    """The indices (from `first` on) of running spans at least `threshold_ns` long on lanes
    that share a scheduler's thread. A thread lane (work handed to a pool) runs on a thread of
    its own: however long, it holds up no scheduler; that is what it is for."""
    lanes = column_rows(spans.lane, first)
    found = _long_steps_in(trace, column_rows(spans.state, first), lanes,
                           column_rows(spans.start, first), column_rows(spans.end, first),
                           threshold_ns, np.isin(lanes, _thread_lanes(trace)))
    return [first + int(offset) for offset in found]


def _long_steps_in(trace: Trace, states: npt.NDArray[np.int64], lanes: npt.NDArray[np.int64],
                   starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64],
                   threshold_ns: int, on_threads: npt.NDArray[np.bool_]
                   ) -> npt.NDArray[np.intp]:
    """long_steps over these rows of the spans' columns: their offsets."""
    lengths = ends - _held_from(trace, lanes, starts)
    return np.flatnonzero((states == _RUNNING) & (lengths >= threshold_ns) & ~on_threads)


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
    columns = _Columns(spans)
    found = stalls_at(trace, spans, stall_indices(trace, spans, threshold_ns, columns), columns)
    found.sort(key=lambda finding: (finding.ts_ns or 0, finding.lane or 0))
    return found


def stall_indices(trace: Trace, spans: Spans, threshold_ns: int = DEFAULT_THRESHOLD_NS,
                  columns: _Columns | None = None) -> list[int]:
    """The spans that are stalls, without their findings (a picture marks only the spans):
    the long steps, then the long callbacks."""
    columns = _Columns(spans) if columns is None else columns
    on_threads = np.isin(columns.lanes, _thread_lanes(trace))
    indices: list[int] = _long_steps_in(trace, columns.states, columns.lanes, columns.starts,
                                        columns.ends, threshold_ns, on_threads).tolist()
    # A loop dispatches for as long as the steps it runs take; a long dispatch in which no
    # step ran long is a callback of its own (call_soon, call_later, a hub callback) that
    # held the thread. (A thread-pool lane's step runs elsewhere and is no step of the loop.)
    lengths = columns.ends - columns.starts
    dispatches = np.flatnonzero((columns.states == _DISPATCH) & (lengths >= threshold_ns))
    if len(dispatches):
        running = np.flatnonzero((columns.states == _RUNNING) & ~on_threads)
        inside = _overlap_sums(columns, dispatches, running)
        indices += dispatches[lengths[dispatches] - inside >= threshold_ns].tolist()
    return indices


def stall_of(trace: Trace, spans: Spans, index: int) -> Finding:
    """The finding for one long running span."""
    return stalls_at(trace, spans, [index])[0]


def stalls_at(trace: Trace, spans: Spans, indices: list[int],
              columns: _Columns | None = None) -> list[Finding]:
    """The findings for these long spans, in their order. Their victims are found for all of
    them at once from the spans that overlap each (not a pass over every span per stall)."""
    if not indices:
        return []
    columns = _Columns(spans) if columns is None else columns
    victims = _victims(trace, spans, columns, np.asarray(indices, dtype=np.int64))
    hub = _gevent_hub(trace)
    return [_finding(trace, spans, index, delayed, hub)
            for index, delayed in zip(indices, victims, strict=True)]


def _finding(trace: Trace, spans: Spans, index: int, delayed: tuple[Delay, ...],
             hub: int | None) -> Finding:
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
    name = trace.lane_name(lane)
    where = f" at {frame_location(location)}" if location is not None else ""
    if spans.state[index] == _DISPATCH:
        what = f"{name} ran a callback for {_ms(end - start)} without yielding{where}"
    elif hub is not None and lane != hub:
        what = f"{name} blocked the gevent hub for {_ms(end - start)}{where}"
    else:
        what = f"{name} ran {_ms(end - start)} without yielding{where}"
    if delayed:
        what += f"; delayed {delayed_phrase(delayed)}"
    return Finding(
        rule="stall", title=what, lane=lane, lane_name=name, ts_ns=start,
        duration_ns=end - start, location=location, stack=stack, samples=seen,
        seq=spans.start_seq[index], delayed=delayed,
        facts={"located_by": located_by, "samples_in_step": len(taken)},
    )


# A stall's title names its most delayed lanes, this many; the finding keeps them all.
TITLE_DELAYS = 3


def delayed_phrase(delayed: tuple[Delay, ...]) -> str:
    """"w1 120 ms, w2 80 ms, w3 40 ms and 1,497 more lanes": the most delayed (they come
    first) and how many others, so a stall over a thousand lanes still reads as one line."""
    named = ", ".join(f"{d.name} {_ms(d.total_ns)}" for d in delayed[:TITLE_DELAYS])
    others = len(delayed) - TITLE_DELAYS
    if others <= 0:
        return named
    return f"{named} and {others:,} more lane{'s' if others != 1 else ''}"


class _Columns:
    """The span columns the analysis reads, as numpy arrays read once."""

    def __init__(self, spans: Spans) -> None:
        count = len(spans)  # a live fold may grow meanwhile: read the same rows of each
        self.lanes = column_rows(spans.lane, 0, count)
        self.states = column_rows(spans.state, 0, count)
        self.starts = column_rows(spans.start, 0, count)
        self.ends = column_rows(spans.end, 0, count)


def _victims(trace: Trace, spans: Spans, columns: _Columns, stalls: npt.NDArray[np.int64]
             ) -> list[tuple[Delay, ...]]:
    """Per stall, the other lanes it held up: time ready during the step, and timers due
    during it that fired only after (how late); the loop's own lanes are not victims."""
    lanes, starts, ends = columns.lanes, columns.starts, columns.ends
    stall_starts, stall_ends, stall_lanes = starts[stalls], ends[stalls], lanes[stalls]
    # ready: every (stall, ready span) pair that overlaps, with how much
    ready = np.flatnonzero(columns.states == _READY)
    pair_stall, pair_span = _overlapping_pairs(stall_starts, stall_ends, starts[ready], ends[ready])
    pair_span = ready[pair_span]
    other = lanes[pair_span] != stall_lanes[pair_stall]
    pair_stall, pair_span = pair_stall[other], pair_span[other]
    overlap = (np.minimum(ends[pair_span], stall_ends[pair_stall])
               - np.maximum(starts[pair_span], stall_starts[pair_stall]))
    ready_ns = _sums_by_stall_and_lane(pair_stall, lanes[pair_span], overlap)
    # late timers: sleeps whose deadline fell in the step and that ended after it
    sleeping, deadlines = _deadlines(trace, spans, columns, stall_starts, stall_ends)
    order = np.argsort(deadlines, kind="stable")
    sleeping, deadlines = sleeping[order], deadlines[order]
    first = np.searchsorted(deadlines, stall_starts, "left")
    stop = np.searchsorted(deadlines, stall_ends, "left")
    late_stall, position = _ranges(first, stop)
    late_span, due = sleeping[position], deadlines[position]
    late = ((lanes[late_span] != stall_lanes[late_stall]) & (ends[late_span] > due)
            & (starts[late_span] < stall_ends[late_stall]))
    late_ns = _sums_by_stall_and_lane(late_stall[late], lanes[late_span[late]],
                                      ends[late_span[late]] - due[late])
    # one row per (stall, lane) with its ready and late time, the loop's lanes left out,
    # in each stall's order: most delayed first
    rows = np.concatenate([ready_ns, late_ns])
    stall_of_row, lane_of_row = rows[:, 0], rows[:, 1]
    ready_of_row = np.concatenate([ready_ns[:, 2], np.zeros(len(late_ns), np.int64)])
    late_of_row = np.concatenate([np.zeros(len(ready_ns), np.int64), late_ns[:, 2]])
    order = np.lexsort((lane_of_row, stall_of_row))
    stall_of_row, lane_of_row = stall_of_row[order], lane_of_row[order]
    first = _group_starts(stall_of_row, lane_of_row)
    stall_of_row, lane_of_row = stall_of_row[first], lane_of_row[first]
    ready_of_row = np.add.reduceat(ready_of_row[order], first) if len(first) else ready_of_row
    late_of_row = np.add.reduceat(late_of_row[order], first) if len(first) else late_of_row
    loops = {lane: _is_loop(trace, lane) for lane in np.unique(lane_of_row).tolist()}
    kept = ((ready_of_row != 0) | (late_of_row != 0)) & ~np.isin(
        lane_of_row, [lane for lane, is_loop in loops.items() if is_loop])
    stall_of_row, lane_of_row = stall_of_row[kept], lane_of_row[kept]
    ready_of_row, late_of_row = ready_of_row[kept], late_of_row[kept]
    order = np.lexsort((lane_of_row, -(ready_of_row + late_of_row), stall_of_row))
    names = {lane: trace.lane_name(lane) for lane in loops}
    with _collector_paused():
        delays = [Delay(lane, names[lane], ready, late) for lane, ready, late in zip(
            lane_of_row[order].tolist(), ready_of_row[order].tolist(),
            late_of_row[order].tolist(), strict=True)]
        bounds = np.searchsorted(stall_of_row[order], np.arange(len(stalls) + 1)).tolist()
        return [tuple(delays[bounds[n]:bounds[n + 1]]) for n in range(len(stalls))]


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Holds off the cyclic collector while millions of delays are made: none of them can be
    part of a cycle, but each allocation counts towards a collection, and the collections
    would go over everything the report holds again and again (16 s of a 30 s report of
    4 M delays)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _deadlines(trace: Trace, spans: Spans, columns: _Columns, stall_starts: npt.NDArray[np.int64],
               stall_ends: npt.NDArray[np.int64]
               ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The sleeping spans that overlap some stall and have a deadline, with their deadlines.
    A detail is read only for those: most sleeps of a long run overlap no stall."""
    sleeping = np.flatnonzero(columns.states == _SLEEPING)
    # how many stalls each overlaps: those begun before it ends less those over before it began
    # (exact for stalls that last: an empty one can have no timer fall due in it)
    lasting = stall_starts < stall_ends
    stall_starts, stall_ends = stall_starts[lasting], stall_ends[lasting]
    begun = np.searchsorted(np.sort(stall_starts), columns.ends[sleeping], "left")
    over = np.searchsorted(np.sort(stall_ends), columns.starts[sleeping], "right")
    kept: list[int] = []
    deadlines: list[int] = []
    for index in sleeping[begun > over].tolist():
        deadline = spans.detail_of(index, trace).get("deadline_ns")
        if isinstance(deadline, int) and _INT64.min <= deadline <= _INT64.max:
            kept.append(index)
            deadlines.append(deadline)
    return np.asarray(kept, dtype=np.int64), np.asarray(deadlines, dtype=np.int64)


def _overlap_sums(columns: _Columns, queries: npt.NDArray[np.intp], spans: npt.NDArray[np.intp]
                  ) -> npt.NDArray[np.int64]:
    """Per query span, how long the given spans overlap it, summed."""
    starts, ends = columns.starts, columns.ends
    query, span = _overlapping_pairs(starts[queries], ends[queries], starts[spans], ends[spans])
    span = spans[span]
    overlap = (np.minimum(ends[span], ends[queries][query])
               - np.maximum(starts[span], starts[queries][query]))
    sums = np.zeros(len(queries), dtype=np.int64)
    np.add.at(sums, query, np.maximum(overlap, 0))
    return sums


def _overlapping_pairs(query_starts: npt.NDArray[np.int64], query_ends: npt.NDArray[np.int64],
                       starts: npt.NDArray[np.int64], ends: npt.NDArray[np.int64]
                       ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Every (query, span) pair whose times overlap (the span starts before the query ends and
    ends after it starts), found from sorted starts, so the work grows with the pairs found:
    the spans that start within a query, and the queries that start within a span. A few
    queries (the live view's newly ended steps) test every span instead: no sort."""
    if len(query_starts) <= _FEW_QUERIES:
        found = [np.flatnonzero((ends > query_start) & (starts < query_end))
                 for query_start, query_end in zip(query_starts, query_ends, strict=True)]
        return (np.repeat(np.arange(len(found)), [len(each) for each in found]),
                np.concatenate(found) if found else np.zeros(0, dtype=np.intp))
    by_start = np.argsort(starts, kind="stable")
    sorted_starts = starts[by_start]
    within_query, position = _ranges(np.searchsorted(sorted_starts, query_starts, "left"),
                                     np.searchsorted(sorted_starts, query_ends, "left"))
    starting_within = by_start[position]
    keep = ends[starting_within] > query_starts[within_query]
    queries_by_start = np.argsort(query_starts, kind="stable")
    sorted_query_starts = query_starts[queries_by_start]
    within_span, position = _ranges(np.searchsorted(sorted_query_starts, starts, "right"),
                                    np.searchsorted(sorted_query_starts, ends, "left"))
    return (np.concatenate([within_query[keep], queries_by_start[position]]),
            np.concatenate([starting_within[keep], within_span]))


def _ranges(first: npt.NDArray[np.intp], stop: npt.NDArray[np.intp]
            ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """For ranges first[i]..stop[i], each position in them and the range it is in."""
    counts = np.maximum(stop - first, 0)
    owner = np.repeat(np.arange(len(counts)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    return owner, first[owner] + offsets


def _sums_by_stall_and_lane(stalls: npt.NDArray[np.intp], lanes: npt.NDArray[np.int64],
                            values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Rows of (stall, lane, sum of values), one for each stall and lane that has any."""
    if not len(stalls):
        return np.zeros((0, 3), dtype=np.int64)
    order = np.lexsort((lanes, stalls))
    stalls, lanes, values = stalls[order], lanes[order], values[order]
    first = _group_starts(stalls, lanes)
    return np.stack([stalls[first], lanes[first], np.add.reduceat(values, first)], axis=1)


def _group_starts(stalls: npt.NDArray[np.int64], lanes: npt.NDArray[np.int64]
                  ) -> npt.NDArray[np.intp]:
    """Where each run of equal (stall, lane) begins in rows sorted by them."""
    if not len(stalls):
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate([[True], (stalls[1:] != stalls[:-1])
                                          | (lanes[1:] != lanes[:-1])]))


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
    """A duration for a finding's title: "4.2 ms", "329 ms", "15,648 s" (the sum of many
    lanes' waits can run to hours; milliseconds by the million read as noise)."""
    if ns >= 10_000_000_000:
        return f"{ns / 1e9:,.0f} s"
    return f"{ns / 1e6:.0f} ms" if ns >= 10_000_000 else f"{ns / 1e6:.1f} ms"
