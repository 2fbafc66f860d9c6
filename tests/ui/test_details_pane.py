"""The details pane's tables read times as the axis counts them: from the program's first event."""

from __future__ import annotations

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import derive_spans, lane_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.details_pane import (
    format_duration,
    lane_details_html,
    shown_details,
    span_details_html,
    trace_summary_html,
)

MS = 1_000_000


def _late_start() -> Trace:
    """A run whose child started up for 300 ms before the program's first event."""
    trace = Trace()
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    clock.advance(300 * MS)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    clock.advance(5 * MS)
    task = rec.spawn("nap", LaneKind.TASK, parent=loop)
    rec.state(task, Code.RUNNING)
    clock.advance(10 * MS)
    rec.state(task, Code.SLEEPING, ("delay_s", 0.05, "deadline_ns", 365 * MS,
                                    "cost_ns", 2 * MS))
    clock.advance(50 * MS)
    rec.wake(task, loop, ("cause", "timer", "deadline_ns", 365 * MS))
    rec.state(task, Code.RUNNING)
    rec.end(task)
    rec.close()
    return trace


def test_a_span_starts_ends_and_falls_due_on_the_programs_clock() -> None:
    trace = _late_start()
    spans = derive_spans(trace)
    nap = next(info.id for info in trace.lanes if info.name == "nap")
    sleeping = next(i for i in lane_spans(spans, nap) if spans.state[i] == Code.SLEEPING)
    html = span_details_html(trace, spans, sleeping)
    assert "<td>15.00 ms</td>" in html and "<td>65.00 ms</td>" in html  # start, end
    assert "<td class='key'>deadline</td><td>65.00 ms</td>" in html
    assert "<td class='key'>cost</td><td>2.00 ms</td>" in html  # a length stays a length
    assert "deadline_ns" not in html and "365" not in html
    assert "<td class='key'>spawned at</td><td>5.00 ms</td>" in lane_details_html(
        trace, spans, nap)


def test_the_runs_duration_is_the_programs_with_the_start_up_said_apart() -> None:
    html = trace_summary_html(_late_start())
    assert "<td class='key'>duration</td><td>65.00 ms</td>" in html
    assert "300.00 ms after the child started" in html


def test_details_that_are_not_times_are_shown_as_recorded() -> None:
    trace = _late_start()
    assert shown_details(trace, {"fd": 7, "readable": [7, 9], "writable": [], "flag": True,
                                 "timeout_s": 0.05}, format_duration) == [
        ("fd", "7"), ("readable", "7, 9"), ("writable", "none"), ("flag", "True"),
        ("timeout_s", "0.05")]
