"""The overview strip above the timeline: the whole run in miniature, with a brush over the
part the timeline shows (as Chrome DevTools has). Click or drag on it to move the view; drag
on the brush's edges to widen or narrow it. Drawn by the same layout and paint as the
timeline, with every lane a thin row and no words."""

from __future__ import annotations

import time
from dataclasses import replace

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from loopscope.ui.layout import Viewport, layout, run_extent
from loopscope.ui.paint import paint
from loopscope.ui.timeline import EMPTY_RANGE_NS, TimelineWidget

STRIP_HEIGHT = 36
# A live run's miniature is laid out again at most this often; the brush moves every frame.
REDRAW_INTERVAL_S = 0.2
EDGE_GRAB_PX = 5


class OverviewStrip(QWidget):
    def __init__(self, timeline: TimelineWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.timeline = timeline
        self.setFixedHeight(STRIP_HEIGHT)
        self.setMouseTracking(True)
        self.setToolTip("The whole run: click or drag to move the view, drag an edge of the "
                        "brush to zoom")
        self._image: QImage | None = None
        self._image_key: tuple[object, ...] = ()
        self._image_range = (0.0, 1.0)  # the time range the miniature was drawn for
        self._drawn_at = 0.0
        self._due = False  # a live miniature's redraw is scheduled
        self._rows = 1  # the miniature's rows: every lane row of the run
        self._grab: str | None = None  # "move", "left" or "right" while dragging
        self._grab_from = (0.0, 0.0, 0.0)
        timeline.view_changed.connect(self.update)

    # -- geometry -------------------------------------------------------------------------

    def run_range(self) -> tuple[float, float]:
        """The strip's time range: the whole run (to the live edge while live)."""
        start, end = run_extent(self.timeline.trace)
        end = max(end, self.timeline.live_edge_ns())
        return start, end if end > start else start + EMPTY_RANGE_NS

    def _plot(self) -> tuple[float, float]:
        """(x, width) of the strip's plot: under the timeline's own, so times line up."""
        viewport = self.timeline.viewport()
        return viewport.label_width, max(viewport.plot_width, 1.0)

    def x_of(self, ns: float) -> float:
        start, end = self.run_range()
        x, width = self._plot()
        return x + (ns - start) / (end - start) * width

    def ns_at(self, x: float) -> float:
        start, end = self.run_range()
        left, width = self._plot()
        return start + (x - left) / width * (end - start)

    # -- drawing --------------------------------------------------------------------------

    def _key(self) -> tuple[object, ...]:
        """What a finished run's miniature depends on."""
        timeline = self.timeline
        return (id(timeline.trace), len(timeline.trace), self.width(), self._plot()[0],
                id(timeline.theme), timeline.fold_library)

    def _miniature(self) -> QImage:
        timeline = self.timeline
        key = self._key()
        if self._image is not None:
            if timeline.live:  # open spans grow: drawn again now and then ...
                if time.monotonic() - self._drawn_at >= REDRAW_INTERVAL_S and not self._due:
                    # ... in a turn of the event loop of its own: inside this paint, which
                    # paints the timeline's frame too, the two would add up to one stall
                    self._due = True
                    QTimer.singleShot(0, self._redraw_live)
                return self._image
            if key == self._image_key:
                return self._image
        return self._render(key)

    def _redraw_live(self) -> None:
        self._due = False
        if self.timeline.live and self.isVisible():
            self._render(self._key())
            self.update()

    def _render(self, key: tuple[object, ...]) -> QImage:
        """Lays out and paints the miniature of the whole run (so far)."""
        timeline = self.timeline
        trace = timeline.trace
        start, end = self.run_range()
        label_width, plot_width = self._plot()
        width = int(label_width + plot_width)
        viewport = Viewport(
            start_ns=start, end_ns=end, width=max(width, 1), height=STRIP_HEIGHT,
            lane_height=max((STRIP_HEIGHT - 2) / self._rows, 1.0), label_width=label_width,
            axis_height=0.0, legend_height=0.0, row_padding=0.0, max_arrows=0,
            max_markers=0, texts=False, lane_names=False,
            folded_lanes=timeline.folded_lanes(),
            now_ns=timeline.live_edge_ns() if timeline.live else None,
        )
        frame = layout(trace, timeline.span_source(), viewport)
        if frame.lane_count != self._rows:
            # Every row of the run shares the strip's height; when rows appear (rarely) the
            # miniature is laid out again at the new row height.
            self._rows = max(frame.lane_count, 1)
            viewport = replace(viewport, lane_height=max((STRIP_HEIGHT - 2) / self._rows, 1.0))
            frame = layout(trace, timeline.span_source(), viewport)
        image = QImage(max(width, 1), STRIP_HEIGHT, QImage.Format.Format_ARGB32_Premultiplied)
        painter = QPainter(image)
        try:
            paint(painter, frame, timeline.theme)
            painter.setPen(QColor(timeline.theme.text_dim))
            painter.drawText(QRectF(10, 0, label_width - 20, STRIP_HEIGHT),
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                             "whole run")
        finally:
            painter.end()
        self._image, self._image_key, self._drawn_at = image, key, time.monotonic()
        self._image_range = (start, end)
        return image

    def _draw_miniature(self, painter: QPainter) -> None:
        """The miniature; one drawn a moment ago for a shorter live run is stretched to
        today's range until it is drawn again, so it always lines up with the brush."""
        image = self._miniature()
        left, width = self._plot()
        painter.drawImage(QRectF(0, 0, left, STRIP_HEIGHT), image,
                          QRectF(0, 0, left, STRIP_HEIGHT))
        drawn_start, drawn_end = self._image_range
        x0, x1 = self.x_of(drawn_start), self.x_of(drawn_end)
        painter.drawImage(QRectF(x0, 0, max(x1 - x0, 1.0), STRIP_HEIGHT), image,
                          QRectF(left, 0, width, STRIP_HEIGHT))

    def brush(self) -> QRectF:
        """Where the timeline's view range lies on the strip."""
        view_start, view_end = self.timeline.view_range
        left, width = self._plot()
        x0 = min(max(self.x_of(view_start), left), left + width)
        x1 = min(max(self.x_of(view_end), left), left + width)
        return QRectF(x0, 0.5, max(x1 - x0, 2.0), STRIP_HEIGHT - 1.0)

    def paintEvent(self, event: QPaintEvent) -> None:
        theme = self.timeline.theme
        painter = QPainter(self)
        try:
            painter.fillRect(self.rect(), QColor(theme.label_background))
            self._draw_miniature(painter)
            box = self.brush()
            shade = QColor(theme.background)
            shade.setAlpha(150)
            left, width = self._plot()
            # The run outside the view is dimmed; the brush is outlined.
            painter.fillRect(QRectF(left, 0, box.left() - left, STRIP_HEIGHT), shade)
            painter.fillRect(QRectF(box.right(), 0, left + width - box.right(), STRIP_HEIGHT),
                             shade)
            painter.setPen(QPen(QColor(theme.selection), 1.5))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRect(box)
            painter.setPen(QPen(QColor(theme.separator), 1))
            painter.drawLine(0, STRIP_HEIGHT - 1, self.width(), STRIP_HEIGHT - 1)
        finally:
            painter.end()

    # -- the mouse ------------------------------------------------------------------------

    def _part_at(self, x: float) -> str:
        box = self.brush()
        if abs(x - box.left()) <= EDGE_GRAB_PX:
            return "left"
        if abs(x - box.right()) <= EDGE_GRAB_PX:
            return "right"
        return "move"

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return
        x = event.position().x()
        self._grab = self._part_at(x)
        start, end = self.timeline.view_range
        if self._grab == "move" and not self.brush().contains(QPointF(x, STRIP_HEIGHT / 2)):
            # A click beside the brush brings the view there, keeping its width.
            middle = self.ns_at(x)
            start, end = middle - (end - start) / 2, middle + (end - start) / 2
            self.timeline.set_view_range(start, end)
        self._grab_from = (x, start, end)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        x = event.position().x()
        if self._grab is None:
            part = self._part_at(x)
            self.setCursor(Qt.CursorShape.SizeHorCursor if part != "move"
                           else Qt.CursorShape.ArrowCursor)
            return
        x0, start, end = self._grab_from
        shift = self.ns_at(x) - self.ns_at(x0)
        if self._grab == "move":
            self.timeline.set_view_range(start + shift, end + shift)
        elif self._grab == "left":
            self.timeline.set_view_range(min(start + shift, end - 1), end)
        else:
            self.timeline.set_view_range(start, max(end + shift, start + 1))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        self._grab = None
