"""What the generator scenarios must show, checked on traces recorded in child processes."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

from loopscope.tracer.events import Code
from loopscope.tracer.query import lane_named
from loopscope.tracer.runner import RunResult
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace

Recorder = Callable[..., RunResult]


def switches(trace: Trace) -> list[tuple[str, str, str, str | None]]:
    """(origin, target, via, value) of every switch arrow, in order."""
    return [
        (trace.lane_name(e.lane), trace.lane_name(e.other), e.detail["via"], e.detail.get("value"))
        for e in trace.events()
        if e.code == Code.SWITCH
    ]


def test_producer_and_consumer_strictly_alternate(record_scenario: Recorder) -> None:
    trace = record_scenario("producer-consumer").trace
    hand_offs = switches(trace)
    assert {(origin, target) for origin, target, _, _ in hand_offs} == {
        ("produce", "consumer"), ("consumer", "produce")}
    # strict alternation: never two hand-offs in a row from the same side
    origins = [origin for origin, _, _, _ in hand_offs]
    assert all(a != b for a, b in pairwise(origins))
    sent = [value for origin, _, via, value in hand_offs if via == "send"]
    replies = [value for _, _, via, value in hand_offs if via == "yield"]
    assert sent == ["None", "1", "2", "3", "4", "5"]
    assert replies == ["''"] + ["'200 OK'"] * 5
    assert hand_offs[-1][:3] == ("produce", "consumer", "close")


def test_only_one_lane_runs_at_a_time_and_output_follows_it(record_scenario: Recorder) -> None:
    trace = record_scenario("producer-consumer").trace
    spans = derive_spans(trace)
    running = sorted(
        (spans.start[i], spans.end[i], spans.lane[i])
        for i in range(len(spans)) if spans.state[i] == Code.RUNNING
    )
    assert all(end <= next_start for (_, end, _), (next_start, _, _) in pairwise(
        running))
    consumer = lane_named(trace, "consumer").id
    printed_by_consumer = [
        e.detail["text"] for e in trace.events() if e.code == Code.OUTPUT and e.lane == consumer]
    assert printed_by_consumer == [f"[consumer] consuming {n}..." for n in range(1, 6)]
    ends = {trace.lane_name(e.lane): e.detail for e in trace.events() if e.code == Code.END}
    assert ends["consumer"] == {"result": "closed"}


def test_round_robin_interleaves_a_and_b(record_scenario: Recorder) -> None:
    trace = record_scenario("round-robin").trace
    hand_offs = switches(trace)
    resumed = [target for origin, target, via, _ in hand_offs if origin == "scheduler"]
    assert resumed == ["task_a", "task_b"] * 4
    assert {via for origin, _, via, _ in hand_offs if origin == "scheduler"} == {"next"}
    yielded = [value for origin, _, via, value in hand_offs if via == "yield"]
    assert yielded == ["'a1'", "'b1'", "'a2'", "'b2'", "'a3'", "'b3'"]
    ends = [(trace.lane_name(e.lane), e.detail) for e in trace.events() if e.code == Code.END]
    assert ends[:2] == [("task_a", {"result": "'a done'"}), ("task_b", {"result": "'b done'"})]
