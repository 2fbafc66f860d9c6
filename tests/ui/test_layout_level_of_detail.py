"""The timeline's layout reads what is on screen, not the whole trace: counted work, not time.

A lane with many spans a pixel is laid out from its level of detail (the duration maxima and
the running state counts); these tests count the span entries a layout reads
(ui.layout.LAYOUT_WORK) and check the frames are the same as the span-by-span layout's.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.big_trace import make_trace
from loopscope.tracer.spans import SpanBuilder, Spans, derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui import layout as layout_module
from loopscope.ui.layout import LAYOUT_WORK, Primitives, Viewport, layout, span_index
from loopscope.ui.trace_loading import prepare_views

WIDTH = 1600
TASKS = 4


def frame_and_work(trace: Trace, viewport: Viewport) -> tuple[Primitives, int]:
    spans = derive_spans(trace)
    span_index(trace, spans)  # built once, as the loading worker does
    LAYOUT_WORK.spans_read = 0
    frame = layout(trace, spans, viewport)
    return frame, LAYOUT_WORK.spans_read


def full_view(trace: Trace) -> Viewport:
    return Viewport(float(trace.ts[0]), float(trace.duration_ns), WIDTH, 400)


@pytest.fixture(scope="module")
def small() -> Trace:
    return make_trace(100_000, TASKS)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def large() -> Trace:
    return make_trace(1_000_000, TASKS)  # type: ignore[return-value]


def test_the_full_view_reads_about_as_much_of_a_ten_times_larger_trace(small: Trace,
                                                                        large: Trace) -> None:
    _, small_work = frame_and_work(small, full_view(small))
    frame, large_work = frame_and_work(large, full_view(large))
    spans = len(derive_spans(large))
    assert len(frame.rects) > 0
    assert large_work < 2 * small_work
    # a few times the pixel columns per lane, far below the spans in view
    assert large_work < 8 * WIDTH * (TASKS + 1) < spans / 4


def test_a_zoomed_view_reads_only_the_spans_in_its_window(large: Trace) -> None:
    start = float(large.ts[len(large) // 2])
    window = 2_000 * 100  # ns: 2,000 events' worth, 100 ns apart
    viewport = Viewport(start, start + window, WIDTH, 400)
    frame, work = frame_and_work(large, viewport)
    assert len(frame.rects) > 0
    assert work <= 2_000 + 2 * (TASKS + 1)


@pytest.mark.parametrize("width", [1600, 400, 173])
def test_the_level_of_detail_draws_what_the_span_by_span_layout_draws(
        large: Trace, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    spans = derive_spans(large)
    first, last = float(large.ts[0]), float(large.duration_ns)
    views = [(first, last), (first - 1e6, last + 2e7), (first + 1e7, first + 3.3e7)]
    for start, end in views:
        viewport = Viewport(start, end, width, 400)
        by_detail = layout(large, spans, viewport)
        monkeypatch.setattr(layout_module, "_DENSE_FACTOR", 10**12)
        by_span = layout(large, spans, viewport)
        monkeypatch.undo()
        for column in ("x", "y", "w", "h", "state", "span", "lane"):
            assert np.array_equal(getattr(by_detail.rects, column),
                                  getattr(by_span.rects, column)), column
        assert by_detail.merged_from == by_span.merged_from
        assert np.array_equal(by_detail.strips, by_span.strips)


def test_wide_spans_are_found_as_a_scan_finds_them_while_a_lane_grows() -> None:
    rng = np.random.default_rng(11)
    lane = layout_module._LaneColumns()
    at = 0
    for batch in (1, 2, 5, 300, 1, 77, 4096, 3):  # live batches of every parity
        durations = rng.integers(0, 1000, size=batch) ** 2 // 1000
        start = at + np.concatenate(([0], np.cumsum(durations)[:-1]))
        at = int(start[-1] + durations[-1])
        lane.extend(np.arange(len(lane), len(lane) + batch), start, start + durations,
                    np.full(batch, 4, np.int8))
        every = lane.duration.view
        for first, stop, at_least, blocks in ((0, len(lane), 500, 8), (3, len(lane) - 1, 1, 1),
                                              (len(lane) // 3, len(lane), 900, 64)):
            expected = np.nonzero(every[first:stop] >= at_least)[0] + first
            assert lane.wide_spans(first, stop, at_least, blocks).tolist() == expected.tolist()


def test_opening_builds_the_timeline_index_before_the_first_frame(small: Trace) -> None:
    builder = SpanBuilder()
    builder.feed(small)
    prepare_views(small, builder)
    index = span_index(small, builder.spans)
    assert {lane: len(columns) for lane, columns in index.lanes.items()} == {
        lane: len(spans) for lane, spans in builder.spans.by_lane.items()}
    assert builder.open_span(1) is None  # closed at the run's end, as the timeline shows it


def merged_columns_by_brute_force(frame: Primitives, spans: Spans) -> np.ndarray:
    """Each drawn row's merged columns from the definition, span by span and column by
    column: a column is merged where a narrow span (under a pixel) lies in it, and shows the
    highest-ranked state of all the spans in it: those ending after its left edge (or
    starting on or after it) and starting before its right edge."""
    vp = frame.viewport
    columns = frame.strips.shape[1]
    npp = vp.ns_per_px
    edges = np.floor(vp.start_ns + np.arange(columns + 1) * npp).astype(np.int64)
    rank_of = {state: rank for rank, state in enumerate(layout_module.STATES_BY_RANK)}
    expected = np.full(frame.strips.shape, -1, dtype=np.int8)
    start, end = np.array(spans.start), np.array(spans.end)
    state, lane_of = np.array(spans.state), np.array(spans.lane)
    for number, row in enumerate(frame.strip_rows):
        mine = lane_of == row.lane
        s, e, st = start[mine], end[mine], state[mine]
        narrow = e - s < math.ceil(npp)
        for k in range(columns):
            inside = ((e > edges[k]) | (s >= edges[k])) & (s < edges[k + 1])
            if (inside & narrow).any():
                expected[number, k] = max(st[inside], key=lambda code: rank_of[int(code)])
    return expected


@pytest.mark.parametrize("width", [1600, 400, 173])
@pytest.mark.parametrize("in_pieces", [False, True])
def test_merged_columns_are_the_highest_ranked_state_of_each_column(
        width: int, in_pieces: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if in_pieces:  # busy lanes one at a time, small groups: runs from many passes
        monkeypatch.setattr(layout_module, "_DENSE_CELLS_AT_ONCE", 1)
        monkeypatch.setattr(layout_module, "_GROUP_SPANS", 100)
    trace = make_trace(60_000, TASKS)
    spans = derive_spans(trace)
    first, last = float(trace.ts[0]), float(trace.duration_ns)
    length = last - first
    # Whole run (lanes with many spans a pixel), a tenth (lanes with many spans for the
    # columns) and a twenty-fifth (few spans for the columns: 100 ns spans, 200 ns pixels),
    # with and without folded lanes.
    for start, stop in ((first, last), (first + length / 3, first + length * 0.43),
                        (first + length / 2, first + length * 0.54)):
        for folded in (frozenset(), frozenset({2, 3})):
            viewport = Viewport(start, stop, width, 400, folded_lanes=folded)
            frame = layout(trace, spans, viewport)
            assert np.array_equal(frame.strips, merged_columns_by_brute_force(frame, spans))
            # The merged runs are the strips' runs of one state, row by row.
            runs = frame.rects
            merged = slice(frame.merged_from, len(runs))
            drawn = np.full(frame.strips.shape, -1, dtype=np.int8)
            for x, w, state, lane, y in zip(runs.x[merged], runs.w[merged], runs.state[merged],
                                            runs.lane[merged], runs.y[merged], strict=True):
                column = int(x - frame.plot.x)
                number = next(n for n, row in enumerate(frame.strip_rows)
                              if row.lane == lane and layout_module.state_band(
                                  row, viewport)[0] == y)
                assert (drawn[number, column:column + int(w)] == -1).all()
                drawn[number, column:column + int(w)] = state
            assert np.array_equal(drawn, frame.strips)
