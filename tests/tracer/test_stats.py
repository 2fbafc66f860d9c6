"""Per-lane statistics over traces built with a FakeClock, so every figure is known exactly."""

from __future__ import annotations

import pytest

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import SpanBuilder, derive_spans
from loopscope.tracer.stats import all_lane_stats, lane_stats
from loopscope.tracer.trace import Trace

MS = 1_000_000


def _recorded(script: list[tuple[int, str, tuple[object, ...]]]) -> tuple[Trace, Recorder]:
    """Runs (advance_ms, helper, args) steps against a recorder writing into a trace."""
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    for advance_ms, helper, args in script:
        clock.advance(advance_ms * MS)
        getattr(recorder, helper)(*args)
    recorder.close()
    return trace, recorder


def _two_tasks() -> Trace:
    """A loop and two tasks; times in ms after the previous step.

    loop: poll 0-10, dispatch 10-12, poll 12-40, dispatch 40-41 (then the run ends at 50)
    a:    ready 0-2, running 2-5, sleeping 5-30, ready 30-43 (woken by the loop), running 43-50
    b:    ready 0-5, running 5-6, io-wait 6-20, ready 20-21, blocked 21-26, ready 26-41,
          running 41-43, end
    """
    trace, _ = _recorded([
        (0, "spawn", ("loop", LaneKind.LOOP)),
        (0, "spawn", ("a", LaneKind.TASK, 0)),
        (0, "spawn", ("b", LaneKind.TASK, 0)),
        (0, "state", (0, Code.POLL, ("timeout_s", 0.01))),
        (0, "state", (1, Code.READY)),
        (0, "state", (2, Code.READY)),
        (2, "state", (1, Code.RUNNING)),
        (3, "state", (1, Code.SLEEPING, ("delay_s", 0.025))),
        (0, "state", (2, Code.RUNNING)),
        (1, "state", (2, Code.IO_WAIT, ("fd", 7, "mode", "read"))),
        (4, "state", (0, Code.DISPATCH)),
        (2, "state", (0, Code.POLL, ("timeout_s", None))),
        (8, "wake", (2, 0, ("cause", "fd", "fd", 7, "mode", "read"))),
        (1, "state", (2, Code.BLOCKED, ("on", "Queue.get"))),
        (5, "wake", (2, 0, ("cause", "future"))),
        (4, "wake", (1, 0, ("cause", "timer"))),
        (10, "state", (0, Code.DISPATCH)),
        (1, "state", (2, Code.RUNNING)),
        (2, "end", (2,)),
        (0, "state", (1, Code.RUNNING)),
        (7, "end", (1,)),
    ])
    return trace


def test_time_in_each_state_sums_the_lanes_spans() -> None:
    trace = _two_tasks()
    spans = derive_spans(trace)

    a = lane_stats(trace, spans, 1)
    b = lane_stats(trace, spans, 2)
    loop = lane_stats(trace, spans, 0)

    assert (a.name, a.kind) == ("a", "task")
    assert a.time_in == {"running": 10 * MS, "ready": 15 * MS, "io-wait": 0,
                         "sleeping": 25 * MS, "blocked": 0, "poll": 0, "dispatch": 0}
    assert b.time_in == {"running": 3 * MS, "ready": 21 * MS, "io-wait": 14 * MS,
                         "sleeping": 0, "blocked": 5 * MS, "poll": 0, "dispatch": 0}
    # the loop's last span stays open until the run's last event (a's end at 50 ms)
    assert loop.time_in["poll"] == 38 * MS
    assert loop.time_in["dispatch"] == 12 * MS
    assert (a.first_ns, a.last_ns, a.lifetime_ns) == (0, 50 * MS, 50 * MS)
    assert b.lifetime_ns == 43 * MS


def test_steps_and_the_longest_step() -> None:
    trace = _two_tasks()
    spans = derive_spans(trace)

    a = lane_stats(trace, spans, 1)
    b = lane_stats(trace, spans, 2)

    assert (a.steps, a.longest_step_ns) == (2, 7 * MS)
    assert spans.start[a.longest_step_span] == 43 * MS
    assert (b.steps, b.longest_step_ns) == (2, 2 * MS)
    assert spans.start[b.longest_step_span] == 41 * MS
    assert a.mean_step_ns == 5 * MS
    assert lane_stats(trace, spans, 0).steps == 0
    assert lane_stats(trace, spans, 0).longest_step_span == -1
    assert lane_stats(trace, spans, 0).mean_step_ns is None


def test_scheduling_latency_runs_from_ready_to_the_next_running() -> None:
    trace = _two_tasks()
    spans = derive_spans(trace)

    a = lane_stats(trace, spans, 1)
    b = lane_stats(trace, spans, 2)

    # a: ready 0 -> running 2, ready 30 -> running 43
    assert a.latencies == 2
    assert a.mean_latency_ns == pytest.approx(7.5 * MS)
    assert a.worst_latency_ns == 13 * MS
    assert spans.start[a.worst_latency_span] == 43 * MS
    # b: ready 0 -> running 5; the wake at 20 was followed by blocking, not by a step, so it
    # does not count; ready 26 -> running 41
    assert b.latencies == 2
    assert b.worst_latency_ns == 15 * MS
    assert b.mean_latency_ns == pytest.approx(10 * MS)
    assert lane_stats(trace, spans, 0).mean_latency_ns is None


def test_a_repeated_ready_does_not_restart_the_wait() -> None:
    trace, _ = _recorded([
        (0, "spawn", ("t", LaneKind.TASK)),
        (0, "state", (0, Code.READY)),
        (4, "wake", (0, -1, ("cause", "self"))),
        (3, "state", (0, Code.RUNNING)),
        (1, "end", (0,)),
    ])

    stats = lane_stats(trace, derive_spans(trace), 0)

    assert (stats.latencies, stats.worst_latency_ns) == (1, 7 * MS)


def test_zero_length_steps_still_have_a_longest_step() -> None:
    trace, _ = _recorded([
        (0, "spawn", ("t", LaneKind.GENERATOR)),
        (0, "state", (0, Code.RUNNING)),
        (0, "state", (0, Code.BLOCKED)),
        (0, "state", (0, Code.RUNNING)),
        (0, "end", (0,)),
    ])
    spans = derive_spans(trace)

    stats = lane_stats(trace, spans, 0)

    assert (stats.steps, stats.longest_step_ns) == (2, 0)
    assert spans.state[stats.longest_step_span] == Code.RUNNING


def test_a_live_trace_counts_only_closed_spans() -> None:
    trace = _two_tasks()
    builder = SpanBuilder()
    # up to and including a's first sleep (event 7): a has closed ready and running spans
    builder.feed(trace, stop=8)

    a = lane_stats(trace, builder.spans, 1)

    assert a.steps == 1
    assert a.time_in["running"] == 3 * MS
    assert a.time_in["sleeping"] == 0  # still open
    assert a.latencies == 1


def test_all_lanes_in_spawn_order_and_unknown_lanes() -> None:
    trace = _two_tasks()
    spans = derive_spans(trace)

    assert [s.name for s in all_lane_stats(trace, spans)] == ["loop", "a", "b"]
    unknown = lane_stats(trace, spans, 9)
    assert (unknown.name, unknown.steps, unknown.lifetime_ns) == ("lane 9", 0, 0)
