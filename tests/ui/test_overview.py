"""The overview strip: the whole run with a brush over the timeline's view, which a click or
a drag moves and an edge drag widens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from loopscope.ui.overview import STRIP_HEIGHT, OverviewStrip
from loopscope.ui.timeline import TimelineWidget
from tests.ui.conftest import MS, build_sample_trace

pytestmark = pytest.mark.gui


@pytest.fixture
def strip(qtbot: QtBot) -> Iterator[OverviewStrip]:
    box = QWidget()
    column = QVBoxLayout(box)
    timeline = TimelineWidget()
    strip = OverviewStrip(timeline)
    column.addWidget(strip)
    column.addWidget(timeline, 1)
    qtbot.addWidget(box)
    box.resize(1000, 500)
    box.show()
    qtbot.waitExposed(box)
    timeline.set_trace(build_sample_trace())
    yield strip


def test_the_brush_covers_the_view_and_lines_up_with_the_timeline(strip: OverviewStrip) -> None:
    timeline = strip.timeline
    timeline.set_view_range(20 * MS, 40 * MS)
    brush = strip.brush()
    assert brush.left() == pytest.approx(strip.x_of(20 * MS))
    assert brush.right() == pytest.approx(strip.x_of(40 * MS))
    # The whole run spans the strip's plot, which sits under the timeline's plot.
    plot = timeline.primitives().plot
    assert strip.x_of(0) == pytest.approx(plot.x)
    assert strip.x_of(100 * MS) == pytest.approx(plot.x + plot.w)
    image = strip.grab().toImage()
    assert image.height() == STRIP_HEIGHT


def test_a_click_beside_the_brush_brings_the_view_there(strip: OverviewStrip,
                                                        qtbot: QtBot) -> None:
    timeline = strip.timeline
    timeline.set_view_range(20 * MS, 40 * MS)
    qtbot.mouseClick(strip, Qt.MouseButton.LeftButton,
                     pos=QPoint(int(strip.x_of(70 * MS)), STRIP_HEIGHT // 2))
    start, end = timeline.view_range
    assert end - start == pytest.approx(20 * MS)
    assert (start + end) / 2 == pytest.approx(70 * MS, abs=0.2 * MS)


def test_dragging_the_brush_edge_widens_the_view(strip: OverviewStrip, qtbot: QtBot) -> None:
    timeline = strip.timeline
    timeline.set_view_range(20 * MS, 40 * MS)
    y = STRIP_HEIGHT // 2
    right = QPoint(int(strip.brush().right()), y)
    qtbot.mousePress(strip, Qt.MouseButton.LeftButton, pos=right)
    qtbot.mouseMove(strip, QPoint(int(strip.x_of(60 * MS)), y))
    qtbot.mouseRelease(strip, Qt.MouseButton.LeftButton, pos=QPoint(int(strip.x_of(60 * MS)), y))
    start, end = timeline.view_range
    assert start == pytest.approx(20 * MS)
    assert end == pytest.approx(60 * MS, abs=0.3 * MS)


def test_a_hidden_timeline_is_not_laid_out_for_the_strip(
        strip: OverviewStrip, monkeypatch: pytest.MonkeyPatch) -> None:
    import loopscope.ui.timeline as timeline_module

    timeline = strip.timeline
    timeline.setVisible(False)
    timeline.set_view_range(20 * MS, 40 * MS)  # a new frame: the old layout is stale
    laid_out: list[object] = []
    real_layout = timeline_module.layout
    monkeypatch.setattr(timeline_module, "layout",
                        lambda *args: laid_out.append(args) or real_layout(*args))
    image = strip.grab().toImage()  # the miniature, the brush: all of the strip
    assert image.height() == STRIP_HEIGHT
    assert laid_out == []
    # and the brush still lines up with where the timeline's plot would be
    timeline.setVisible(True)
    plot = timeline.primitives().plot
    assert laid_out, "the visible timeline is laid out as before"
    assert strip.x_of(0) == pytest.approx(plot.x)
    assert strip.brush().left() == pytest.approx(strip.x_of(20 * MS))


def test_a_live_miniature_is_drawn_again_in_a_turn_of_its_own(
        strip: OverviewStrip, qtbot: QtBot, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not inside the paint that also paints the timeline's frame: that paint shows the last
    miniature (stretched to the run so far) and the new one follows."""
    import loopscope.ui.overview as overview_module

    now = [1e9]
    monkeypatch.setattr(overview_module.time, "monotonic", lambda: now[0])
    timeline = strip.timeline
    timeline.set_trace(build_sample_trace(), live=True)
    strip._image = None
    first = strip._miniature()  # the first is drawn at once
    assert first is strip._image and strip._drawn_at == now[0]
    now[0] += overview_module.REDRAW_INTERVAL_S / 2
    assert strip._miniature() is first  # and kept while it is fresh

    now[0] += overview_module.REDRAW_INTERVAL_S
    assert strip._miniature() is first  # stale: still shown in this paint ...
    qtbot.waitUntil(lambda: strip._image is not first)  # ... drawn again just after it
    assert strip._drawn_at == now[0]
    assert strip._miniature() is strip._image
