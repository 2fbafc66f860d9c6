"""Held time cut out of a trace whose clock kept going while a learner held the run.

gevent (libev) and select (the kernel) keep real time, so a stepped run of theirs records the
seconds the learner spent between steps as program time; the step gate marks each such pause
with a MARK whose `paused_ns` says how long (tracer.step_gate). `cut_held_time` gives the
same trace with every pause taken out: each event is moved back by the pauses recorded at or
before it, so an 11 ms run stepped for a minute is again 11 ms long, and each pause mark sits
where the run was held. The result says so in its meta (`held_cut_ns`, the time cut), which
the timeline reads to draw a break there instead of a hatched stretch.

What is not moved: deadlines inside details (`deadline_ns` of a sleep or a timer wake) are
interned and shared, so they keep the recorded clock.
"""

from __future__ import annotations

import copy
from array import array

import numpy as np

from loopscope.tracer.events import Code
from loopscope.tracer.samples import Samples
from loopscope.tracer.trace import LaneInfo, Trace

# meta key: the nanoseconds of held time taken out of the trace (absent: nothing was cut)
HELD_CUT_NS = "held_cut_ns"


def held_pauses(trace: Trace) -> list[tuple[int, int]]:
    """(seq, paused_ns) of every pause mark, in order."""
    code = np.frombuffer(trace.code, dtype=np.int8, count=len(trace))
    pauses = []
    for seq in np.nonzero(code == Code.MARK)[0].tolist():
        paused = trace.details[trace.detail[seq]].get("paused_ns")
        if isinstance(paused, int) and not isinstance(paused, bool) and paused > 0:
            pauses.append((seq, paused))
    return pauses


def cut_held_time(trace: Trace) -> Trace:
    """The trace with its held stretches cut out (the trace itself when there are none, or
    when they were cut already). The events, tables and lanes are shared except for the
    timestamps, which are new columns."""
    if HELD_CUT_NS in trace.meta:
        return trace
    pauses = held_pauses(trace)
    if not pauses:
        return trace
    marks = np.array([seq for seq, _ in pauses], dtype=np.int64)
    paused = np.array([ns for _, ns in pauses], dtype=np.int64)
    ts = np.frombuffer(trace.ts, dtype=np.int64, count=len(trace))
    # Held time before each event: the pauses marked at or before it.
    before = np.zeros(len(ts) + 1, dtype=np.int64)
    np.add.at(before, marks, paused)
    cut = ts - np.cumsum(before[:-1])
    # The clock the gate measured a pause with is not the events' own: never let a cut
    # reorder two events.
    cut = np.maximum.accumulate(cut)
    result = copy.copy(trace)
    result.ts = array("q", cut.tobytes())
    result.listeners = []
    result.meta = {**trace.meta, HELD_CUT_NS: int(paused.sum())}
    result.lanes = [LaneInfo(info.id, info.name, info.kind, info.parent, info.spawn_seq,
                             int(cut[info.spawn_seq]) if info.spawn_seq < len(cut)
                             else info.spawn_ts)
                    for info in trace.lanes]
    result.samples = _cut_samples(trace.samples, ts, cut)
    return result


def _cut_samples(samples: Samples, ts: np.ndarray, cut: np.ndarray) -> Samples:
    """The samples moved back as the events around them were."""
    if not len(samples):
        return samples
    taken = np.frombuffer(samples.ts, dtype=np.int64, count=len(samples))
    # Each sample moves as the last event at or before it did.
    at = np.clip(np.searchsorted(ts, taken, side="right") - 1, 0, len(ts) - 1)
    moved = taken - (ts[at] - cut[at])
    cut_samples = Samples()
    cut_samples.ts = array("q", moved.astype(np.int64).tobytes())
    cut_samples.lane, cut_samples.stack, cut_samples.stacks = (
        samples.lane, samples.stack, samples.stacks)
    return cut_samples
