"""The lints: patterns in a finished trace that are usually mistakes (see tracer.findings).

Each is a pure function of the trace, its spans and the task table. Three read the run's
stderr (kept in `trace.meta["stderr"]`) because that is where Python itself reports them, and
the events cannot know: a task collected while pending, a task's exception nobody retrieved,
a coroutine never awaited. The lines are matched to lanes by the task's name.
"""

from __future__ import annotations

import re
from array import array
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from loopscope.tracer.events import Code, LaneKind, Source
from loopscope.tracer.findings import Finding
from loopscope.tracer.lane_table import LaneRow
from loopscope.tracer.spans import Spans, column_rows
from loopscope.tracer.stalls import _ms, long_steps
from loopscope.tracer.trace import Trace
from loopscope.tracer.values import VALUE_ROW


@dataclass(frozen=True)
class LintLimits:
    """Where a pattern becomes a finding. Chosen so that the built-in scenarios, which are
    written to be correct, report nothing."""

    self_wakes: int = 200  # self-wakes (and sub-millisecond sleeps) by one lane
    tiny_sleep_s: float = 0.001  # a sleep shorter than this counts as busy polling
    contention_waits: int = 4  # waits on one primitive ...
    contention_lanes: int = 2  # ... by this many lanes ...
    contention_ns: int = 50_000_000  # ... adding up to this long
    spin_polls: int = 200  # empty zero-timeout polls with no lane running in between
    pool_idle_ns: int = 100_000_000  # the loop idle this long while its pool work ran ...
    pool_idle_share: float = 0.8  # ... and for this much of that work's time
    late_timer_ns: int = 50_000_000  # a timer that fired this late ...
    late_timers: int = 10  # ... this many of them on one loop ...
    overload_busy_share: float = 0.8  # ... with the loop busy this much of their lateness


GEVENT_HUB = "gevent hub"  # the gevent model's loop lane (tracer.models.gevent_model)
CONTENDED = ("Lock.acquire", "Semaphore.acquire", "BoundedSemaphore.acquire", "RLock.acquire",
             "Queue.put", "JoinableQueue.put", "LifoQueue.put", "PriorityQueue.put",
             "Condition.wait", "CapacityLimiter.acquire")
_TASK_KINDS = (LaneKind.TASK, LaneKind.GREENLET)


def run_lints(trace: Trace, spans: Spans, rows: list[LaneRow],
              limits: LintLimits = LintLimits()) -> list[Finding]:
    findings: list[Finding] = []
    if trace.meta.get("status") in (None, "ok", "error"):  # a stopped run was cut short
        findings += pending_at_exit(trace, spans, rows)
    findings += from_stderr(trace, spans)
    findings += self_wake_storms(trace, spans, rows, limits)
    findings += contention(trace, spans, limits)
    findings += zero_timeout_spins(trace, spans, limits)
    findings += idle_on_thread_pool(trace, spans, limits)
    findings += overloaded_loops(trace, spans, limits)
    return findings


# -- pending at exit ------------------------------------------------------------------------


def pending_at_exit(trace: Trace, spans: Spans, rows: list[LaneRow]) -> list[Finding]:
    """Task and greenlet lanes that never ended, or that asyncio.run cancelled on its way out
    (they ended with CancelledError after the loop's first task, the program's main, ended)."""
    ends = _end_events(trace)
    main_end = _main_task_ends(trace, ends)
    findings = []
    for row in rows:
        if row.kind not in _TASK_KINDS:
            continue
        end = ends.get(row.lane)
        if end is None:
            cut_at, how = trace.duration_ns, "was still pending when the program ended"
        else:
            loop_main_end = main_end.get(_loop_of(trace, row.lane))
            error = str(trace.details[trace.detail[end]].get("error", ""))
            if (loop_main_end is None or not error.startswith("CancelledError")
                    or trace.ts[end] <= loop_main_end[1] or row.lane == loop_main_end[0]):
                continue
            cut_at, how = loop_main_end[1], "was still pending when main returned and was cancelled"
        last_wait, line, stopped_there = _last_wait(trace, spans, row.lane, cut_at)
        if line is None:
            where = f" ({last_wait})"
        elif stopped_there:
            where = f" ({last_wait} at {_short(line)})"
        else:
            where = f" ({last_wait}; its last step began at {_short(line)})"
        findings.append(Finding(
            rule="pending-at-exit", title=f"{row.name} {how}{where}", lane=row.lane,
            lane_name=row.name, ts_ns=cut_at, duration_ns=0, location=line,
            seq=_span_seq_at(spans, row.lane, cut_at),
            facts={"waiting": last_wait},
        ))
    return findings


def _span_seq_at(spans: Spans, lane: int | None, ts: int | None) -> int | None:
    """The seq that began the lane's span in progress at `ts` (its last span when `ts` is
    past its end): the span the app marks and selects for a finding."""
    if lane is None:
        return None
    indices = spans.by_lane.get(lane)
    if indices is None or not len(indices):
        return None
    chosen = indices[-1]
    if ts is not None:
        # column-wise (numpy lets go of the GIL): the report runs beside the window
        at = column_rows(indices)
        inside = np.flatnonzero((_rows_of(spans.start, at) <= ts) & (ts < _rows_of(spans.end, at)))
        if len(inside):
            chosen = int(at[inside[0]])
    return spans.start_seq[chosen]


def _rows_of(column: Any, indices: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """column[indices] for a spans' column, read through its buffer without copying it."""
    return np.frombuffer(column, dtype=np.dtype(column.typecode))[indices].astype(np.int64)


def _end_events(trace: Trace) -> dict[int, int]:
    """Lane -> the seq of its END event."""
    codes = np.array(trace.code, dtype=np.int64)
    return {trace.lane[int(seq)]: int(seq) for seq in np.flatnonzero(codes == Code.END)}


def _loop_of(trace: Trace, lane: int) -> int | None:
    """The loop lane a task descends from (through its spawn parents)."""
    seen = set()
    while lane >= 0 and lane not in seen:
        seen.add(lane)
        try:
            info = trace.lane_info(lane)
        except (IndexError, StopIteration):
            return None
        if info.kind == LaneKind.LOOP:
            return lane
        lane = info.parent
    return None


def _main_task_ends(trace: Trace, ends: dict[int, int]) -> dict[int | None, tuple[int, int]]:
    """Per loop lane: (lane, end ts) of its first task, the one asyncio.run runs."""
    mains: dict[int | None, tuple[int, int]] = {}
    for info in trace.lanes:
        if info.kind == LaneKind.TASK and info.parent >= 0 and info.parent not in mains:
            parent = trace.lane_info(info.parent)
            if parent.kind == LaneKind.LOOP and info.id in ends:
                mains[info.parent] = (info.id, trace.ts[ends[info.id]])
    return mains


def _last_wait(trace: Trace, spans: Spans, lane: int, before: int
               ) -> tuple[str, Source | None, bool]:
    """What the lane was last waiting in before `before`; the line it had stopped at, which
    only a step after `before` tells (it resumed there), else the line its last step began
    at; and which of the two that line is. Column-wise over the lane's spans: the report runs
    beside the window, and numpy lets go of the GIL where a Python loop would hold it."""
    at = column_rows(spans.by_lane.get(lane, array("i")))
    states, starts = _rows_of(spans.state, at), _rows_of(spans.start, at)
    sources = _rows_of(spans.source, at)
    waiting, line = "waiting", None
    # the spans up to the first one that starts after `before`
    later = np.flatnonzero(starts > before)
    upto = int(later[0]) if len(later) else len(at)
    waits = np.flatnonzero(np.isin(states[:upto], _WAIT_STATES))
    if len(waits):
        last = int(waits[-1])
        state = int(states[last])
        if state == Code.SLEEPING:
            waiting = "sleeping"
        elif state == Code.IO_WAIT:
            waiting = "waiting for I/O"
        else:
            waiting = f"blocked on {spans.detail_of(int(at[last]), trace).get('on', '?')}"
    stopped_there = False
    steps = np.flatnonzero((states == Code.RUNNING) & (sources != 0))
    resumed = steps[starts[steps] >= before]
    if len(resumed):
        line, stopped_there = trace.sources[int(sources[resumed[0]])], True
    elif len(steps):
        line = trace.sources[int(sources[steps[-1]])]
    return waiting, line, stopped_there


_WAIT_STATES = np.array([Code.SLEEPING, Code.IO_WAIT, Code.BLOCKED], dtype=np.int64)


# -- what Python itself said on stderr --------------------------------------------------------

# The coroutine is "running at" the line it waits at, or, when the collector closed it before
# the task in the same collection (as it does untraced when the program drops both), "done,
# defined at" its def line.
_DESTROYED = re.compile(r"Task was destroyed but it is pending!\s*\ntask: <Task pending "
                        r"name='([^']*)' coro=<([^>]*?) (running|done, defined) at "
                        r"([^>]*?):(\d+)>")
_NOT_RETRIEVED = re.compile(r"Task exception was never retrieved\s*\nfuture: <Task finished "
                            r"name='([^']*)'[^\n]*?exception=([^\n]*)>\n((?:[ \t].*\n|Traceback"
                            r".*\n)*)")
_NEVER_AWAITED = re.compile(r"^(.*?):(\d+): RuntimeWarning: coroutine '([^']*)' was never "
                            r"awaited", re.MULTILINE)
_TRACEBACK_LINE = re.compile(r'File "([^"]*)", line (\d+), in (\S+)')


def from_stderr(trace: Trace, spans: Spans) -> list[Finding]:
    stderr = str(trace.meta.get("stderr") or "")
    if not stderr:
        return []
    findings = []
    ends = _end_events(trace)
    for match in _DESTROYED.finditer(stderr):
        name, coro, how, path, line = match.groups()
        lane = _lane_by_task_name(trace, name)
        location: Source | None = (path, int(line), coro)
        where = f"{coro} stopped at {_short(location)}"
        if how != "running":  # Python no longer says where: the trace says what it can
            last_wait, seen, _ = ("waiting", None, False) if lane is None else _last_wait(
                trace, spans, lane, trace.duration_ns)
            location = seen or location
            where = (f"{last_wait}; its last step began at {_short(seen)}" if seen
                     else f"{coro}, defined at {_short(location)}")
        findings.append(Finding(
            rule="destroyed-pending",
            title=f"{_lane_label(trace, lane, name)} was collected while still pending "
                  f"({where})",
            lane=lane, lane_name=None if lane is None else trace.lane_name(lane),
            ts_ns=None, duration_ns=0, location=location,
            seq=_span_seq_at(spans, lane, None),
        ))
    for match in _NOT_RETRIEVED.finditer(stderr):
        name, exception, traceback_text = match.groups()
        lane = _lane_by_task_name(trace, name)
        frames = _TRACEBACK_LINE.findall(traceback_text)
        location = ((frames[-1][0], int(frames[-1][1]), frames[-1][2])
                    if frames else None)
        end = ends.get(lane) if lane is not None else None
        findings.append(Finding(
            rule="exception-never-retrieved",
            title=f"{_lane_label(trace, lane, name)} failed with {exception} and nobody "
                  "retrieved it" + (f" (raised at {_short(location)})" if location else ""),
            lane=lane, lane_name=None if lane is None else trace.lane_name(lane),
            ts_ns=None if end is None else trace.ts[end], duration_ns=0, location=location,
            seq=_span_seq_at(spans, lane, None), facts={"exception": exception},
        ))
    for match in _NEVER_AWAITED.finditer(stderr):
        path, line, coro = match.groups()
        findings.append(Finding(
            rule="never-awaited",
            title=f"coroutine {coro}() was created at {_short((path, int(line), ''))} and "
                  "never awaited: its body never ran",
            lane=None, lane_name=None, ts_ns=None, duration_ns=0,
            location=(path, int(line), coro),
        ))
    return findings


def _lane_by_task_name(trace: Trace, name: str) -> int | None:
    for info in trace.lanes:
        if info.kind == LaneKind.TASK and (info.name == name or info.name.endswith(f"({name})")):
            return info.id
    return None


def _lane_label(trace: Trace, lane: int | None, name: str) -> str:
    return f"task {name}" if lane is None else trace.lane_name(lane)


# -- self-waking lanes --------------------------------------------------------------------------


def self_wake_storms(trace: Trace, spans: Spans, rows: list[LaneRow],
                     limits: LintLimits) -> list[Finding]:
    """Lanes that made themselves ready (or slept less than a millisecond) over and over;
    the cost is the time those round trips through the scheduler took. A greenlet that
    switches to the gevent hub and is back within a millisecond, nobody else having run,
    counts too: that is `gevent.sleep(0)` spinning (the hub runs the callback that switches
    back to it), which the gevent model records as a plain wait on the hub."""
    findings = []
    states = np.array(spans.state, dtype=np.int64)
    details = _as_bases(trace, np.array(spans.detail, dtype=np.int64))
    lengths = np.array(spans.end, dtype=np.int64) - np.array(spans.start, dtype=np.int64)
    itself = _details_where(trace, lambda d: d.get("cause") == "self")
    tiny = _details_where(trace, lambda d: isinstance(d.get("delay_s"), int | float)
                          and d["delay_s"] < limits.tiny_sleep_s)
    hubs = {info.name for info in trace.lanes if info.kind == LaneKind.LOOP
            and info.name.startswith(GEVENT_HUB)}
    on_hub = _details_where(trace, lambda d: d.get("on") in hubs)
    rounds_mask = (((states == Code.READY) & np.isin(details, itself))
                   | ((states == Code.SLEEPING) & np.isin(details, tiny))
                   | _hub_spins(trace, spans, states, lengths, np.isin(details, on_hub),
                                limits))
    per_lane = np.bincount(np.array(spans.lane, dtype=np.int64)[rounds_mask],
                           minlength=len(trace.lanes) + 1)
    for row in rows:
        if row.kind in LaneKind.LOOP_KINDS or row.lane >= len(per_lane) or \
                per_lane[row.lane] < limits.self_wakes:
            continue
        rounds = round_trip_ns = 0
        first = last = None
        line = None
        indices = spans.by_lane.get(row.lane, ())
        for position, index in enumerate(indices):
            if not rounds_mask[index]:
                continue
            rounds += 1
            first = spans.start[index] if first is None else first
            # the round trip: from giving the thread up to running again
            for later in indices[position + 1 :]:
                if spans.state[later] == Code.RUNNING:
                    round_trip_ns += spans.start[later] - spans.start[index]
                    last = spans.start[later]
                    if line is None and spans.source[later]:
                        line = trace.sources[spans.source[later]]
                    break
        if rounds < limits.self_wakes or first is None:
            continue
        span_ns = (last or first) - first
        findings.append(Finding(
            rule="self-wake-storm",
            title=f"{row.name} woke itself {rounds} times in {_ms(span_ns)}; the round trips "
                  f"through the scheduler took {_ms(round_trip_ns)}",
            lane=row.lane, lane_name=row.name, ts_ns=first, duration_ns=round_trip_ns,
            seq=_span_seq_at(spans, row.lane, first),
            location=line, facts={"self_wakes": rounds, "steps_ns": row.running_ns},
        ))
    return findings


def _hub_spins(trace: Trace, spans: Spans, states: npt.NDArray[np.int64],
               lengths: npt.NDArray[np.int64], on_hub: npt.NDArray[np.bool_],
               limits: LintLimits) -> npt.NDArray[np.bool_]:
    """Waits on the gevent hub shorter than a tiny sleep during which no other lane ran: the
    greenlet gave the hub up and got it straight back with nothing done meanwhile (a wait
    that another greenlet's work ended, a queue's put or a lock's release, is not one)."""
    candidates: npt.NDArray[np.bool_] = ((states == Code.BLOCKED) & on_hub
                                         & (lengths < limits.tiny_sleep_s * 1e9))
    if not candidates.any():
        return candidates
    lanes = np.asarray(spans.lane, dtype=np.int64)
    starts = np.asarray(spans.start, dtype=np.int64)
    loops = [info.id for info in trace.lanes if info.kind in LaneKind.LOOP_KINDS]
    steps = np.sort(starts[(states == Code.RUNNING) & ~np.isin(lanes, loops)])
    chosen = np.flatnonzero(candidates)
    # a wait ends where its own lane runs again, so a step starting inside it is another's
    begun = np.searchsorted(steps, starts[chosen], side="left")
    ended = np.searchsorted(steps, starts[chosen] + lengths[chosen], side="left")
    spins: npt.NDArray[np.bool_] = candidates.copy()
    spins[chosen[ended > begun]] = False
    return spins


# -- contention ----------------------------------------------------------------------------------


def contention(trace: Trace, spans: Spans, limits: LintLimits) -> list[Finding]:
    """Waits on one lock, semaphore or full queue by several lanes adding up to a long time;
    who released them. A wait that names its primitive (gevent's) is grouped by it; one that
    does not (asyncio's, trio's), by the method and the line it resumed at."""
    groups: dict[tuple[str, str | None, Source | None], list[tuple[int, int, int]]] = \
        defaultdict(list)
    releasers: dict[tuple[str, str | None, Source | None], dict[int, int]] = defaultdict(
        lambda: defaultdict(int))
    lines: dict[tuple[str, str | None, Source | None], dict[Source, int]] = defaultdict(
        lambda: defaultdict(int))
    states = np.array(spans.state, dtype=np.int64)
    waits = (states == Code.BLOCKED) & np.isin(
        np.array(spans.detail, dtype=np.int64),
        _details_where(trace, lambda d: d.get("on") in CONTENDED))
    waiting_lanes = set(np.array(spans.lane, dtype=np.int64)[waits].tolist())
    for lane, indices in spans.by_lane.items():
        if lane not in waiting_lanes:
            continue
        for position, index in enumerate(indices):
            if not waits[index]:
                continue
            detail = spans.detail_of(index, trace)
            on = str(detail.get("on", ""))
            if on not in CONTENDED:
                continue
            primitive = detail.get("primitive")
            # the next span says who let it go (a READY drawn from the releaser); the first
            # step after says where it waited (the line it resumed at)
            releaser = -1
            following = indices[position + 1 : position + 2]
            if following and spans.state[following[0]] == Code.READY:
                releaser = trace.other[spans.start_seq[following[0]]]
            line = None
            for later in indices[position + 1 :]:
                if spans.state[later] == Code.RUNNING:
                    line = trace.sources[spans.source[later]] if spans.source[later] else None
                    break
            key: tuple[str, str | None, Source | None] = (
                (on, str(primitive), None) if primitive is not None else (on, None, line))
            groups[key].append((lane, spans.end[index] - spans.start[index], spans.start[index]))
            if line is not None:
                lines[key][line] += 1
            if releaser >= 0:
                releasers[key][releaser] += 1
    findings = []
    for key, waits in groups.items():
        on, primitive, _line = key
        total = sum(duration for _lane, duration, _start in waits)
        lanes = {lane for lane, _duration, _start in waits}
        if (len(waits) < limits.contention_waits or len(lanes) < limits.contention_lanes
                or total < limits.contention_ns):
            continue
        # the line most of the waits resumed at
        line = max(lines[key].items(), key=lambda item: item[1])[0] if lines[key] else None
        longest = max(duration for _lane, duration, _start in waits)
        waited: dict[str, int] = defaultdict(int)
        for lane, duration, _start in waits:
            waited[trace.lane_name(lane)] += duration
        released_by = sorted(releasers[key].items(), key=lambda item: -item[1])
        named = released_by if len(released_by) <= 4 else released_by[:3]  # not "1 more"
        holders = ", ".join(f"{trace.lane_name(lane)} ({_times(count)})" for lane, count in named)
        if len(named) < len(released_by):
            holders += f" and {len(released_by) - len(named):,} more lanes"
        facts: dict[str, Any] = {
            "primitive": on, "waits": len(waits),
            "lanes": sorted(trace.lane_name(lane) for lane in lanes),
            "waited_ns": dict(sorted(waited.items())),
            "longest_ns": longest,
            "released_by": {trace.lane_name(lane): count for lane, count in released_by}}
        if primitive is not None:
            facts["name"] = primitive
        findings.append(Finding(
            rule="contention",
            title=f"{on}" + (f" on {primitive}" if primitive else "")
                  + (f" at {_short(line)}" if line else "") + f": {len(lanes):,} lanes "
                  f"waited {len(waits):,} times, {_ms(total)} in all (longest {_ms(longest)})"
                  + (f"; released by {holders}" if holders else ""),
            lane=None, lane_name=None, ts_ns=min(start for _l, _d, start in waits),
            duration_ns=total, location=line, facts=facts,
        ))
    return findings


# -- spinning polls ------------------------------------------------------------------------------


def zero_timeout_spins(trace: Trace, spans: Spans, limits: LintLimits) -> list[Finding]:
    """A loop lane polling with a zero timeout, getting nothing, with no lane running before
    its next poll: it spins. Counted per loop lane; the cost is the time the spins took."""
    loops = [info.id for info in trace.lanes if info.kind in LaneKind.LOOP_KINDS]
    zero_timeout = _details_where(trace, lambda d: "timeout_s" in d
                                  and d["timeout_s"] in (0, 0.0))
    if not loops or not len(zero_timeout):
        return []
    states = np.array(spans.state, dtype=np.int64)
    lanes = np.array(spans.lane, dtype=np.int64)
    span_starts = np.array(spans.start, dtype=np.int64)
    starts = np.sort(span_starts[(states == Code.RUNNING) & ~np.isin(lanes, loops)])
    zero_polls = (states == Code.POLL) & np.isin(np.array(spans.detail, dtype=np.int64),
                                                 zero_timeout)
    findings = []
    for lane in loops:
        indices = np.array(spans.by_lane.get(lane, ()), dtype=np.int64)
        polls = indices[states[indices] == Code.POLL]
        candidates = np.flatnonzero(zero_polls[polls[:-1]]) if len(polls) > 1 else polls
        if len(candidates) < limits.spin_polls:
            continue
        spins = 0
        cost = 0
        first = None
        line = None
        for position in candidates:
            current, following = int(polls[position]), int(polls[position + 1])
            detail = spans.detail_of(current, trace)
            if detail.get("readable") or detail.get("writable"):
                continue
            start, next_start = spans.start[current], spans.start[following]
            after = int(np.searchsorted(starts, start, side="right"))
            ran = after < len(starts) and starts[after] < next_start
            if ran:
                continue
            spins += 1
            cost += next_start - start
            first = start if first is None else first
            if line is None and spans.source[current]:
                line = trace.sources[spans.source[current]]
        if spins >= limits.spin_polls and first is not None:
            name = trace.lane_name(lane)
            findings.append(Finding(
                rule="zero-timeout-spin",
                title=f"{name} polled with a zero timeout {spins} times with nothing ready "
                      f"and nothing to run, spinning for {_ms(cost)}"
                      + (f" at {_short(line)}" if line else ""),
                lane=lane, lane_name=name, ts_ns=first, duration_ns=cost, location=line,
                seq=_span_seq_at(spans, lane, first), facts={"spins": spins},
            ))
    return findings


# -- the loop idle while its work is in a thread pool ------------------------------------------


def idle_on_thread_pool(trace: Trace, spans: Spans, limits: LintLimits) -> list[Finding]:
    """A loop that sat idle (polling, no lane running) through most of the time work it had
    handed to a thread pool ran: the program waited on the pool with nothing else to do.
    Calls are grouped by loop, function and line: the line that handed the work over (the
    pool lane's spawn), or where none was on the stack (a `to_thread()` run as a task of its
    own) the line its caller resumed at when the work was done. The idle time is counted over
    the union of a group's calls, so calls side by side are not counted twice."""
    pool_lanes = [info for info in trace.lanes if info.kind == LaneKind.THREAD]
    if not pool_lanes:
        return []
    groups: dict[tuple[int, str, Source | None], list[tuple[int, int, int]]] = defaultdict(list)
    awaited: set[tuple[int, str, Source | None]] = set()  # known by where the caller resumed
    for info in pool_lanes:
        loop = _loop_of(trace, info.parent) if info.parent >= 0 else None
        indices = spans.by_lane.get(info.id)
        if loop is None or indices is None or not len(indices):
            continue
        start, end = spans.start[indices[0]], spans.end[indices[-1]]
        function = _NUMBERED.sub("", info.name)  # the recorder numbers repeated names
        submitted = trace.source[info.spawn_seq]
        line = (trace.sources[submitted] if submitted
                else _resumed_at(trace, spans, info.parent, end))
        groups[(loop, function, line)].append((info.id, start, end))
        if not submitted:
            awaited.add((loop, function, line))
    states = np.asarray(spans.state, dtype=np.int64)
    lanes = np.asarray(spans.lane, dtype=np.int64)
    starts = np.asarray(spans.start, dtype=np.int64)
    ends = np.asarray(spans.end, dtype=np.int64)
    findings = []
    for (loop, name, line), calls in groups.items():
        polls = (lanes == loop) & (states == Code.POLL)
        poll_starts, poll_ends = starts[polls], ends[polls]
        busy = _union(sorted((start, end) for _lane, start, end in calls))
        pool_ns = sum(end - start for start, end in busy)
        idle_ns = sum(int(np.clip(np.minimum(poll_ends, end) - np.maximum(poll_starts, start),
                                  0, None).sum()) for start, end in busy)
        if (not pool_ns or idle_ns < limits.pool_idle_ns
                or idle_ns < limits.pool_idle_share * pool_ns):
            continue
        first_lane, first_start, _end = min(calls, key=lambda call: call[1])
        loop_name = trace.lane_name(loop)
        findings.append(Finding(
            rule="idle-on-thread-pool",
            title=f"{loop_name} sat idle {_ms(idle_ns)} ({idle_ns / pool_ns:.0%} of the time) "
                  f"while {name} ran in a thread pool ({len(calls)} "
                  f"call{'s' if len(calls) != 1 else ''}, {_ms(pool_ns)})"
                  + (f", {'awaited' if (loop, name, line) in awaited else 'called'} at "
                     f"{_short(line)}" if line else ""),
            lane=first_lane, lane_name=trace.lane_name(first_lane), ts_ns=first_start,
            duration_ns=idle_ns, location=line, seq=_span_seq_at(spans, first_lane, first_start),
            facts={"function": name, "calls": len(calls), "pool_ns": pool_ns,
                   "idle_ns": idle_ns, "loop": loop_name},
        ))
    return findings


# -- overloaded loops -----------------------------------------------------------------------


def overloaded_loops(trace: Trace, spans: Spans, limits: LintLimits) -> list[Finding]:
    """Many timers fired late on a loop that was busy through their lateness, none of it
    owed to a stall (a step past the stall threshold: that finding names its own victims).
    A timer's lateness runs from its deadline to the end of the lane's sleep; a sleep still
    going when the run ended is not a timer that fired."""
    states = np.asarray(spans.state, dtype=np.int64)
    starts = np.asarray(spans.start, dtype=np.int64)
    ends = np.asarray(spans.end, dtype=np.int64)
    lanes = np.asarray(spans.lane, dtype=np.int64)
    sleeps = np.flatnonzero(states == Code.SLEEPING)
    if len(sleeps) < limits.late_timers:
        return []
    last_of_lane = {int(indices[-1]) for indices in spans.by_lane.values() if len(indices)}
    stalled = sorted((int(starts[index]), int(ends[index])) for index in long_steps(trace, spans))
    stall_starts = np.array([start for start, _end in stalled], dtype=np.int64)
    stall_ends = np.maximum.accumulate(np.array([end for _start, end in stalled],
                                                dtype=np.int64)) if stalled else stall_starts
    loops: dict[int, int | None] = {}
    late: dict[int, list[tuple[int, int, int]]] = defaultdict(list)  # loop -> (index, due, end)
    for index in sleeps.tolist():
        if index in last_of_lane:
            continue
        due = spans.detail_of(index, trace).get("deadline_ns")
        end = int(ends[index])
        if not isinstance(due, int) or end - due < limits.late_timer_ns:
            continue
        # a stall that began before the timer fired and ended after it fell due explains it
        before = int(np.searchsorted(stall_starts, end, "left"))
        if before and stall_ends[before - 1] > due:
            continue
        lane = int(lanes[index])
        if lane not in loops:
            loops[lane] = _loop_of(trace, lane)
        loop = loops[lane]
        if loop is not None:
            late[loop].append((index, due, end))
    findings = []
    for loop, timers in late.items():
        if len(timers) < limits.late_timers:
            continue
        windows = _union(sorted((due, end) for _index, due, end in timers))
        window_ns = sum(end - start for start, end in windows)
        polls = (lanes == loop) & (states == Code.POLL)
        idle_ns = sum(int(np.clip(np.minimum(ends[polls], end) - np.maximum(starts[polls], start),
                                  0, None).sum()) for start, end in windows)
        busy = 1 - idle_ns / window_ns if window_ns else 0.0
        if busy < limits.overload_busy_share:
            continue
        lateness = sorted(end - due for _index, due, end in timers)
        first = windows[0][0]
        steps = (states == Code.RUNNING) & (ends > first) & (starts < windows[-1][1])
        longest = int((ends[steps] - starts[steps]).max()) if steps.any() else 0
        # the line most of the late sleeps resumed at (a sample: enough to find the commonest)
        lines: dict[Source, int] = defaultdict(int)
        for index, _due, end in timers[:: max(1, len(timers) // 500)]:
            line = _resumed_at(trace, spans, int(lanes[index]), end)
            if line is not None:
                lines[line] += 1
        line = max(lines.items(), key=lambda item: item[1])[0] if lines else None
        loop_name = trace.lane_name(loop)
        sleepers = len({int(lanes[index]) for index, _due, _end in timers})
        findings.append(Finding(
            rule="overloaded-loop",
            title=f"{loop_name} overloaded: {len(timers):,} timers of {sleepers:,} "
                  f"lane{'s' if sleepers != 1 else ''} fired late, up to "
                  f"{_ms(lateness[-1])} (median {_ms(lateness[len(lateness) // 2])}), "
                  f"the loop busy {busy:.0%} of that time with no step over "
                  f"{_ms(longest)}" + (f"; most slept at {_short(line)}" if line else ""),
            lane=loop, lane_name=loop_name, ts_ns=first, duration_ns=window_ns,
            location=line, seq=_span_seq_at(spans, loop, first),
            facts={"loop": loop_name, "late_timers": len(timers), "lanes": sleepers,
                   "latest_ns": lateness[-1], "median_ns": lateness[len(lateness) // 2],
                   "busy_share": round(busy, 3), "longest_step_ns": longest},
        ))
    return findings


_NUMBERED = re.compile(r" #\d+$")


def _resumed_at(trace: Trace, spans: Spans, lane: int, after: int) -> Source | None:
    """The line `lane` resumed at in its first step from `after` on: where it awaited."""
    for index in spans.by_lane.get(lane, ()):
        if spans.start[index] >= after and spans.state[index] == Code.RUNNING:
            return trace.sources[spans.source[index]] if spans.source[index] else None
    return None


def _union(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted intervals merged where they overlap."""
    merged: list[tuple[int, int]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _details_where(trace: Trace, wanted: Callable[[dict[str, Any]], bool]
                   ) -> npt.NDArray[np.int64]:
    """The interned detail indices whose detail is `wanted`. A value row's lane state is
    matched by its base (`_as_bases`): a sleep's detail is a value row whose base holds its
    delay, and a hand-off's base ({"via": "send"}) is never `wanted`."""
    return np.array([index for index, detail in enumerate(trace.details[:]) if wanted(detail)],
                    dtype=np.int64)


def _as_bases(trace: Trace, details: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """A detail column with each value row replaced by its base row (tracer.values), so
    that `_details_where`'s interned indices find a sleep by its delay."""
    rows = details - VALUE_ROW
    bases = trace.details.values.bases
    valued = (rows >= 0) & (rows < len(bases))
    if not valued.any():
        return details
    based = details.copy()
    based[valued] = np.frombuffer(bases, dtype=np.int32)[rows[valued]]
    return based


def _is_loop_lane(trace: Trace, lane: int) -> bool:
    try:
        return trace.lane_info(lane).kind in LaneKind.LOOP_KINDS
    except (IndexError, StopIteration):
        return False


def _short(source: Source | None) -> str:
    if source is None:
        return "?"
    return f"{source[0].replace(chr(92), '/').rsplit('/', 1)[-1]}:{source[1]}"


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"
