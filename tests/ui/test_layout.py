"""Structural tests of the timeline layout: pure geometry, no Qt."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys

import numpy as np
import pytest

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.query import lane_named, span_rows
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import SpanBuilder, derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.layout import (
    MERGED_SPAN,
    OPEN_SPAN,
    STATES_BY_RANK,
    Primitives,
    SpanIndex,
    Viewport,
    hit_at,
    lane_at,
    layout,
    nice_step,
    span_at,
    time_ticks,
)
from tests.ui.conftest import MS, build_sample_trace

WIDTH = 1600
LABELS = 168.0


def viewport(start_ns: float, end_ns: float, **overrides: object) -> Viewport:
    settings: dict[str, object] = {"width": WIDTH, "height": 600, "label_width": LABELS}
    settings.update(overrides)
    return Viewport(start_ns, end_ns, **settings)  # type: ignore[arg-type]


def rects_of_span(primitives: Primitives, span: int) -> list[tuple[float, float]]:
    rects = primitives.rects
    return [(float(rects.x[i]), float(rects.w[i])) for i in np.nonzero(rects.span == span)[0]]


def lane_rects(primitives: Primitives, lane: int) -> list[tuple[float, float, int, int]]:
    rects = primitives.rects
    return [
        (float(rects.x[i]), float(rects.w[i]), int(rects.state[i]), int(rects.span[i]))
        for i in np.nonzero(rects.lane == lane)[0]
    ]


def test_lanes_are_ordered_loop_first_then_in_spawn_order() -> None:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1000))
    first = recorder.spawn("first task", LaneKind.TASK)
    second = recorder.spawn("second greenlet", LaneKind.GREENLET)
    hub = recorder.spawn("hub", LaneKind.LOOP)
    third = recorder.spawn("third", LaneKind.TASK)
    for lane in (first, second, hub, third):
        recorder.state(lane, Code.RUNNING)
    recorder.close()

    primitives = layout(trace, derive_spans(trace), viewport(0, trace.duration_ns))

    assert [row.name for row in primitives.lanes] == ["hub", "first task", "second greenlet",
                                                      "third"]
    assert [row.lane for row in primitives.lanes] == [hub, first, second, third]
    tops = [row.y for row in primitives.lanes]
    assert tops == sorted(tops) and len(set(tops)) == 4


def test_a_span_rect_sits_where_its_times_say() -> None:
    trace = build_sample_trace()
    spans = derive_spans(trace)
    vp = viewport(0, 100 * MS)
    primitives = layout(trace, spans, vp)
    px_per_ns = (WIDTH - LABELS) / (100 * MS)

    for row in span_rows(trace, spans):
        [(x, w)] = rects_of_span(primitives, row.span)
        assert x == pytest.approx(LABELS + row.start * px_per_ns)
        assert w == pytest.approx((row.end - row.start) * px_per_ns)
    # Each rect lies inside its own lane's row.
    rows = {lane_row.lane: lane_row for lane_row in primitives.lanes}
    rects = primitives.rects
    for i in range(len(rects)):
        row = rows[int(rects.lane[i])]
        assert row.y <= rects.y[i] and rects.y[i] + rects.h[i] <= row.y + row.height


def test_spans_outside_the_viewport_produce_nothing() -> None:
    trace = build_sample_trace()
    spans = derive_spans(trace)
    primitives = layout(trace, spans, viewport(72 * MS, 80 * MS))

    drawn = set(primitives.rects.span.tolist())
    for row in span_rows(trace, spans):
        overlaps = row.end > 72 * MS and row.start < 80 * MS
        assert (row.span in drawn) == overlaps, row
    # A span cut by the edge is clipped to it.
    nap_running = next(r for r in span_rows(trace, spans, lane_named(trace, "nap").id)
                       if r.start == 75 * MS)
    [(x, w)] = rects_of_span(primitives, nap_running.span)
    assert x == pytest.approx(LABELS + 3 / 8 * (WIDTH - LABELS))
    assert x + w == pytest.approx(WIDTH)
    assert all(72 * MS <= t.ns <= 80 * MS for t in primitives.ticks)
    assert all(72 * MS <= trace.ts[m.seq] <= 80 * MS for m in primitives.markers)
    assert all(72 * MS <= trace.ts[a.seq] <= 80 * MS for a in primitives.arrows)


def burst_trace(burst_states: list[int], burst_ns: int = 1) -> tuple[Trace, int]:
    """A lane: running 0-10 ms, a burst of 1-ns spans at 10 ms, then io-wait to 20 ms."""
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    lane = recorder.spawn("busy", LaneKind.TASK)
    recorder.state(lane, Code.RUNNING)
    clock.now_ns = 10 * MS
    for state in burst_states:
        recorder.state(lane, state)
        clock.advance(burst_ns)
    recorder.state(lane, Code.IO_WAIT)
    clock.now_ns = 20 * MS
    recorder.end(lane)
    recorder.close()
    return trace, lane


def test_a_thousand_sub_pixel_spans_in_one_column_merge_into_one_rect() -> None:
    states = [Code.READY, Code.RUNNING, Code.BLOCKED, Code.SLEEPING] * 250
    trace, lane = burst_trace(states)
    spans = derive_spans(trace)
    assert len(spans) == 1002
    # 1432 px over 20 ms: 13,966 ns a pixel, so the 1,000 ns burst sits inside one column.
    primitives = layout(trace, spans, viewport(0, 20 * MS))

    rects = lane_rects(primitives, lane)
    merged = [r for r in rects if r[3] == MERGED_SPAN]
    assert len(merged) == 1
    x, w, state, _ = merged[0]
    assert state == Code.RUNNING  # running wins the column
    assert w == 1.0
    burst_x = LABELS + 10 * MS * (WIDTH - LABELS) / (20 * MS)
    assert x <= burst_x < x + w
    # The wide neighbours keep exact rects of their own.
    exact = {r[2] for r in rects if r[3] >= 0}
    assert exact == {Code.RUNNING, Code.IO_WAIT}
    assert len(rects) == 3


def test_a_merged_column_without_running_shows_the_highest_ranked_state() -> None:
    trace, lane = burst_trace([Code.SLEEPING, Code.READY, Code.POLL] * 100)
    spans = derive_spans(trace)

    # 0-20 ms over 1432 px puts 10 ms exactly on a column's left edge: the running span
    # before the burst ends there, so it is not in the column and ready outranks the rest.
    aligned = layout(trace, spans, viewport(0, 20 * MS))
    [merged] = [r for r in lane_rects(aligned, lane) if r[3] == MERGED_SPAN]
    assert merged[2] == Code.READY
    assert STATES_BY_RANK.index(Code.READY) > STATES_BY_RANK.index(Code.SLEEPING)
    # Shifted by 5 µs, the running span's last nanoseconds share the burst's column: it wins.
    shifted = layout(trace, spans, viewport(5_000, 20 * MS + 5_000))
    [merged] = [r for r in lane_rects(shifted, lane) if r[3] == MERGED_SPAN]
    assert merged[2] == Code.RUNNING


def reference_strip(starts: list[int], ends: list[int], states: list[int], edges: np.ndarray,
                    ns_per_px: float) -> list[int]:
    """The merged-column rule computed the slow, obvious way, column by column."""
    rank = {state: r for r, state in enumerate(STATES_BY_RANK)}
    strip = []
    for k in range(len(edges) - 1):
        left, right = int(edges[k]), int(edges[k + 1])
        inside = [i for i in range(len(starts))
                  if starts[i] < right and (ends[i] > left or starts[i] >= left)]
        narrow = [i for i in inside if ends[i] - starts[i] < ns_per_px]
        if not narrow:
            strip.append(-1)
            continue
        strip.append(int(max((states[i] for i in inside), key=rank.__getitem__)))
    return strip


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("window", [(0.0, 1.0), (0.4, 0.44)])
def test_merged_columns_match_a_brute_force_reference(
    seed: int, window: tuple[float, float]
) -> None:
    """The whole run puts >1 span a column (searched column by column); the narrow window
    puts a few spans over 300 columns (found span by span): both must follow the rule."""
    rng = random.Random(seed)
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    lane = recorder.spawn("random", LaneKind.TASK)
    for _ in range(400):
        recorder.state(lane, rng.choice(STATES_BY_RANK))
        clock.advance(rng.choice([0, 1, 3, 40, 700, 2500, 9000]))
    recorder.end(lane)
    recorder.close()
    spans = derive_spans(trace)
    duration = trace.duration_ns
    vp = viewport(1000 + window[0] * duration, window[1] * duration - 1000,
                  width=LABELS + 300)
    primitives = layout(trace, spans, vp)

    rows = span_rows(trace, spans, lane)
    visible = [r for r in rows if r.end > vp.start_ns and r.start < vp.end_ns]
    assert (len(visible) > 300 // 4) == (window == (0.0, 1.0))
    edges = np.floor(vp.start_ns + np.arange(301) * vp.ns_per_px).astype(np.int64)
    expected = reference_strip([r.start for r in rows], [r.end for r in rows],
                               [Code[r.state.upper().replace("-", "_")] for r in rows],
                               edges, vp.ns_per_px)
    assert primitives.strips[0].tolist() == expected
    assert any(state >= 0 for state in expected)


def test_wake_and_switch_arrows_connect_the_right_rows() -> None:
    trace = build_sample_trace()
    primitives = layout(trace, derive_spans(trace), viewport(0, 100 * MS))
    rows = {row.name: row for row in primitives.lanes}

    def between(arrow_x_ms: float, source: str, target: str, kind: str) -> None:
        [arrow] = [a for a in primitives.arrows
                   if a.kind == kind and a.x == pytest.approx(primitives.x_of(arrow_x_ms * MS))
                   and a.from_lane == rows[source].lane]
        assert arrow.to_lane == rows[target].lane
        assert rows[source].y <= arrow.y0 < rows[source].y + rows[source].height
        assert rows[target].y <= arrow.y1 <= rows[target].y + rows[target].height
        # The head points from the source towards the target.
        assert (arrow.y1 > arrow.y0) == (rows[target].y > rows[source].y)

    between(60, "event loop", "fetch", "wake")
    between(70, "fetch", "join", "wake")
    between(70, "event loop", "nap", "wake")
    between(10, "fetch", "nap", "switch")
    assert len(primitives.arrows) == 4


def test_ticks_are_monotonic_nice_and_in_the_right_unit() -> None:
    cases = [(0, 100 * MS, "ms"), (0, 2_000 * MS, "s"), (0, 5_000, "µs"), (0, 900, "ns"),
             (123_456, 124_156, "µs")]
    for start, end, unit in cases:
        ticks, note = time_ticks(start, end, LABELS, WIDTH - LABELS)
        assert len(ticks) >= 4, (start, end)
        assert note == ""
        xs = [t.x for t in ticks]
        assert xs == sorted(xs) and xs[0] >= LABELS and xs[-1] <= WIDTH
        steps = {b.ns - a.ns for a, b in itertools.pairwise(ticks)}
        assert len(steps) == 1
        [step] = steps
        assert nice_step(step) == step
        assert str(step).rstrip("0") in {"1", "2", "5"}
        assert all(t.label.endswith(" " + unit) for t in ticks), [t.label for t in ticks]
    labels = [t.label for t in time_ticks(0, 100 * MS, LABELS, WIDTH - LABELS)[0]]
    assert labels[:3] == ["0 ms", "10 ms", "20 ms"]


def test_deep_zoom_far_from_the_start_labels_offsets_from_a_base_time() -> None:
    ticks, note = time_ticks(2_000_000_000, 2_000_000_500, LABELS, WIDTH - LABELS)
    assert note.endswith(" s") and note.startswith("2.000")
    assert [t.label for t in ticks[:3]] == ["+0 ns", "+50 ns", "+100 ns"]


def test_hit_testing_finds_the_span_under_the_point() -> None:
    trace = build_sample_trace()
    spans = derive_spans(trace)
    primitives = layout(trace, spans, viewport(0, 100 * MS))

    for row in span_rows(trace, spans):
        [(x, w)] = rects_of_span(primitives, row.span)
        i = int(np.nonzero(primitives.rects.span == row.span)[0][0])
        middle_y = float(primitives.rects.y[i] + primitives.rects.h[i] / 2)
        assert span_at(primitives, x + w / 2, middle_y) == row.span
        hit = hit_at(primitives, x + w / 2, middle_y)
        assert hit is not None and hit.lane == row.lane
    fetch_row = next(r for r in primitives.lanes if r.name == "fetch")
    # Right of fetch's end (70 ms) the row is empty; the label column is not the plot.
    assert span_at(primitives, primitives.x_of(80 * MS), fetch_row.y + 12) == -1
    assert span_at(primitives, 50, fetch_row.y + 12) == -1
    assert lane_at(primitives, 50, fetch_row.y + 12) == fetch_row.lane
    assert lane_at(primitives, primitives.x_of(5 * MS), fetch_row.y + 12) == -1


def test_scrolling_moves_rows_and_lays_out_only_the_visible_ones() -> None:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1000))
    for n in range(100):
        recorder.state(recorder.spawn(f"connection {n}", LaneKind.CONNECTION), Code.IO_WAIT)
    recorder.close()
    spans = derive_spans(trace)
    vp = viewport(0, trace.duration_ns, height=28 + 240 + 28, lane_height=24.0)

    top = layout(trace, spans, vp)
    scrolled = layout(trace, spans, Viewport(**{**vp.__dict__, "scroll_y": 24.0 * 50}))

    assert top.content_height == 2400
    assert [r.name for r in top.lanes] == [f"connection {n}" for n in range(10)]
    assert [r.name for r in scrolled.lanes] == [f"connection {n}" for n in range(50, 60)]
    assert scrolled.lanes[0].y == top.lanes[0].y
    assert set(scrolled.rects.lane.tolist()) == {r.lane for r in scrolled.lanes}


def test_a_live_builder_draws_open_spans_up_to_now() -> None:
    trace = build_sample_trace()
    cut = next(seq for seq in range(len(trace)) if trace.ts[seq] >= 65 * MS)
    live = Trace()
    live.details, live.sources = trace.details, trace.sources
    live.extend_columns(0, tuple(col[:cut] for col in (trace.ts, trace.lane, trace.code,
                                                        trace.other, trace.detail,
                                                        trace.source)))
    builder = SpanBuilder()
    builder.feed(live)
    now = live.duration_ns

    primitives = layout(live, builder, viewport(0, 100 * MS))

    open_rects = [i for i in range(len(primitives.rects)) if primitives.rects.span[i] == OPEN_SPAN]
    assert {int(primitives.rects.lane[i]) for i in open_rects} == set(builder.open_lanes())
    for i in open_rects:
        lane = int(primitives.rects.lane[i])
        state, since = builder.open_span(lane)  # type: ignore[misc]
        assert primitives.rects.state[i] == state
        right = primitives.rects.x[i] + primitives.rects.w[i]
        assert right == pytest.approx(primitives.x_of(now))
        assert primitives.rects.x[i] == pytest.approx(primitives.x_of(since))
    assert primitives.now_x == pytest.approx(primitives.x_of(now))
    hit = hit_at(primitives, primitives.x_of(now) - 1, float(primitives.rects.y[open_rects[0]]) + 2)
    assert hit is not None and hit.span == OPEN_SPAN


def test_an_index_fed_in_slices_lays_out_like_a_fresh_one() -> None:
    trace = build_sample_trace()
    builder = SpanBuilder()
    growing = Trace()
    growing.details, growing.sources = trace.details, trace.sources
    incremental = SpanIndex()
    columns = (trace.ts, trace.lane, trace.code, trace.other, trace.detail, trace.source)
    for stop in range(1, len(trace) + 1, 3):
        start = len(growing)
        stop = min(stop + 2, len(trace))
        growing.extend_columns(start, tuple(col[start:stop] for col in columns))
        builder.feed(growing)
        incremental.update(growing, builder.spans)
    spans = builder.finish(growing.duration_ns)
    incremental.update(growing, spans)

    vp = viewport(0, 100 * MS)
    fresh = layout(trace, derive_spans(trace), vp)
    fed = layout(growing, spans, vp, index=incremental)
    for name in ("x", "w", "state", "span", "lane"):
        key = np.lexsort((fresh.rects.x, fresh.rects.lane))
        key_fed = np.lexsort((fed.rects.x, fed.rects.lane))
        assert getattr(fed.rects, name)[key_fed].tolist() == \
            getattr(fresh.rects, name)[key].tolist()
    assert fed.arrows == fresh.arrows
    assert fed.markers == fresh.markers
    assert fed.legend == fresh.legend


def test_the_layout_module_does_not_import_qt() -> None:
    code = ("import sys, ui.layout, ui.theme; "
            "print(sorted(m for m in sys.modules if m.startswith(('PySide6', 'shiboken'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("gap_ns", [1, 500, 5_000, 50_000])
def test_a_view_starting_just_after_a_burst_of_narrow_spans_lays_out(gap_ns: int) -> None:
    states = [Code.READY, Code.RUNNING] * 50
    trace, lane = burst_trace(states, burst_ns=10)
    spans = derive_spans(trace)
    burst_end = 10 * MS + 10 * len(states)
    primitives = layout(trace, spans, viewport(burst_end + gap_ns, 20 * MS))

    rects = lane_rects(primitives, lane)
    assert [(state, span >= 0) for _, _, state, span in rects] == [(Code.IO_WAIT, True)]
    assert rects[0][0] == pytest.approx(LABELS)


def test_narrow_spans_in_the_last_partial_pixel_column_lay_out() -> None:
    # A fractional plot width (the name column is measured from the lane names) leaves a
    # partial pixel column at the right edge; a burst that falls only there has no column.
    states = [Code.READY, Code.RUNNING] * 50
    trace, lane = burst_trace(states, burst_ns=1)
    spans = derive_spans(trace)
    primitives = layout(trace, spans, viewport(0, 10 * MS + 200, label_width=168.6))

    rects = lane_rects(primitives, lane)
    assert rects[0][2] == Code.RUNNING and rects[0][3] >= 0  # the wide span before the burst
    assert all(x >= 168.6 and x + w <= WIDTH + 1e-6 for x, w, _, _ in rects)
