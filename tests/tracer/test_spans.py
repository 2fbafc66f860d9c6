"""The span fold: exact spans for hand-written event sequences, and the resumable fold agrees."""

from __future__ import annotations

import random
from array import array

import pytest

from loopscope.tracer import spans as spans_module
from loopscope.tracer.events import NO_LANE, Code, Detail, FakeClock
from loopscope.tracer.query import span_rows
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import SpanBuilder, Spans, arrow_endpoints, derive_spans, lane_spans
from loopscope.tracer.trace import Trace

# (ts, lane, code, other, detail)
Row = tuple[int, int, int, int, Detail]


def trace_of(rows: list[Row]) -> Trace:
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock, batch_size=3)
    for ts, lane, code, other, detail in rows:
        clock.now_ns = ts
        recorder.record(lane, code, other, recorder.detail(detail))
    recorder.close()
    return trace


SpanTuple = tuple[str, int, int, dict[str, object]]


def spans_by_lane(trace: Trace, spans: Spans) -> dict[int, list[SpanTuple]]:
    return {
        lane: [(r.state, r.start, r.end, r.detail) for r in span_rows(trace, spans, lane)]
        for lane in sorted(spans.by_lane)
    }


def test_states_follow_one_another_and_end_closes_the_last() -> None:
    trace = trace_of([
        (0, 0, Code.SPAWN, NO_LANE, ("name", "main", "kind", "main")),
        (10, 0, Code.RUNNING, NO_LANE, ()),
        (20, 0, Code.IO_WAIT, NO_LANE, ("fd", 5, "mode", "read")),
        (35, 0, Code.WAKE, 1, ("cause", "fd")),
        (35, 0, Code.READY, 1, ("cause", "fd")),
        (40, 0, Code.RUNNING, NO_LANE, ()),
        (55, 0, Code.END, NO_LANE, ("result", "None")),
    ])

    spans = derive_spans(trace)

    assert spans_by_lane(trace, spans) == {
        0: [
            ("running", 10, 20, {}),
            ("io-wait", 20, 35, {"fd": 5, "mode": "read"}),
            ("ready", 35, 40, {"cause": "fd"}),
            ("running", 40, 55, {}),
        ]
    }
    assert list(spans.arrow_seq) == [3]
    assert arrow_endpoints(trace, 3) == (35, 1, 0)  # waker -> woken


def test_lanes_interleave_and_spans_are_listed_in_the_order_they_closed() -> None:
    trace = trace_of([
        (0, 0, Code.RUNNING, NO_LANE, ()),
        (5, 1, Code.READY, NO_LANE, ()),
        (10, 0, Code.SWITCH, 1, ("via", "send", "value", "1")),
        (10, 0, Code.BLOCKED, 1, ("on", "task b")),
        (10, 1, Code.RUNNING, NO_LANE, ()),
        (30, 1, Code.END, NO_LANE, ()),
        (30, 0, Code.RUNNING, NO_LANE, ()),
        (50, 0, Code.END, NO_LANE, ()),
    ])

    spans = derive_spans(trace)

    rows = [(r.lane, r.state, r.start, r.end) for r in span_rows(trace, spans)]
    assert rows == [
        (0, "running", 0, 10),
        (1, "ready", 5, 10),
        (1, "running", 10, 30),
        (0, "blocked", 10, 30),
        (0, "running", 30, 50),
    ]
    assert lane_spans(spans, 0) == [0, 3, 4]
    assert lane_spans(spans, 1) == [1, 2]
    assert arrow_endpoints(trace, 2) == (10, 0, 1)  # switch: origin -> target


def test_annotations_merge_into_the_open_span_only() -> None:
    trace = trace_of([
        (0, 0, Code.ANNOTATE, NO_LANE, ("lost", True)),  # no open span: nothing to merge into
        (1, 0, Code.POLL, NO_LANE, ("timeout_s", None)),
        (4, 0, Code.ANNOTATE, NO_LANE, ("readable", (3,), "writable", ())),
        (5, 0, Code.ANNOTATE, NO_LANE, ("writable", (4,))),
        (9, 0, Code.DISPATCH, NO_LANE, ("callback", "on_read")),
        (12, 0, Code.POLL, NO_LANE, ("timeout_s", 0.5)),
        (20, 0, Code.END, NO_LANE, ()),
    ])

    spans = derive_spans(trace)

    assert spans_by_lane(trace, spans) == {
        0: [
            ("poll", 1, 9, {"timeout_s": None, "readable": [3], "writable": [4]}),
            ("dispatch", 9, 12, {"callback": "on_read"}),
            ("poll", 12, 20, {"timeout_s": 0.5}),
        ]
    }
    # The interned detail the first poll started with is untouched by the merge.
    assert trace.details[spans.detail[0]] == {"timeout_s": None}


def test_spans_still_open_close_at_the_end_of_the_run() -> None:
    trace = trace_of([
        (0, 0, Code.RUNNING, NO_LANE, ()),
        (5, 1, Code.SLEEPING, NO_LANE, ("delay_s", 1.0)),
        (7, 0, Code.READY, NO_LANE, ()),
        (9, 2, Code.MARK, NO_LANE, ("text", "no state on this lane")),
    ])

    spans = derive_spans(trace)

    assert spans_by_lane(trace, spans) == {
        0: [("running", 0, 7, {}), ("ready", 7, 9, {})],
        1: [("sleeping", 5, 9, {"delay_s": 1.0})],
    }


def test_finish_never_closes_a_span_before_it_started() -> None:
    trace = trace_of([(0, 0, Code.RUNNING, NO_LANE, ()), (50, 1, Code.POLL, NO_LANE, ())])
    builder = SpanBuilder()
    builder.feed(trace)
    assert builder.open_span(1) == (Code.POLL, 50)
    assert sorted(builder.open_lanes()) == [0, 1]

    spans = builder.finish(20)

    assert [(r.lane, r.start, r.end) for r in span_rows(trace, spans)] == [(0, 0, 20), (1, 50, 50)]
    assert builder.open_lanes() == []


def random_trace(seed: int, count: int) -> Trace:
    rng = random.Random(seed)
    codes = [*Code]
    rows: list[Row] = []
    ts = 0
    for _ in range(count):
        ts += rng.randint(0, 5)
        code = rng.choice(codes)
        detail: Detail = rng.choice([(), ("fd", rng.randint(0, 3)), ("readable", (1, 2))])
        rows.append((ts, rng.randint(0, 6), code, rng.randint(-1, 6), detail))
    return trace_of(rows)


def spans_as_data(spans: Spans) -> tuple[object, ...]:
    return (
        list(spans.lane), list(spans.state), list(spans.start), list(spans.end),
        list(spans.detail), list(spans.source), list(spans.start_seq), spans.annotated,
        list(spans.arrow_seq), {lane: list(idx) for lane, idx in spans.by_lane.items()},
    )


@pytest.mark.parametrize("seed", range(5))
def test_the_fold_fed_in_slices_equals_the_fold_in_one_go(seed: int) -> None:
    trace = random_trace(seed, 3000)
    expected = derive_spans(trace)
    rng = random.Random(seed)
    builder = SpanBuilder()

    stop = 0
    while stop < len(trace):
        stop = min(len(trace), stop + rng.randint(0, 200))
        builder.feed(trace, stop)
    spans = builder.finish(trace.duration_ns)

    assert len(expected) > 100 and expected.annotated
    assert spans_as_data(spans) == spans_as_data(expected)


def test_a_live_builder_keeps_up_with_a_growing_trace() -> None:
    full = random_trace(11, 2000)
    growing = Trace()
    builder = SpanBuilder()
    growing.listeners.append(lambda first, count: builder.feed(growing))
    recorder = Recorder(growing, clock=FakeClock(), batch_size=37)

    for event in full.events():
        recorder.clock.now_ns = event.ts  # type: ignore[attr-defined]
        detail = tuple(x for kv in event.detail.items() for x in kv)
        detail = tuple(tuple(v) if isinstance(v, list) else v for v in detail)
        recorder.record(event.lane, event.code, event.other, recorder.detail(detail))
    recorder.close()

    assert builder.fed == len(full)
    assert spans_as_data(builder.finish(growing.duration_ns)) == spans_as_data(
        derive_spans(full)
    )


def reference_fold(trace: Trace) -> Spans:
    """The fold's rules one event at a time, in their plainest form: what the column-wise
    fold must agree with."""
    spans = Spans()
    open_spans: dict[int, list[object]] = {}

    def close(lane: int, current: list[object], end: int) -> None:
        index = len(spans.start)
        for column, value in ((spans.lane, lane), (spans.state, current[0]),
                              (spans.start, current[1]), (spans.end, end),
                              (spans.detail, current[2]), (spans.source, current[3]),
                              (spans.start_seq, current[4])):
            column.append(value)  # type: ignore[arg-type]
        if current[5] is not None:
            spans.annotated[index] = current[5]  # type: ignore[assignment]
        spans.by_lane.setdefault(lane, array("i")).append(index)

    for seq in range(len(trace)):
        code, lane, ts = trace.code[seq], trace.lane[seq], trace.ts[seq]
        if code < 16:
            current = open_spans.get(lane)
            if current is not None:
                close(lane, current, ts)
            open_spans[lane] = [code, ts, trace.detail[seq], trace.source[seq], seq, None]
        elif code in (Code.WAKE, Code.SWITCH):
            spans.arrow_seq.append(seq)
        elif code == Code.END:
            current = open_spans.pop(lane, None)
            if current is not None:
                close(lane, current, ts)
        elif code == Code.ANNOTATE:
            current = open_spans.get(lane)
            if current is not None:
                if current[5] is None:
                    current[5] = dict(trace.details[current[2]])  # type: ignore[index]
                current[5].update(trace.details[trace.detail[seq]])  # type: ignore[attr-defined]
    for lane, current in sorted(open_spans.items()):
        close(lane, current, max(trace.duration_ns, current[1]))  # type: ignore[type-var]
    return spans


@pytest.mark.parametrize("piece", [1, 2, 7, 64, 1 << 18])
@pytest.mark.parametrize("seed", range(4))
def test_the_column_wise_fold_agrees_with_the_fold_event_by_event(
        seed: int, piece: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces of every size, so a span carried open from one piece to the next, annotated
    in one and closed in another, and a lane ended and begun again are all met."""
    monkeypatch.setattr(spans_module, "FOLD_PIECE", piece)
    trace = random_trace(seed, 2500)
    expected = reference_fold(trace)

    assert len(expected) > 100 and expected.annotated
    assert spans_as_data(derive_spans(trace)) == spans_as_data(expected)
    rng = random.Random(seed)
    builder = SpanBuilder()
    while builder.fed < len(trace):
        builder.feed(trace, min(len(trace), builder.fed + rng.randint(1, 300)))
    assert spans_as_data(builder.finish(trace.duration_ns)) == spans_as_data(expected)
