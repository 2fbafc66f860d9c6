"""The stall analysis finds each stall's victims from the spans that overlap it, for all
stalls at once (tracer.stalls). Its findings must be exactly those of the plain definition:
for every stall, a pass over every span (the code before, kept here as the reference), on
random hand-built traces with every kind of lane and the awkward cases (empty spans, spans
sharing an edge with a stall, timers due exactly at a stall's start or end, deadlines that
are no int), and on the many-lane trace the benchmark uses."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from bench.stalled_trace import stalled_trace
from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.findings import Delay, Finding
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import Spans, derive_spans
from loopscope.tracer.stalls import (
    _is_loop,
    _thread_lanes,
    delayed_phrase,
    find_stalls,
    long_steps,
    stall_of,
    stalls_at,
)
from loopscope.tracer.trace import Trace

MS = 1_000_000
SOURCE = ("/work/app/random.py", 7, "step")


def reference_stalls(trace: Trace, spans: Spans, threshold_ns: int) -> list[Finding]:
    """find_stalls as it was before round 7 (the reference): each long dispatch measured
    against every running span, each stall's victims from a pass over every span."""
    states = np.asarray(spans.state, dtype=np.int64)
    starts = np.asarray(spans.start, dtype=np.int64)
    ends = np.asarray(spans.end, dtype=np.int64)
    lengths = ends - starts
    found = [reference_stall(trace, spans, index)
             for index in long_steps(trace, spans, threshold_ns)]
    running = (states == Code.RUNNING) & ~np.isin(np.asarray(spans.lane, dtype=np.int64),
                                                  _thread_lanes(trace))
    for index in np.flatnonzero((states == Code.DISPATCH) & (lengths >= threshold_ns)):
        start, end = starts[index], ends[index]
        inside = np.clip(np.minimum(ends[running], end) - np.maximum(starts[running], start),
                         0, None)
        if lengths[index] - int(inside.sum()) >= threshold_ns:
            found.append(reference_stall(trace, spans, int(index)))
    found.sort(key=lambda finding: (finding.ts_ns or 0, finding.lane or 0))
    return found


def reference_stall(trace: Trace, spans: Spans, index: int) -> Finding:
    """stall_of with the reference victims (everything else is the same code)."""
    found = stall_of(trace, spans, index)
    delayed = reference_victims(trace, spans, spans.lane[index], spans.start[index],
                                spans.end[index])
    title = found.title[:found.title.index("; delayed ")] if found.delayed else found.title
    if delayed:
        title += f"; delayed {delayed_phrase(tuple(delayed))}"
    return Finding(**{**found.__dict__, "delayed": tuple(delayed), "title": title})


def reference_victims(trace: Trace, spans: Spans, stalled: int, start: int, end: int
                      ) -> list[Delay]:
    """The victims of one stall from a pass over every span's columns."""
    lanes = np.asarray(spans.lane, dtype=np.int64)
    states = np.asarray(spans.state, dtype=np.int64)
    starts = np.asarray(spans.start, dtype=np.int64)
    ends = np.asarray(spans.end, dtype=np.int64)
    overlapping = (ends > start) & (starts < end) & (lanes != stalled)
    ready = np.flatnonzero(overlapping & (states == Code.READY))
    ready_ns: dict[int, int] = defaultdict(int)
    for lane, overlap in zip(lanes[ready].tolist(),
                             (np.minimum(ends[ready], end) - np.maximum(starts[ready], start))
                             .tolist(), strict=True):
        ready_ns[lane] += overlap
    late_ns: dict[int, int] = defaultdict(int)
    for index in np.flatnonzero(overlapping & (states == Code.SLEEPING)).tolist():
        deadline = spans.detail_of(index, trace).get("deadline_ns")
        if isinstance(deadline, int) and start <= deadline < end and ends[index] > deadline:
            late_ns[int(lanes[index])] += int(ends[index]) - deadline
    delays = [Delay(lane, trace.lane_name(lane), ready_ns.get(lane, 0), late_ns.get(lane, 0))
              for lane in sorted(set(ready_ns) | set(late_ns))
              if not _is_loop(trace, lane) and (ready_ns.get(lane) or late_ns.get(lane))]
    delays.sort(key=lambda delay: (-delay.total_ns, delay.lane))
    return delays


def random_trace(seed: int) -> Trace:
    """Lanes of every kind changing state at random, times often equal or on round figures
    (so spans share edges), some steps long, sleeps with deadlines before, in and after
    them, and samples."""
    rng = random.Random(seed)
    trace = Trace(meta={"target": f"random {seed}"})
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    source = rec.source(*SOURCE)
    lanes = []
    if rng.random() < 0.5:
        lanes.append(rec.spawn("main", LaneKind.MAIN))
    loops = [rec.spawn("asyncio loop", LaneKind.LOOP) for _ in range(rng.randint(1, 2))]
    if rng.random() < 0.3:
        loops.append(rec.spawn("gevent hub", LaneKind.LOOP))
    lanes += [rec.spawn(f"task {n}", LaneKind.TASK, rng.choice(loops))
              for n in range(rng.randint(2, 12))]
    lanes += [rec.spawn(f"worker {n}", LaneKind.THREAD) for n in range(rng.randint(0, 2))]
    if rng.random() < 0.5:
        lanes.append(rec.spawn("spawned late", LaneKind.GREENLET))
    samples = []
    for _ in range(rng.randint(50, 400)):
        lane = rng.choice(lanes + loops)
        if lane in loops:
            rec.state(lane, rng.choice([Code.DISPATCH, Code.DISPATCH, Code.POLL]))
        else:
            state = rng.choice([Code.RUNNING, Code.RUNNING, Code.READY, Code.SLEEPING,
                                Code.IO_WAIT, Code.BLOCKED])
            if state == Code.SLEEPING:
                deadline: object = clock.now_ns + rng.choice(
                    [rng.randrange(-20, 400) * MS, 0, 100 * MS, rng.randrange(10**9)])
                deadline = rng.choice([deadline, deadline, deadline, float(clock.now_ns), None])
                rec.state(lane, state, ("deadline_ns", deadline) if deadline is not None else ())
            elif state == Code.READY and rng.random() < 0.5:
                rec.wake(lane, rng.choice(loops), ("cause", "future"))
            else:
                rec.state(lane, state, source=source if rng.random() < 0.7 else 0)
        if rng.random() < 0.1:
            samples.append([clock.now_ns, rng.choice(lanes), rng.randrange(2)])
        clock.advance(rng.choice([0, 0, MS, 10 * MS, rng.randrange(50 * MS),
                                  rng.randrange(100, 300) * MS, 100 * MS]))
    for lane in lanes + loops:
        if rng.random() < 0.9:
            rec.end(lane)
    rec.close()
    trace.write_samples({
        "first_stack": 0,
        "stacks": [[list(SOURCE)], [["/work/app/random.py", 9, "inner"], list(SOURCE)]],
        "samples": sorted(samples),
    })
    return trace


@pytest.mark.parametrize("seed", range(60))
def test_the_stalls_of_random_traces_are_those_of_the_plain_definition(seed: int) -> None:
    trace = random_trace(seed)
    spans = derive_spans(trace)
    for threshold in (100 * MS, 20 * MS, 1):
        expected = reference_stalls(trace, spans, threshold)
        assert find_stalls(trace, spans, threshold) == expected
        if threshold == 100 * MS:
            assert seed > 5 or any(f.delayed for f in expected)  # the test sees victims


def test_the_many_lane_trace_stalls_are_those_of_the_plain_definition() -> None:
    trace = stalled_trace(lanes=60, short_steps=4, seed=3)
    spans = derive_spans(trace)
    found = find_stalls(trace, spans)
    assert len(found) == 60  # every task's one long step, nothing else
    assert sum(len(finding.delayed) for finding in found) > 10
    assert found == reference_stalls(trace, spans, 100 * MS)


def test_stalls_found_one_at_a_time_are_those_found_together() -> None:
    """The live view finds stalls as steps end, a few at a time."""
    trace = random_trace(4)
    spans = derive_spans(trace)
    indices = long_steps(trace, spans, 20 * MS)
    assert len(indices) > 3
    assert stalls_at(trace, spans, indices) == [stall_of(trace, spans, i) for i in indices]
    assert stalls_at(trace, spans, []) == []
