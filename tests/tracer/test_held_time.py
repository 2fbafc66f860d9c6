"""Held time cut out of runs whose clock went on while a learner held them (gevent, select)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.held_time import HELD_CUT_NS, cut_held_time, held_pauses
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.stepping import is_pause_mark
from loopscope.tracer.trace import Trace
from tests.tracer.test_stepping import step_through

MS = 1_000_000


def _held_twice() -> tuple[Trace, int, int]:
    """A hub polling for 10 ms, held 3 s, a task spawned, held 2 s, 5 ms more."""
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    hub = recorder.spawn("gevent hub", LaneKind.LOOP)
    recorder.state(hub, Code.POLL)
    clock.advance(10 * MS)
    clock.advance(3_000 * MS)
    recorder.record(hub, Code.MARK, detail=recorder.detail(
        ("text", "paused 3.0 s", "paused_ns", 3_000 * MS)))
    task = recorder.spawn("foo", LaneKind.GREENLET, parent=hub)
    recorder.state(task, Code.RUNNING)
    clock.advance(2 * MS)
    clock.advance(2_000 * MS)
    recorder.record(task, Code.MARK, detail=recorder.detail(
        ("text", "paused 2.0 s", "paused_ns", 2_000 * MS)))
    clock.advance(3 * MS)
    recorder.end(task)
    recorder.end(hub)
    recorder.close()
    return trace, hub, task


def test_each_event_moves_back_by_the_pauses_before_it() -> None:
    trace, _hub, task = _held_twice()
    cut = cut_held_time(trace)
    assert cut is not trace
    assert list(trace.ts) == [0, 0, 3_010 * MS, 3_010 * MS, 3_010 * MS, 5_012 * MS,
                              5_015 * MS, 5_015 * MS]
    # Each pause mark sits where its pause began; the run is as long as it ran: 15 ms.
    assert list(cut.ts) == [0, 0, 10 * MS, 10 * MS, 10 * MS, 12 * MS, 15 * MS, 15 * MS]
    assert cut.meta[HELD_CUT_NS] == 5_000 * MS
    assert cut.lanes[task].spawn_ts == 10 * MS
    assert [seq for seq, _ in held_pauses(cut)] == [2, 5]
    # The spans follow: foo ran 5 ms, not 2 s and 5 ms.
    spans = derive_spans(cut)
    running = [i for i in range(len(spans)) if spans.lane[i] == task
               and spans.state[i] == Code.RUNNING]
    assert [spans.end[i] - spans.start[i] for i in running] == [5 * MS]
    # Cutting twice cuts nothing more; the original is left as it was.
    assert cut_held_time(cut) is cut
    assert trace.ts[-1] == 5_015 * MS and HELD_CUT_NS not in trace.meta


def test_a_trace_with_no_pause_is_returned_as_it_is() -> None:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock())
    recorder.spawn("main", LaneKind.MAIN)
    recorder.close()
    assert cut_held_time(trace) is trace


@pytest.mark.parametrize("scenario", ["gevent-switching", "select-server"])
def test_a_stepped_run_cut_is_as_long_as_it_ran(scenario: str) -> None:
    hold_s = 0.3
    result, _ = asyncio.run(
        step_through(scenario, 12, "step", lambda trace, seq: hold_s if len(trace) > 5 else 0.0))
    assert result.ok, result.error
    trace = result.trace
    marks = [s for s in range(len(trace)) if is_pause_mark(trace, s)]
    held = sum(trace.details[trace.detail[s]]["paused_ns"] for s in marks)
    assert held >= len(marks) * hold_s * 1e9 > 0
    cut = cut_held_time(trace)
    assert cut.duration_ns == pytest.approx(trace.duration_ns - held, abs=5 * MS)
    assert np.all(np.diff(np.frombuffer(cut.ts, dtype=np.int64)) >= 0)
    # Where each pause was, the cut trace has its mark with the time it stood for.
    assert [seq for seq, _ in held_pauses(cut)] == marks
