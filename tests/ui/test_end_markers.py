"""How a lane ended, drawn: a bar for a return, a bar crossed by an X for an exception, and a
bar in a ring struck through once for a cancellation (tracer.events.MARKERS, ui.paint)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QImage, QPainterPath
from pytestqt.qtbot import QtBot

from loopscope.tracer.events import MARKERS, Code, FakeClock, LaneKind, end_marker
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.image_export import export_viewport, render_image
from loopscope.ui.layout import MARKER_KINDS, layout
from loopscope.ui.paint import add_marker_shape, label_width_for
from loopscope.ui.theme import LIGHT, THEMES
from tests.ui.conftest import MS

pytestmark = pytest.mark.gui


def three_endings() -> Trace:
    """A loop and three tasks: one returns, one raises, one is cancelled."""
    trace = Trace(meta={"target": "three endings"})
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    loop = recorder.spawn("loop", LaneKind.LOOP)
    tasks = {name: recorder.spawn(name, LaneKind.TASK, parent=loop)
             for name in ("returns", "raises", "cancelled")}
    for lane in (loop, *tasks.values()):
        recorder.state(lane, Code.RUNNING)
        clock.advance(5 * MS)
    clock.advance(20 * MS)
    recorder.end(tasks["returns"], result=1)
    clock.advance(10 * MS)
    recorder.end(tasks["raises"], error=ValueError("broken"))
    clock.advance(10 * MS)
    recorder.end(tasks["cancelled"], error=asyncio.CancelledError())
    clock.advance(10 * MS)
    recorder.end(loop)
    recorder.close()
    return trace


def test_each_way_of_ending_is_its_own_marker_with_its_own_legend_entry(qtbot: QtBot) -> None:
    trace = three_endings()
    viewport = export_viewport(trace, width=1200, height=400,
                               label_width=label_width_for(trace, LIGHT, 1200))
    primitives = layout(trace, derive_spans(trace), viewport)
    kinds = {trace.lane_name(marker.lane): marker.kind for marker in primitives.markers}
    assert kinds == {"loop": "end", "returns": "end", "raises": "error",
                     "cancelled": "cancelled"}
    legend = {entry.label for entry in primitives.legend if entry.kind == "marker"}
    assert legend == {"end", "exception", "cancelled"}


def test_end_marker_reads_the_detail() -> None:
    assert end_marker({"result": 3}) == "end"
    assert end_marker({"error": "ValueError: broken"}) == "error"
    assert end_marker({"error": "CancelledError"}) == "cancelled"
    assert end_marker({"error": "CancelledError: shutting down"}) == "cancelled"
    assert end_marker({"error": "Cancelled"}) == "cancelled"  # trio's


def test_the_table_gives_every_marker_a_shape_a_colour_and_a_legend_word(
    qtbot: QtBot,
) -> None:
    assert tuple(info.kind for info in MARKERS) == MARKER_KINDS
    assert len(set(MARKER_KINDS)) == len(MARKER_KINDS)
    assert len({info.legend for info in MARKERS}) == len(MARKERS)
    shapes = {}
    for info in MARKERS:
        for theme in THEMES.values():
            assert QColor(getattr(theme, info.colour)).isValid()
        path = QPainterPath()
        add_marker_shape(path, info.kind, 50.0, 10.0, 40.0, 6.0)
        assert not path.isEmpty()
        shapes[info.kind] = path
    # The three ends share the bar across the row and differ around it: only the cancelled
    # one has a ring, only the exception's X reaches both lower corners.
    for kind in ("end", "error", "cancelled"):
        assert shapes[kind].contains(QPointF(50.0, 11.0)) and shapes[kind].contains(
            QPointF(50.0, 39.0))
    ring = QPointF(50.0 + 6.5, 25.0)
    assert shapes["cancelled"].contains(ring)
    assert not shapes["error"].contains(ring) and not shapes["end"].contains(ring)
    lower_left, upper_left = QPointF(50.0 - 5.0, 25.0 + 5.0), QPointF(50.0 - 5.0, 25.0 - 5.0)
    assert shapes["error"].contains(lower_left) and shapes["error"].contains(upper_left)
    assert shapes["cancelled"].contains(lower_left) != shapes["cancelled"].contains(upper_left)
    with pytest.raises(ValueError, match="no shape"):
        add_marker_shape(QPainterPath(), "no such kind", 0.0, 0.0, 10.0, 4.0)


def test_the_png_draws_the_cancelled_ring_in_its_colour(qtbot: QtBot, tmp_path: Path) -> None:
    trace = three_endings()
    out = tmp_path / "endings.png"
    render_image(trace, out, width=1200, height=400)
    image = QImage(str(out))
    viewport = export_viewport(trace, width=1200, height=400,
                               label_width=label_width_for(trace, LIGHT, 1200))
    primitives = layout(trace, derive_spans(trace), viewport)
    colours = {}
    for marker in primitives.markers:
        size = min(max(marker.height * 0.22, 4.0), 9.0)
        middle = marker.y + marker.height / 2
        # on the ring, beside the bar: the cancelled marker's colour, the others' background
        colours[marker.kind] = image.pixelColor(round(marker.x + size + 0.2), round(middle))
    assert colours["cancelled"] == QColor(LIGHT.cancelled)
    assert colours["error"] != QColor(LIGHT.cancelled) and colours["end"] != QColor(
        LIGHT.cancelled)


def test_hovering_a_cancelled_end_says_it_was_cancelled(qtbot: QtBot) -> None:
    from loopscope.ui.timeline import TimelineWidget

    widget = TimelineWidget()
    qtbot.addWidget(widget)
    widget.resize(1000, 400)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_trace(three_endings())
    primitives = widget.primitives()
    cancelled = next(m for m in primitives.markers if m.kind == "cancelled")
    text = widget.tooltip_at(cancelled.x, cancelled.y + cancelled.height / 2)
    assert "<b>cancelled</b> was cancelled (<b>CancelledError</b>)" in text
    raised = next(m for m in primitives.markers if m.kind == "error")
    assert "raised <b>ValueError: broken</b>" in widget.tooltip_at(
        raised.x, raised.y + raised.height / 2)
