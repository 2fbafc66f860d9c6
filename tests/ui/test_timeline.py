"""The timeline widget, driven as a user would: wheel, drag, keys, hover, click; live refresh."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QEvent, QObject, QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.query import lane_named, span_rows
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.framing import RIGHT_MARGIN
from loopscope.ui.layout import OPEN_SPAN
from loopscope.ui.theme import DARK, LIGHT
from loopscope.ui.timeline import MAX_RANGE_NS, ZOOM_STEP, TimelineWidget
from tests.ui.conftest import MS, build_sample_trace

pytestmark = pytest.mark.gui

COLUMNS = (("ts", "q"), ("lane", "i"), ("code", "b"), ("other", "i"), ("detail", "i"),
           ("source", "i"))


class PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


@pytest.fixture
def timeline(qtbot: QtBot) -> Iterator[TimelineWidget]:
    widget = TimelineWidget()
    qtbot.addWidget(widget)
    widget.resize(1000, 400)
    # The live edge moves with this clock between events; a test's runs never move it.
    widget.set_wall_clock(lambda: 0)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget


def partial_copy(trace: Trace, stop: int) -> Trace:
    """A trace holding the first `stop` events of `trace`, sharing its tables."""
    copy = Trace()
    copy.details, copy.sources = trace.details, trace.sources
    copy.extend_columns(0, tuple(getattr(trace, name)[:stop] for name, _ in COLUMNS))
    return copy


def grow(live: Trace, source: Trace, stop: int) -> None:
    start = len(live)
    live.extend_columns(start, tuple(getattr(source, name)[start:stop] for name, _ in COLUMNS))


def wheel(widget: TimelineWidget, x: float, y: float, notches: float,
          modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier,
          horizontal: bool = False) -> None:
    delta = QPoint(int(notches * 120), 0) if horizontal else QPoint(0, int(notches * 120))
    event = QWheelEvent(QPointF(x, y), widget.mapToGlobal(QPointF(x, y)), QPoint(0, 0), delta,
                        Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def row_middle(widget: TimelineWidget, name: str) -> float:
    row = next(r for r in widget.primitives().lanes if r.name == name)
    return row.y + row.height / 2


def test_set_trace_fits_the_run_and_shares_the_spans(timeline: TimelineWidget) -> None:
    trace = build_sample_trace()
    timeline.set_trace(trace)

    # The first view: the whole run (no concept window) with room for the last marker.
    assert timeline.view_range == pytest.approx((0.0, 100 * MS * (1 + RIGHT_MARGIN)))
    timeline.zoom_to_fit()
    assert timeline.view_range == (0.0, 100 * MS)
    assert list(timeline.spans.start) == list(derive_spans(trace).start)
    assert [r.name for r in timeline.primitives().lanes] == ["event loop", "fetch", "nap",
                                                             "join"]
    assert not timeline.follow_live


def test_the_wheel_zooms_around_the_cursor(timeline: TimelineWidget) -> None:
    timeline.set_trace(build_sample_trace())
    timeline.zoom_to_fit()
    primitives = timeline.primitives()
    x = primitives.x_of(30 * MS)

    wheel(timeline, x, row_middle(timeline, "fetch"), 1)

    start, end = timeline.view_range
    assert end - start == pytest.approx(100 * MS / ZOOM_STEP)
    assert timeline.primitives().ns_at(x) == pytest.approx(30 * MS)
    wheel(timeline, x, row_middle(timeline, "fetch"), -1)
    assert timeline.view_range == pytest.approx((0.0, 100 * MS))


def test_dragging_pans_and_keys_zoom_and_pan(timeline: TimelineWidget, qtbot: QtBot) -> None:
    timeline.set_trace(build_sample_trace())
    timeline.set_view_range(20 * MS, 60 * MS)
    ns_per_px = 40 * MS / timeline.primitives().plot.w
    y = int(row_middle(timeline, "nap"))

    qtbot.mousePress(timeline, Qt.MouseButton.LeftButton, pos=QPoint(600, y))
    qtbot.mouseMove(timeline, QPoint(550, y))
    qtbot.mouseMove(timeline, QPoint(500, y))
    qtbot.mouseRelease(timeline, Qt.MouseButton.LeftButton, pos=QPoint(500, y))
    start, end = timeline.view_range
    assert start == pytest.approx(20 * MS + 100 * ns_per_px)
    assert end - start == pytest.approx(40 * MS)
    assert timeline.selected_span == -1  # a drag is not a click

    timeline.set_view_range(20 * MS, 60 * MS)
    qtbot.keyClick(timeline, Qt.Key.Key_D)
    assert timeline.view_range == pytest.approx((26 * MS, 66 * MS))
    qtbot.keyClick(timeline, Qt.Key.Key_A)
    assert timeline.view_range == pytest.approx((20 * MS, 60 * MS))
    qtbot.keyClick(timeline, Qt.Key.Key_W)
    start, end = timeline.view_range
    assert end - start == pytest.approx(40 * MS / ZOOM_STEP)
    assert start >= 20 * MS and end <= 60 * MS
    qtbot.keyClick(timeline, Qt.Key.Key_S)
    start, end = timeline.view_range
    assert end - start == pytest.approx(40 * MS)
    qtbot.keyClick(timeline, Qt.Key.Key_F)
    assert timeline.view_range == (0.0, 100 * MS)


def many_lanes_trace(count: int) -> Trace:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1000))
    for n in range(count):
        recorder.state(recorder.spawn(f"conn {n}", LaneKind.CONNECTION), Code.IO_WAIT)
    recorder.close()
    return trace


def test_shift_wheel_and_arrow_keys_scroll_the_lanes(timeline: TimelineWidget,
                                                     qtbot: QtBot) -> None:
    timeline.set_trace(many_lanes_trace(60))
    assert timeline.primitives().lanes[0].name == "conn 0"
    view = timeline.view_range

    wheel(timeline, 500, 200, -1, modifiers=Qt.KeyboardModifier.ShiftModifier)
    assert timeline.scroll_y > 0
    assert timeline.primitives().lanes[0].name == "conn 3"
    assert timeline.view_range == view  # lanes scrolled, time did not move
    qtbot.keyClick(timeline, Qt.Key.Key_Up)
    assert timeline.primitives().lanes[0].name == "conn 2"
    qtbot.keyClick(timeline, Qt.Key.Key_End)
    for _ in range(100):
        qtbot.keyClick(timeline, Qt.Key.Key_Down)
    last = timeline.primitives().lanes[-1]
    assert last.name == "conn 59"
    assert last.y + last.height <= timeline.primitives().plot.y + timeline.primitives().plot.h


def test_hover_explains_the_span_under_the_cursor(timeline: TimelineWidget) -> None:
    trace = build_sample_trace()
    timeline.set_trace(trace)
    primitives = timeline.primitives()

    text = timeline.tooltip_at(primitives.x_of(5 * MS), row_middle(timeline, "fetch"))
    assert "<b>fetch</b>" in text and "<b>running</b>" in text
    assert "start 0 ns" in text and "duration 10.0 ms" in text
    assert "sample.py:12 in fetch" in text
    text = timeline.tooltip_at(primitives.x_of(30 * MS), row_middle(timeline, "fetch"))
    assert "io-wait" in text and "fd: 7" in text and "peer: 127.0.0.1:40123" in text
    text = timeline.tooltip_at(primitives.x_of(30 * MS), row_middle(timeline, "event loop"))
    assert "poll" in text and "readable: 7" in text and "writable: none" in text
    assert timeline.tooltip_at(primitives.x_of(90 * MS), row_middle(timeline, "fetch")) == ""
    text = timeline.tooltip_at(20, row_middle(timeline, "nap"))
    assert "<b>nap</b>" in text and "task" in text and "by event loop" in text


def test_clicks_select_spans_and_lanes(timeline: TimelineWidget, qtbot: QtBot) -> None:
    trace = build_sample_trace()
    timeline.set_trace(trace)
    primitives = timeline.primitives()
    join = lane_named(trace, "join").id
    blocked = next(r for r in span_rows(trace, timeline.spans, join) if r.state == "blocked")
    point = QPoint(int(primitives.x_of(40 * MS)), int(row_middle(timeline, "join")))

    with qtbot.waitSignal(timeline.span_selected) as selected:
        qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=point)
    assert selected.args == [blocked.span]
    highlight = timeline.primitives().highlight
    assert highlight is not None
    assert highlight.x == pytest.approx(primitives.x_of(20 * MS))
    assert highlight.w == pytest.approx(primitives.x_of(70 * MS) - primitives.x_of(20 * MS))
    image = timeline.grab().toImage()
    edge = image.pixelColor(int(highlight.x + highlight.w / 2), int(highlight.y + 1))
    assert edge == QColor(LIGHT.selection)

    empty = QPoint(int(primitives.x_of(90 * MS)), int(row_middle(timeline, "fetch")))
    with qtbot.waitSignal(timeline.span_selected) as selected:
        qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton, pos=empty)
    assert selected.args == [-1]
    assert timeline.primitives().highlight is None

    with qtbot.waitSignal(timeline.lane_selected) as lane_clicked:
        qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton,
                         pos=QPoint(30, int(row_middle(timeline, "nap"))))
    assert lane_clicked.args == [lane_named(trace, "nap").id]


def test_live_refreshes_are_folded_into_one_repaint(timeline: TimelineWidget,
                                                    qtbot: QtBot) -> None:
    full = build_sample_trace()
    live = partial_copy(full, 10)
    timeline.set_trace(live, live=True)
    assert timeline.follow_live
    counter = PaintCounter()
    timeline.installEventFilter(counter)
    qtbot.wait(50)
    counter.paints = 0

    for stop in range(11, len(full) + 1):
        grow(live, full, stop)
        timeline.refresh()
    qtbot.wait(100)

    assert counter.paints == 1
    assert timeline.view_range == (0.0, 100 * MS)  # following: the whole run so far
    closed = derive_spans(partial_copy(full, len(full)))
    # Live, the spans are the closed ones; finishing closes the rest at the run's end.
    assert len(timeline.spans) <= len(closed)
    timeline.finish_live()
    assert list(timeline.spans.start) == list(closed.start)
    assert not timeline.live and not timeline.follow_live


def test_following_stops_on_navigation_and_resumes_with_end(timeline: TimelineWidget,
                                                            qtbot: QtBot) -> None:
    full = build_sample_trace()
    cut = next(seq for seq in range(len(full)) if full.ts[seq] >= 62 * MS)
    live = partial_copy(full, cut)
    timeline.set_trace(live, live=True)
    assert timeline.view_range == (0.0, 60 * MS)

    wheel(timeline, 500, 100, 1)
    assert not timeline.follow_live
    zoomed = timeline.view_range
    grow(live, full, cut + 3)
    timeline.refresh()
    qtbot.wait(60)
    assert timeline.view_range == zoomed  # the user's view is left alone

    qtbot.keyClick(timeline, Qt.Key.Key_End)
    assert timeline.follow_live
    width = zoomed[1] - zoomed[0]
    assert timeline.view_range == pytest.approx((live.duration_ns - width, live.duration_ns))
    grow(live, full, len(full))
    timeline.refresh()
    qtbot.wait(60)
    assert timeline.view_range == pytest.approx((100 * MS - width, 100 * MS))


def test_live_open_spans_reach_now(timeline: TimelineWidget) -> None:
    full = build_sample_trace()
    cut = next(seq for seq in range(len(full)) if full.ts[seq] >= 75 * MS)
    live = partial_copy(full, cut)  # up to 70 ms: fetch has ended, the others go on
    timeline.set_trace(live, live=True)
    primitives = timeline.primitives()

    open_at = [i for i in range(len(primitives.rects)) if primitives.rects.span[i] == OPEN_SPAN]
    open_lanes = {live.lane_name(int(primitives.rects.lane[i])) for i in open_at}
    assert open_lanes == {"event loop", "nap", "join"}
    for i in open_at:
        right = primitives.rects.x[i] + primitives.rects.w[i]
        assert right == pytest.approx(primitives.x_of(live.duration_ns))
    # (beside, not on, the wake arrow at the edge, which has its own tooltip)
    text = timeline.tooltip_at(primitives.x_of(live.duration_ns) - 6,
                               row_middle(timeline, "event loop"))
    assert "<b>dispatch</b> (in progress)" in text and "since 60.0 ms" in text


def test_themes_switch_and_unknown_ones_are_refused(timeline: TimelineWidget) -> None:
    timeline.set_trace(build_sample_trace())
    corner = QPoint(timeline.width() - 30, timeline.height() - 40)
    assert timeline.grab().toImage().pixelColor(corner) == QColor(LIGHT.background)
    timeline.set_theme("dark")
    assert timeline.grab().toImage().pixelColor(corner) == QColor(DARK.background)
    with pytest.raises(ValueError, match="unknown theme 'sepia'"):
        timeline.set_theme("sepia")


def test_zooming_far_out_stops_at_a_range_the_layout_can_still_compute(
    timeline: TimelineWidget,
) -> None:
    timeline.set_trace(build_sample_trace())
    for _ in range(400):  # S held down: 1.25 ** 400 times the run, without a limit
        timeline.zoom(1 / ZOOM_STEP)
    start, end = timeline.view_range
    assert end - start == MAX_RANGE_NS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy warns when column edges overflow int64
        primitives = timeline.primitives()
        timeline.grab()
    assert len(primitives.ticks) >= 2
    assert primitives.ns_at(primitives.x_of(50 * MS)) == pytest.approx(50 * MS)
