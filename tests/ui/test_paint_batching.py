"""The paint shortcuts draw the same pixels as the plain way: dense rectangles as images, many
arrows in batches, lane names and legend from a cached image."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PySide6.QtCore import QLineF, QPointF, Qt
from PySide6.QtGui import QImage, QPainter, QPainterPath, QPen, QPolygonF
from pytestqt.qtbot import QtBot

import loopscope.ui.paint as paint_module
from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.layout import ARROW_KINDS, Primitives, Viewport, layout
from loopscope.ui.paint import ARROW_HEAD, FINE_ARROWS, paint
from loopscope.ui.theme import LIGHT

pytestmark = pytest.mark.gui

WIDTH, HEIGHT = 1200, 500


def busy_trace(turns: int = 3000, tasks: int = 6) -> Trace:
    """A loop waking tasks in turn, with gaps of many sizes so spans range from far below a
    pixel to many pixels wide at 1200 px."""
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    loop = recorder.spawn("event loop", LaneKind.LOOP)
    lanes = [recorder.spawn(f"task {n}", LaneKind.TASK, parent=loop) for n in range(tasks)]
    gaps = np.random.default_rng(3).exponential(20_000, size=(turns, 3)).astype(np.int64) + 1
    for turn in range(turns):
        task = lanes[turn % tasks]
        recorder.state(loop, Code.DISPATCH)
        recorder.wake(task, loop, ("cause", "timer"))
        clock.now_ns += int(gaps[turn, 0])
        recorder.state(task, Code.RUNNING)
        clock.now_ns += int(gaps[turn, 1])
        if turn % 5 == 0:
            recorder.switch(task, lanes[(turn + 1) % tasks], ("via", "yield"))
        recorder.state(task, Code.SLEEPING)
        recorder.state(loop, Code.POLL)
        clock.now_ns += int(gaps[turn, 2])
    for task in lanes:
        recorder.end(task)
    recorder.end(loop)
    recorder.close()
    return trace


def frame_of(trace: Trace, start_ns: float, end_ns: float, **options: object) -> Primitives:
    viewport = Viewport(start_ns, end_ns, WIDTH, HEIGHT, label_width=168.0, **options)  # type: ignore[arg-type]
    return layout(trace, derive_spans(trace), viewport)


def pixels(draw: object, primitives: Primitives) -> np.ndarray:
    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0xFF808080)
    painter = QPainter(image)
    draw(painter, primitives)  # type: ignore[operator]
    painter.end()
    return np.frombuffer(image.constBits(), np.uint8).reshape(HEIGHT, WIDTH, 4).astype(int)


def whole_frame(painter: QPainter, primitives: Primitives) -> None:
    paint(painter, primitives, LIGHT)


def test_dense_exact_rectangles_as_images_are_the_same_pixels(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = busy_trace()
    middle = trace.duration_ns / 2
    for width_ns in (trace.duration_ns / 40, trace.duration_ns / 4, trace.duration_ns):
        primitives = frame_of(trace, middle - width_ns / 2, middle + width_ns / 2)
        assert primitives.merged_from > 100  # many exact rectangles, so the test means it
        monkeypatch.setattr(paint_module, "EXACT_RECTS_AS_IMAGE", 10**9)
        one_by_one = pixels(whole_frame, primitives)
        monkeypatch.setattr(paint_module, "EXACT_RECTS_AS_IMAGE", 0)
        monkeypatch.setattr(paint_module, "IMAGE_CELLS_PER_RECT", 0.0)
        as_images = pixels(whole_frame, primitives)
        assert np.array_equal(one_by_one, as_images), width_ns


def strokes_one_by_one(painter: QPainter, primitives: Primitives) -> None:
    """Many arrows drawn the plain way: a pen stroke per shaft and halo, a polygon per head."""
    ink = paint_module._ink(LIGHT)
    for kind in ARROW_KINDS:
        shafts: list[QLineF] = []
        heads: list[QPolygonF] = []
        for arrow in primitives.arrows:
            if arrow.kind != kind:
                continue
            down = 1.0 if arrow.y1 > arrow.y0 else -1.0
            x = float(round(arrow.x))
            shafts.append(QLineF(x, arrow.y0, x, arrow.y1 - down * ARROW_HEAD))
            heads.append(QPolygonF([
                QPointF(x, arrow.y1),
                QPointF(x - ARROW_HEAD / 2, arrow.y1 - down * ARROW_HEAD),
                QPointF(x + ARROW_HEAD / 2, arrow.y1 - down * ARROW_HEAD),
            ]))
        painter.setPen(QPen(ink.background, 4.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
        painter.drawLines(shafts)
        pen = QPen(ink.arrows[kind], 2.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap)
        if kind == "switch":
            pen.setDashPattern([2.0, 1.5])
        painter.setPen(pen)
        painter.drawLines(shafts)
        for head in heads:  # each on its own, so overlapping heads fill as one
            path = QPainterPath()
            path.addPolygon(head)
            path.closeSubpath()
            painter.fillPath(path, ink.arrows[kind])


def batched(painter: QPainter, primitives: Primitives) -> None:
    paint_module._paint_arrows(painter, primitives, paint_module._ink(LIGHT))


def test_many_arrows_in_batches_are_the_same_pixels_as_one_by_one(qtbot: QtBot) -> None:
    trace = busy_trace(turns=600)
    primitives = frame_of(trace, 0, trace.duration_ns / 3)
    kinds = {arrow.kind for arrow in primitives.arrows}
    assert len(primitives.arrows) > FINE_ARROWS and kinds == {"wake", "switch"}
    # Arrows leaving the loop lane at the same pixel overlap: the merged fills must agree too.
    columns = [round(arrow.x) for arrow in primitives.arrows]
    assert len(set(columns)) < len(columns)
    assert np.array_equal(pixels(strokes_one_by_one, primitives), pixels(batched, primitives))


def test_row_ranges_in_a_column_merge_only_where_they_overlap_or_touch() -> None:
    rng = np.random.default_rng(5)
    column = rng.integers(0, 6, size=300)
    first = rng.integers(-40, 400, size=300)
    end = first + rng.integers(0, 60, size=300)
    merged = paint_module._union_per_column(column, first, end)

    def covered(columns: np.ndarray, firsts: np.ndarray, ends: np.ndarray) -> set[tuple[int, int]]:
        return {(c, r) for c, f, e in zip(columns.tolist(), firsts.tolist(), ends.tolist(),
                                          strict=True) for r in range(f, e)}

    assert covered(*merged) == covered(column, first, end)
    order = np.lexsort((merged[1], merged[0]))
    c, f, e = (part[order] for part in merged)
    same_column = c[1:] == c[:-1]
    assert (f[1:][same_column] > e[:-1][same_column]).all()  # apart, so nothing left to merge
    assert len(c) < len(column)


def test_runs_of_a_grid_are_set_as_one_by_one_disjoint_or_overlapping() -> None:
    rng = np.random.default_rng(11)
    rows, columns = 4, 50
    # Disjoint runs (as exact spans are), in no particular order; then some overlapping.
    cuts = [np.sort(rng.choice(columns + 1, size=10, replace=False)) for _ in range(rows)]
    disjoint = [(row, int(a), int(b)) for row in range(rows)
                for a, b in zip(cuts[row][0::2], cuts[row][1::2], strict=True)]
    rng.shuffle(disjoint)
    overlapping = [*disjoint, (1, 3, 30), (2, 0, columns), (1, 20, 24)]
    for runs in (disjoint, overlapping):
        row, left, right = (np.array(part, dtype=np.int64) for part in zip(*runs, strict=True))
        state = rng.integers(0, 9, size=len(runs)).astype(np.int8)
        expected = np.full((rows, columns), -1, dtype=np.int8)
        for r, a, b, code in zip(row, left, right, state, strict=True):
            expected[r, a:b] = code  # a later run over an earlier one
        grid = paint_module._runs_grid(rows, columns, row, left, right, state, np.dtype(np.int8))
        assert np.array_equal(grid, expected)


def test_cached_names_and_legend_match_drawing_them_directly(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    trace = busy_trace(turns=200)
    first = frame_of(trace, 0, trace.duration_ns)
    scrolled = frame_of(trace, 0, trace.duration_ns / 2, lane_height=120.0, scroll_y=130.0)
    assert [row.name for row in first.lanes] != [row.name for row in scrolled.lanes]
    cached = [pixels(whole_frame, p) for p in (first, scrolled, first)]
    monkeypatch.setattr(paint_module, "_draw_cached", lambda *args: False)
    direct = [pixels(whole_frame, p) for p in (first, scrolled, first)]
    for from_cache, drawn in zip(cached, direct, strict=True):
        # Text blended onto a transparent image and then onto the background may round one
        # level differently from text blended onto the background at once.
        assert np.abs(from_cache - drawn).max() <= 2
    assert np.abs(cached[0] - cached[1]).max() > 100  # the cache followed the new names


@pytest.mark.parametrize("width", [560, 760, 1200])
def test_the_legend_stops_short_of_the_note_on_arrows_not_drawn(qtbot: QtBot,
                                                                  width: int) -> None:
    import dataclasses

    from PySide6.QtGui import QFontMetricsF

    from loopscope.ui.paint import legend_places

    trace = busy_trace(turns=200)
    primitives = layout(trace, derive_spans(trace), Viewport(
        start_ns=0, end_ns=trace.duration_ns, width=width, height=HEIGHT))
    metrics = QFontMetricsF(paint_module._ink(LIGHT).font)
    box = primitives.legend_box
    shown = legend_places(primitives, metrics.horizontalAdvance)
    assert [entry for entry, _x, _w in shown] == primitives.legend[:len(shown)]
    crowded = dataclasses.replace(primitives, arrows_hidden=1_234_567)
    kept = legend_places(crowded, metrics.horizontalAdvance)
    note_left = box.x + box.w - paint_module.LABEL_INSET - metrics.horizontalAdvance(
        "1,234,567 arrows not drawn: zoom in to see them")
    assert kept == shown[:len(kept)]
    assert all(x + 18 + text_width <= note_left for _entry, x, text_width in kept)
    # entries are laid left to right without overlapping one another
    assert all(a[1] + 18 + a[2] < b[1] for a, b in itertools.pairwise(kept))
