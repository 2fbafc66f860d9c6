"""blocking-call and zero-copy, recorded in a real child: what each must show."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import pytest

from loopscope.scenarios import blocking_call, zero_copy
from loopscope.tracer.query import SpanRow, lane_named, lanes, span_rows
from loopscope.tracer.runner import RunResult
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace

pytestmark = pytest.mark.slow


def running_rows(trace: Trace, lane: int) -> list[SpanRow]:
    return [row for row in span_rows(trace, derive_spans(trace), lane) if row.state == "running"]


def overlaps(a: SpanRow, b: SpanRow) -> bool:
    return a.start < b.end and b.start < a.end


# -- blocking-call ------------------------------------------------------------------------------


def test_blocking_call_stalls_every_other_lane(
    record_scenario: Callable[..., RunResult],
) -> None:
    trace = record_scenario("blocking-call").trace
    spans = derive_spans(trace)
    blocker = lane_named(trace, "blocker").id
    longest = max(running_rows(trace, blocker), key=lambda row: row.duration)
    # the step that called time.sleep(0.5) cannot be shorter than the sleep itself
    assert longest.duration >= blocking_call.BLOCK_S * 1e9

    others = [info.id for info in trace.lanes if info.id != blocker]
    for lane in others:
        for row in span_rows(trace, spans, lane):
            if row.state in ("running", "poll"):
                assert not overlaps(row, longest), (trace.lane_name(lane), row)


def test_the_ticker_misses_its_deadline_while_the_loop_is_stalled(
    record_scenario: Callable[..., RunResult],
) -> None:
    trace = record_scenario("blocking-call").trace
    spans = derive_spans(trace)
    blocker = lane_named(trace, "blocker").id
    longest = max(running_rows(trace, blocker), key=lambda row: row.duration)
    for victim in ("ticker", "heartbeat"):
        rows = span_rows(trace, spans, lane_named(trace, victim).id)
        # a sleep that was due during the blocking step, yet lasted until the step ended
        overslept = [
            row for row in rows
            if row.state == "sleeping"
            and longest.start < row.detail["deadline_ns"] < longest.end
            and row.end >= longest.end
        ]
        assert len(overslept) == 1, victim
        # so its steps before and after the stall leave a gap the blocking step sits in
        steps = [row for row in rows if row.state == "running"]
        before = max(row.end for row in steps if row.end <= longest.start)
        after = min(row.start for row in steps if row.start >= longest.end)
        assert after - before >= longest.duration
    # the ticker ticks regularly otherwise: every other gap is far shorter than the stall
    ticker_steps = running_rows(trace, lane_named(trace, "ticker").id)
    gaps = [b.start - a.end for a, b in pairwise(ticker_steps)]
    assert sorted(gaps)[-2] < longest.duration
    assert len(ticker_steps) == blocking_call.TICKS + 1


# -- zero-copy ----------------------------------------------------------------------------------


def test_the_copy_loop_takes_many_more_steps_than_sendfile(
    record_scenario: Callable[..., RunResult],
) -> None:
    result = record_scenario("zero-copy")
    trace = result.trace
    copy_steps = running_rows(trace, lane_named(trace, "copy-sender").id)
    sendfile_steps = running_rows(trace, lane_named(trace, "sendfile-sender").id)
    chunks = zero_copy.FILE_SIZE // zero_copy.CHUNK_SIZE
    # the socket buffers hold a few chunks, so the copy loop has to come back many times
    assert len(copy_steps) >= chunks // 8
    # sendfile: one step to start it, one to collect the result
    assert len(sendfile_steps) <= 3
    assert len(copy_steps) >= 5 * len(sendfile_steps)
    assert "both transfers delivered the file intact" in result.stdout


def test_the_two_transfers_run_one_after_the_other(
    record_scenario: Callable[..., RunResult],
) -> None:
    trace = record_scenario("zero-copy").trace
    spans = derive_spans(trace)
    copy_lanes = [info.id for info in lanes(trace, name="copy-")]
    sendfile_lanes = [info.id for info in lanes(trace, name="sendfile-")]
    assert len(copy_lanes) == len(sendfile_lanes) == 2
    copy_end = max(spans.end[i] for lane in copy_lanes for i in spans.by_lane[lane])
    sendfile_start = min(spans.start[i] for lane in sendfile_lanes for i in spans.by_lane[lane])
    assert copy_end <= sendfile_start
    # and while sendfile works, its sender just waits: the receiver does all the stepping
    sendfile_receiver = running_rows(trace, lane_named(trace, "sendfile-receiver").id)
    sendfile_sender = running_rows(trace, lane_named(trace, "sendfile-sender").id)
    assert len(sendfile_receiver) > 5 * len(sendfile_sender)
