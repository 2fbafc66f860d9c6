"""The trio scenarios, each recorded in a real child: what each must show, on the trace.

As for asyncio, durations are bounded only with the slack the programs' own sleeps give.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loopscope.tracer.events import LaneKind
from loopscope.tracer.query import lane_named, lanes
from loopscope.tracer.runner import RunResult
from tests.scenarios.test_asyncio_scenarios import (
    S,
    all_overlap,
    lanes_window_ns,
    outputs,
    spans_of,
    wakes_onto,
)

pytestmark = pytest.mark.slow

Recorded = Callable[..., RunResult]


def test_trio_hello_both_print_before_either_resumes_in_about_one_second(
    record_scenario: Recorded,
) -> None:
    trace = record_scenario("trio-hello").trace
    first, second = lane_named(trace, "hello-1"), lane_named(trace, "hello-2")
    main = lane_named(trace, "main")

    printed = [text for _, text in outputs(trace)]
    befores = [printed.index(f"Hello from {who}!") for who in ("first", "second")]
    afters = [printed.index(f"Hello again from {who}!") for who in ("first", "second")]
    assert max(befores) < min(afters)

    sleeps = [spans_of(trace, lane.id, "sleeping") for lane in (first, second)]
    assert [len(s) for s in sleeps] == [1, 1]
    assert all(s[0].detail["delay_s"] == pytest.approx(1, abs=0.05) for s in sleeps)
    assert all_overlap([sleeps[0][0], sleeps[1][0]])
    for lane in (first, second):
        assert [cause["cause"] for _, cause in wakes_onto(trace, lane.id)] == ["timer"]
        assert trace.lane_info(lane.id).parent == main.id
    # main waits on its nursery all along, and the task that ends last wakes it
    blocked = spans_of(trace, main.id, "blocked")
    assert [row.detail["on"] for row in blocked] == ["nursery"]
    assert all_overlap([blocked[0], sleeps[0][0], sleeps[1][0]])
    [(waker, cause)] = wakes_onto(trace, main.id)
    assert cause == {"cause": "task"} and waker in ("hello-1", "hello-2")
    assert 1 * S <= lanes_window_ns(trace, {first.id, second.id}) < 1.9 * S


def test_trio_echo_lanes_wait_on_their_own_fds_and_the_poll_wakes_them(
    record_scenario: Recorded,
) -> None:
    result = record_scenario("trio-echo")
    trace = result.trace
    assert len([line for line in result.stdout.splitlines() if "got back" in line]) == 9
    loop = lane_named(trace, "trio run")
    assert trace.lane_info(loop.id).kind == LaneKind.LOOP
    clients = [lane_named(trace, f"client-{i}") for i in (1, 2, 3)]
    handlers = [lane for lane in lanes(trace) if lane.name.split("-")[0] == "echo"]
    assert len(handlers) == 3
    assert {trace.lane_info(h.parent).name for h in handlers} == {"serve_tcp"}

    read_fds: dict[str, set[int]] = {}
    for lane in [*clients, *handlers]:
        waits = spans_of(trace, lane.id, "io-wait")
        read_fds[lane.name] = {row.detail["fd"] for row in waits if row.detail["mode"] == "read"}
        assert len(read_fds[lane.name]) <= 1, f"{lane.name} read from several fds"
        # every fd wake onto the lane comes from the run lane's poll, for the fd it waited on
        for waker, cause in wakes_onto(trace, lane.id):
            if cause["cause"] == "fd":
                assert waker == "trio run"
                assert cause["fd"] in {row.detail["fd"] for row in waits}
    # a handler waits for its client's next message on its own connection, never another's
    for handler in handlers:
        assert len(read_fds[handler.name]) == 1, f"{handler.name} never waited for a message"
    waited = [fds for fds in read_fds.values() if fds]
    assert len(set().union(*waited)) == len(waited), "two lanes read from one socket"
