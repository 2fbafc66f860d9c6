"""The timeline widget: lanes, state spans, arrows and a time axis, live or finished.

Navigation follows Perfetto: the mouse wheel zooms around the cursor, dragging pans, W/S zoom,
A/D pan, Shift+wheel (or the scroll bar, or the arrow keys) scrolls the lanes. F fits the
whole run; End follows the live edge. Geometry comes from ui.layout, drawing from ui.paint.
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Callable

from PySide6.QtCore import QEvent, QPointF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QContextMenuEvent,
    QHelpEvent,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QMenu, QScrollBar, QToolTip, QWidget

from loopscope.tracer.events import STATE_NAMES, Code, LaneKind
from loopscope.tracer.narrate import describe
from loopscope.tracer.query import lane_order
from loopscope.tracer.spans import SpanBuilder, Spans
from loopscope.tracer.trace import Trace
from loopscope.ui.details_pane import shown_details
from loopscope.ui.framing import lesson_range
from loopscope.ui.layout import (
    GROUP_LANE,
    MERGED_SPAN,
    OPEN_SPAN,
    Arrow,
    Marker,
    Primitives,
    TextLabel,
    Viewport,
    arrow_at,
    format_ns,
    hit_at,
    lane_at,
    layout,
    marker_at,
    pause_at,
    run_extent,
)
from loopscope.ui.paint import label_width_for, paint, text_measure
from loopscope.ui.problem_marks import paint_problem_corners
from loopscope.ui.theme import Theme, get_theme
from loopscope.ui.trace_notes import arrow_text, lane_tag, trace_notes

ZOOM_STEP = 1.25  # one wheel notch or one W/S press
PAN_FRACTION = 0.15  # of the visible range, per A/D press
MIN_RANGE_NS = 200.0  # below this the pixels are finer than the clock
# Zooming out stops here (about 11 days): far past any run, and far below where the layout's
# whole-ns column edges would overflow int64.
MAX_RANGE_NS = 1e15
EMPTY_RANGE_NS = 1_000_000.0  # what an empty trace shows: one millisecond
REFRESH_INTERVAL_MS = 16  # live updates are folded and drawn at most this often
DRAG_THRESHOLD_PX = 4
WHEEL_NOTCH = 120
LANE_HEIGHT = 24.0
# Few lanes share the height there is, up to this tall a row: room for the words in them.
MAX_LANE_HEIGHT = 40.0

# While a run is live and not held, the live edge moves on with the clock this often, so
# open spans grow and a sleep is seen to pass between events.
LIVE_EDGE_INTERVAL_MS = 50

FOLLOW_FIT = "fit"  # keep the whole run in view as it grows
FOLLOW_EDGE = "edge"  # keep the visible width, sliding with the newest events


class TimelineWidget(QWidget):
    """Shows one trace. Signals: span_selected(span index or -1), lane_selected(lane id)."""

    span_selected = Signal(int)
    lane_selected = Signal(int)
    view_changed = Signal()
    axis_clicked = Signal(float)  # a click on the time axis, at this time (ns)
    folding_changed = Signal(bool)  # library lanes folded into one row (True) or shown
    lanes_shown = Signal()  # show_all_lanes: the filter is cleared too

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(320, 160)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self._trace = Trace()
        self._label_width = 168.0
        self._label_width_for: tuple[int, int, int] = (-1, -1, -1)
        self._builder = SpanBuilder()
        self._finished: Spans | None = self._builder.finish(0)
        self._live = False
        self._follow: str | None = None
        self._start_ns = 0.0
        self._end_ns = EMPTY_RANGE_NS
        self._scroll_y = 0.0
        self._selected = -1
        self._cursor_ns: float | None = None
        self._theme: Theme = get_theme("light")
        self._primitives: Primitives | None = None
        self._press: QPointF | None = None
        self._press_view = (0.0, 0.0, 0.0)
        self._dragging = False
        self._flagged: dict[int, str] = {}  # span -> its finding, in a line: a red corner

        self._scrollbar = QScrollBar(Qt.Orientation.Vertical, self)
        self._scrollbar.hide()
        self._scrollbar.valueChanged.connect(self._on_scrollbar)
        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_INTERVAL_MS)
        self._refresh_timer.timeout.connect(self._catch_up)
        self._fold_library = True
        self._hidden_lanes: set[int] = set()
        self._lane_filter = ""
        self._menu: QMenu | None = None
        # The live edge: the wall clock (injectable for tests) and, when the last events
        # landed, (wall ns, trace ns); held runs keep their edge where it is.
        self._wall_clock: Callable[[], int] = time.monotonic_ns
        self._edge_at: tuple[int, int] | None = None
        self._edge_held = False
        self._edge_events = 0
        self._edge_drawn = 0.0
        self._edge_timer = QTimer(self)
        self._edge_timer.setInterval(LIVE_EDGE_INTERVAL_MS)
        self._edge_timer.timeout.connect(self._advance_live_edge)

    # -- the trace ----------------------------------------------------------------------

    @property
    def trace(self) -> Trace:
        return self._trace

    @property
    def live(self) -> bool:
        return self._live

    def set_trace(self, trace: Trace, live: bool = False,
                  folded: SpanBuilder | None = None) -> None:
        """Shows `trace`. Live: it is still growing; call refresh() when events arrive.
        `folded`: its spans, already folded (ui.trace_loading does it off the GUI thread)."""
        self._refresh_timer.stop()
        self._trace = trace
        self._builder = folded if folded is not None else SpanBuilder()
        self._builder.feed(trace)
        self._live = live
        self._finished = None if live else self._builder.finish(trace.duration_ns)
        self._selected = -1
        self._cursor_ns = None
        self._scroll_y = 0.0
        self._flagged = {}
        self._edge_held = False
        self._edge_events = len(trace)
        # The edge starts moving with the first event: before it the child is starting up,
        # which is not the program's time.
        self._edge_at = (self._wall_clock(), trace.duration_ns) if live and len(trace) else None
        self._edge_drawn = float(trace.duration_ns)
        if live:
            self._edge_timer.start()
            self.zoom_to_fit()
        else:
            self._edge_timer.stop()
            self.show_lesson()

    def refresh(self) -> None:
        """More events arrived: fold them and repaint once, however often this is called."""
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def finish_live(self) -> None:
        """The run ended: close the spans still open at its last event and stop following."""
        self._refresh_timer.stop()
        self._edge_timer.stop()
        if self._live:
            self._builder.feed(self._trace)
            self._finished = self._builder.finish(self._trace.duration_ns)
            self._live = False
            if self._follow is not None:
                # Still following: the finished run is framed as a first view frames it.
                self._set_range(*self._lesson_or_fit())
            self._follow = None
        self._edge_at = None
        self._invalidate()

    @property
    def spans(self) -> Spans:
        """The spans drawn now; live, only the closed ones (open spans end at "now")."""
        if self._refresh_timer.isActive():
            self._refresh_timer.stop()
            self._catch_up()
        return self._finished if self._finished is not None else self._builder.spans

    def _catch_up(self) -> None:
        if self._live:
            self._builder.feed(self._trace)
            if len(self._trace) != self._edge_events:
                # New events: the edge goes on from where it is (never backwards), now.
                self._edge_events = len(self._trace)
                self._edge_at = (self._wall_clock(), int(self.live_edge_ns()))
            self._edge_drawn = self.live_edge_ns()
            self._apply_follow()
        self._invalidate()

    # -- the live edge ------------------------------------------------------------------

    def set_wall_clock(self, clock: Callable[[], int]) -> None:
        """The clock the live edge moves by (monotonic ns); tests give a fake one."""
        self._wall_clock = clock
        if self._edge_at is not None:
            self._edge_at = (clock(), self._edge_at[1])

    def hold_live_edge(self, held: bool) -> None:
        """A held run's program does not move: neither does its edge, until it goes on."""
        if held == self._edge_held:
            return
        edge = self.live_edge_ns()
        self._edge_held = held
        if self._live:
            self._edge_at = (self._wall_clock(), int(edge))
            self._invalidate()

    def live_edge_ns(self) -> float:
        """Where "now" is: a finished trace's last event; a live run's last event plus the
        time that has passed since it arrived (the program is running, only quietly)."""
        last = float(self._trace.duration_ns)
        if not self._live or self._edge_at is None:
            return last
        wall, at = self._edge_at
        if self._edge_held:
            return max(last, float(at))
        return max(last, at + float(self._wall_clock() - wall))

    def _advance_live_edge(self) -> None:
        if not self._live or self._edge_held or self._edge_at is None:
            return
        edge = self.live_edge_ns()
        if edge == self._edge_drawn:
            return
        self._edge_drawn = edge
        self._apply_follow()
        self._invalidate()

    # -- view state ---------------------------------------------------------------------

    @property
    def view_range(self) -> tuple[float, float]:
        return self._start_ns, self._end_ns

    def set_view_range(self, start_ns: float, end_ns: float) -> None:
        """Shows [start_ns, end_ns]; the user's own navigation, so live following stops."""
        self._follow = None
        self._set_range(start_ns, end_ns)

    @property
    def follow_live(self) -> bool:
        return self._follow is not None

    def set_follow_live(self, follow: bool) -> None:
        """Follow the live edge (keeping the visible width), or stop following."""
        self._follow = FOLLOW_EDGE if follow else None
        self._apply_follow()
        self._invalidate()

    def zoom_to_fit(self) -> None:
        """The whole run in view; when live, keep it so as the run grows."""
        self._follow = FOLLOW_FIT if self._live else None
        self._fit_range()

    def show_lesson(self) -> None:
        """The first view of a finished run: the scenario's concept window, else the whole
        run, with a margin either side."""
        self._follow = None
        self._set_range(*self._lesson_or_fit())

    def _lesson_or_fit(self) -> tuple[float, float]:
        start, end = lesson_range(self._trace)
        return (start, end) if end > start else (start, start + EMPTY_RANGE_NS)

    @property
    def fold_library(self) -> bool:
        return self._fold_library

    def set_fold_library(self, fold: bool) -> None:
        """Fold the library's plumbing lanes into one row (the default), or show each."""
        if fold == self._fold_library:
            return
        self._fold_library = fold
        self._label_width_for = (-1, -1, -1)
        self._invalidate()
        self.folding_changed.emit(fold)

    def folded_lanes(self) -> frozenset[int]:
        """Lanes drawn together on the last row: the library's (while folded), the ones
        the learner hid, and those the lane filter does not match."""
        folded: set[int] = set(self._hidden_lanes)
        if self._fold_library:
            folded |= trace_notes(self._trace).library_lanes(self._trace)
        if self._lane_filter:
            wanted = self._lane_filter.casefold()
            notes = trace_notes(self._trace)
            folded |= {info.id for info in self._trace.lanes
                       if info.kind not in LaneKind.LOOP_KINDS
                       and wanted not in info.name.casefold()
                       and wanted not in lane_tag(self._trace, info.id, info.kind,
                                                  notes).casefold()}
        return frozenset(folded)

    def _folded_name(self) -> str:
        return "library lanes" if not (self._hidden_lanes or self._lane_filter) else \
            "other lanes"

    @property
    def lane_filter(self) -> str:
        return self._lane_filter

    def set_lane_filter(self, text: str) -> None:
        """Shows only the lanes whose name (or fd) contains `text`, and the loop lanes; the
        rest fold into the last row. "" shows them all."""
        text = text.strip()
        if text == self._lane_filter:
            return
        self._lane_filter = text
        self._scroll_y = 0.0
        self._invalidate()

    def hide_lane(self, lane: int) -> None:
        """Folds one lane into the last row (per-lane hide); show_all_lanes brings it back."""
        self._hidden_lanes.add(lane)
        self._invalidate()

    def show_all_lanes(self) -> None:
        """Every lane on its own row: no hidden lane, no filter, no folding."""
        self._hidden_lanes.clear()
        self._lane_filter = ""
        self._invalidate()
        self.set_fold_library(False)
        self.lanes_shown.emit()

    def set_theme(self, name: str) -> None:
        self._theme = get_theme(name)
        self._invalidate()

    @property
    def theme(self) -> Theme:
        return self._theme

    @property
    def selected_span(self) -> int:
        return self._selected

    def select_span(self, index: int) -> None:
        """Selects a span (or none with -1); emits span_selected if the selection changed."""
        if not 0 <= index < len(self.spans):
            index = -1
        if index == self._selected:
            return
        self._selected = index
        self._invalidate()
        self.span_selected.emit(index)

    def set_flagged_spans(self, spans: dict[int, str]) -> None:
        """Marks these spans (those a finding is about) with a red corner; the text (the
        finding in a line) joins their tooltip."""
        if spans != self._flagged:
            self._flagged = dict(spans)
            self.update()

    @property
    def folded_spans(self) -> Spans:
        """The spans folded so far, without catching up first (a live reader that can wait
        for the timeline's own next refresh)."""
        return self._finished if self._finished is not None else self._builder.spans

    def open_span(self, lane: int) -> tuple[int, int] | None:
        """(state, start ns) of a lane's span still in progress while the run is live."""
        return self._builder.open_span(lane) if self._finished is None else None

    @property
    def lane_height(self) -> float:
        return self._row_height()

    @property
    def cursor_ns(self) -> float | None:
        """The stepping cursor's time, or None when there is no cursor."""
        return self._cursor_ns

    def set_cursor(self, ns: float | None, *, keep_in_view: bool = True) -> None:
        """Draws the cursor at `ns` (None hides it); a cursor outside the view brings the
        view to it, keeping the zoom."""
        if ns == self._cursor_ns:
            return
        self._cursor_ns = ns
        if ns is not None and keep_in_view and not self._start_ns <= ns <= self._end_ns:
            width = self._end_ns - self._start_ns
            self.set_view_range(ns - width / 2, ns + width / 2)
            return
        self._invalidate()

    @property
    def scroll_y(self) -> float:
        return self._scroll_y

    def scroll_lanes_to(self, y: float) -> None:
        self._scroll_y = min(max(y, 0.0), self._max_scroll())
        self._sync_scrollbar()
        self._invalidate()

    def zoom(self, factor: float, anchor_x: float | None = None) -> None:
        """Zooms in (factor > 1) or out, keeping the time under `anchor_x` (pixels) in place."""
        self._follow = None
        primitives = self.primitives()
        plot = primitives.plot
        x = plot.x + plot.w / 2 if anchor_x is None else min(max(anchor_x, plot.x),
                                                             plot.x + plot.w)
        anchor = primitives.ns_at(x)
        start = anchor - (anchor - self._start_ns) / factor
        end = anchor + (self._end_ns - anchor) / factor
        self._set_range(start, end)

    def pan(self, fraction: float) -> None:
        """Moves the view by a fraction of its width (positive: later in time)."""
        self._follow = None
        shift = (self._end_ns - self._start_ns) * fraction
        self._set_range(self._start_ns + shift, self._end_ns + shift)

    def primitives(self) -> Primitives:
        """The current frame's geometry (laid out on demand, cached until something changes)."""
        if self._primitives is None:
            self._primitives = layout(self._trace, self.span_source(), self._viewport())
        return self._primitives

    def viewport(self) -> Viewport:
        """The current frame's viewport (its plot's place and width), without laying the frame
        out: what the overview strip lines up with, which must not cost a hidden timeline a
        layout."""
        return self._primitives.viewport if self._primitives is not None else self._viewport()

    def span_source(self) -> Spans | SpanBuilder:
        """What the layout draws spans from: the finished spans, or live the growing fold
        (whose open spans reach the live edge)."""
        return self._finished if self._finished is not None else self._builder

    # -- internals ----------------------------------------------------------------------

    def _viewport(self) -> Viewport:
        width = self.width() - (self._scrollbar.width() if self._scrollbar.isVisible() else 0)
        lanes = len(self._trace.lanes)
        if self._label_width_for != (lanes, width, id(self._theme)):
            # Measured again only when lanes appear, the widget resizes or the theme changes.
            self._label_width_for = (lanes, width, id(self._theme))
            self._label_width = label_width_for(self._trace, self._theme, max(width, 1))
        text_width, text_height = text_measure(self._theme)
        return Viewport(
            start_ns=self._start_ns, end_ns=self._end_ns, width=max(width, 1),
            height=max(self.height(), 1), lane_height=self._row_height(),
            row_padding=max(3.0, self._row_height() * 0.15),
            label_width=self._label_width,
            scroll_y=self._scroll_y, selected_span=self._selected, cursor_ns=self._cursor_ns,
            time_origin_ns=self._trace.first_event_ns, folded_lanes=self.folded_lanes(),
            folded_name=self._folded_name(),
            now_ns=self.live_edge_ns() if self._live else None,
            text_width=text_width, text_height=text_height,
        )

    def _invalidate(self) -> None:
        self._primitives = None
        self._sync_scrollbar()
        self.update()
        self.view_changed.emit()

    def _run_end(self) -> float:
        return self.live_edge_ns()

    def _fit_range(self) -> None:
        start, end = run_extent(self._trace)
        end = max(end, self._run_end())  # live, the run reaches the moving edge
        self._set_range(start, end if end > start else start + EMPTY_RANGE_NS)

    def _apply_follow(self) -> None:
        if not self._live or self._follow is None:
            return
        now = self._run_end()
        if self._follow == FOLLOW_FIT:
            start, _ = run_extent(self._trace)
            self._set_range(start, max(now, start + EMPTY_RANGE_NS))
        else:
            width = self._end_ns - self._start_ns
            end = max(now, width)
            self._set_range(end - width, end)

    def _set_range(self, start: float, end: float) -> None:
        width = min(max(end - start, MIN_RANGE_NS), MAX_RANGE_NS)
        middle = (start + end) / 2
        start, end = middle - width / 2, middle + width / 2
        # Nothing happens before the run starts: keep time zero at or left of the left edge.
        if start < 0:
            start, end = 0.0, width
        self._start_ns, self._end_ns = start, end
        self._invalidate()

    def _lanes_area_height(self) -> float:
        vp = self._viewport()
        return max(vp.lanes_bottom - vp.lanes_top, 0.0)

    def _row_count(self) -> int:
        lanes = len(lane_order(self._trace, self._builder.spans))
        folded = len(self.folded_lanes())
        return lanes - folded + (1 if folded else 0)

    def _row_height(self) -> float:
        """Rows share the lanes' area up to MAX_LANE_HEIGHT each, and are LANE_HEIGHT at
        least (more lanes than that scroll)."""
        defaults = Viewport(0.0, 1.0, 1, 1)
        area = self.height() - defaults.axis_height - defaults.legend_height
        return min(max(area / max(self._row_count(), 1), LANE_HEIGHT), MAX_LANE_HEIGHT)

    def _max_scroll(self) -> float:
        return max(self._row_count() * self._row_height() - self._lanes_area_height(), 0.0)

    def _sync_scrollbar(self) -> None:
        maximum = self._max_scroll()
        self._scroll_y = min(self._scroll_y, maximum)
        bar = self._scrollbar
        bar.blockSignals(True)
        bar.setRange(0, int(maximum))
        bar.setPageStep(int(self._lanes_area_height()))
        bar.setSingleStep(int(self._row_height()))
        bar.setValue(int(self._scroll_y))
        bar.blockSignals(False)
        visible = maximum > 0
        if visible != bar.isVisible():
            bar.setVisible(visible)
            self._place_scrollbar()
            self._primitives = None

    def _place_scrollbar(self) -> None:
        vp = self._viewport()
        width = self._scrollbar.sizeHint().width()
        self._scrollbar.setGeometry(self.width() - width, int(vp.lanes_top), width,
                                    int(self._lanes_area_height()))

    def _on_scrollbar(self, value: int) -> None:
        self._scroll_y = float(value)
        self._primitives = None
        self.update()

    # -- Qt events ----------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            primitives = self.primitives()
            # The strip beside the scroll bar lies outside the frame; fill it so no stale
            # pixels show (the widget paints opaquely, without Qt clearing first).
            covered = primitives.viewport.width
            if covered < self.width():
                painter.fillRect(covered, 0, self.width() - covered, self.height(),
                                 QColor(self._theme.background))
            paint(painter, primitives, self._theme)
            paint_problem_corners(painter, primitives, self._flagged)
        finally:
            painter.end()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._place_scrollbar()
        self._invalidate()

    def wheelEvent(self, event: QWheelEvent) -> None:
        delta = event.angleDelta()
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if shift:
            # Some platforms turn Shift+wheel into a horizontal wheel; either way: lanes.
            notches = (delta.y() or delta.x()) / WHEEL_NOTCH
            self.scroll_lanes_to(self._scroll_y - notches * 3 * self._row_height())
        elif abs(delta.x()) > abs(delta.y()):
            self.pan(-delta.x() / WHEEL_NOTCH * PAN_FRACTION)  # a touchpad's sideways swipe
        elif delta.y():
            self.zoom(ZOOM_STEP ** (delta.y() / WHEEL_NOTCH), event.position().x())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        self._press = event.position()
        self._press_view = (self._start_ns, self._end_ns, self._scroll_y)
        self._dragging = False

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._press is None:
            return
        moved = event.position() - self._press
        if not self._dragging and moved.manhattanLength() < DRAG_THRESHOLD_PX:
            return
        self._dragging = True
        self.setCursor(Qt.CursorShape.ClosedHandCursor)
        start, end, scroll = self._press_view
        ns_per_px = (end - start) / max(self.primitives().plot.w, 1.0)
        self._follow = None
        self._scroll_y = min(max(scroll - moved.y(), 0.0), self._max_scroll())
        self._set_range(start - moved.x() * ns_per_px, end - moved.x() * ns_per_px)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            super().mouseReleaseEvent(event)
            return
        was_drag = self._dragging
        self._press = None
        self._dragging = False
        self.unsetCursor()
        if not was_drag:
            self._click(event.position().x(), event.position().y())

    def _click(self, x: float, y: float) -> None:
        primitives = self.primitives()
        lane = lane_at(primitives, x, y)
        if lane == GROUP_LANE:
            self.show_all_lanes()
            return
        if lane >= 0:
            self.lane_selected.emit(lane)
            return
        if primitives.axis.contains(x, y):
            self.axis_clicked.emit(primitives.ns_at(x))
            return
        if primitives.plot.contains(x, y):
            hit = hit_at(primitives, x, y)
            self.select_span(hit.span if hit is not None and hit.span >= 0 else -1)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """On a lane's name: hide that lane, or show every lane again."""
        lane = lane_at(self.primitives(), event.pos().x(), event.pos().y())
        menu = QMenu(self)
        if lane >= 0:
            name = self._trace.lane_name(lane)
            menu.addAction(f"Hide “{name}”", lambda: self.hide_lane(lane))
        menu.addAction("Show All Lanes", self.show_all_lanes)
        menu.popup(event.globalPos())
        self._menu = menu  # kept until the next one, so it is not collected while shown

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        cursor = self.mapFromGlobal(self.cursor().pos())
        anchor = float(cursor.x()) if self.rect().contains(cursor) else None
        if key == Qt.Key.Key_W:
            self.zoom(ZOOM_STEP, anchor)
        elif key == Qt.Key.Key_S:
            self.zoom(1 / ZOOM_STEP, anchor)
        elif key == Qt.Key.Key_A:
            self.pan(-PAN_FRACTION)
        elif key == Qt.Key.Key_D:
            self.pan(PAN_FRACTION)
        elif key == Qt.Key.Key_F:
            self.zoom_to_fit()
        elif key == Qt.Key.Key_End:
            if self._live:
                self.set_follow_live(True)
            else:
                width = self._end_ns - self._start_ns
                self.set_view_range(self._run_end() - width, self._run_end())
        elif key == Qt.Key.Key_Home:
            start, _ = run_extent(self._trace)
            self.set_view_range(start, start + self._end_ns - self._start_ns)
        elif key in (Qt.Key.Key_Up, Qt.Key.Key_Down):
            step = self._row_height() * (-1 if key == Qt.Key.Key_Up else 1)
            self.scroll_lanes_to(self._scroll_y + step)
        elif key in (Qt.Key.Key_PageUp, Qt.Key.Key_PageDown):
            page = self._lanes_area_height() * (-1 if key == Qt.Key.Key_PageUp else 1)
            self.scroll_lanes_to(self._scroll_y + page)
        elif key == Qt.Key.Key_Escape:
            self.select_span(-1)
        else:
            super().keyPressEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            text = self.tooltip_at(event.pos().x(), event.pos().y())
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
                event.ignore()
            return True
        return super().event(event)

    # -- tooltips -----------------------------------------------------------------------

    def tooltip_at(self, x: float, y: float) -> str:
        """The hover text at a point (rich text), or "" where there is nothing to explain."""
        primitives = self.primitives()
        lane = lane_at(primitives, x, y)
        if lane == GROUP_LANE:
            return (f"<b>{len(self.folded_lanes())} {self._folded_name()}</b><br>"
                    f"asyncio's, aiohttp's or gevent's own tasks, and lanes hidden or "
                    f"filtered out, folded into one row<br>"
                    f"<i>click to show every lane on its own row</i>")
        if lane >= 0:
            return self._lane_tooltip(lane)
        pause = pause_at(primitives, x, y)
        if pause is not None:
            return _pause_tooltip(pause)
        arrow = arrow_at(primitives, x, y)
        if arrow is not None:
            return self._arrow_tooltip(arrow)
        marker = marker_at(primitives, x, y)
        if marker is not None:
            return self._marker_tooltip(marker)
        hit = hit_at(primitives, x, y)
        if hit is None:
            return ""
        name = html.escape(self._trace.lane_name(hit.lane))
        state = STATE_NAMES.get(hit.state, str(hit.state))
        if hit.span == MERGED_SPAN:
            return (f"<b>{name}</b><br>several short spans in this pixel, showing "
                    f"<b>{state}</b><br><i>zoom in to see them one by one</i>")
        if hit.span == OPEN_SPAN:
            open_span = self._builder.open_span(hit.lane)
            since = open_span[1] if open_span is not None else 0
            now = self.live_edge_ns()
            return (f"<b>{name}</b><br><b>{state}</b> (in progress)<br>"
                    f"since {self._at(since)}, for {format_ns(now - since)} so far")
        return self._span_tooltip(hit.span)

    def _span_tooltip(self, index: int) -> str:
        spans, trace = self.spans, self._trace
        lane = spans.lane[index]
        lines = [
            f"<b>{html.escape(trace.lane_name(lane))}</b>",
            f"<b>{STATE_NAMES.get(spans.state[index], '?')}</b>",
            f"start {self._at(spans.start[index])}, "
            f"duration {format_ns(spans.end[index] - spans.start[index])}",
        ]
        lines += [f"{html.escape(key)}: {html.escape(text)}" for key, text in
                  shown_details(trace, spans.detail_of(index, trace), format_ns)]
        source = spans.source[index]
        if source:
            filename, line, function = trace.sources[source]
            where = f"{os.path.basename(filename)}:{line}"
            lines.append(f"<i>{html.escape(where)} in {html.escape(function)}</i>")
        flagged = self._flagged.get(index)
        if flagged is not None:
            lines.append(f"<span style='color:#e02424'>⚑ {html.escape(flagged)}</span>")
        return "<br>".join(lines)

    def _lane_tooltip(self, lane: int) -> str:
        trace = self._trace
        try:
            info = trace.lane_info(lane)
        except (IndexError, StopIteration):
            return f"<b>lane {lane}</b>"
        lines = [f"<b>{html.escape(info.name)}</b>", html.escape(info.kind or "lane"),
                 f"spawned at {self._at(info.spawn_ts)}"]
        if info.parent >= 0:
            lines.append(f"by {html.escape(trace.lane_name(info.parent))}")
        lines.append("<i>click to select this lane</i>")
        return "<br>".join(lines)

    def _at(self, ns: float) -> str:
        """A time as the axis counts it: from the program's first event."""
        return format_ns(max(ns - self._trace.first_event_ns, 0.0))

    def _arrow_tooltip(self, arrow: Arrow) -> str:
        trace = self._trace
        kind = "switch" if trace.code[arrow.seq] == Code.SWITCH else "wake"
        lines = [f"<b>{kind}</b>: {html.escape(trace.lane_name(arrow.from_lane))} → "
                 f"{html.escape(trace.lane_name(arrow.to_lane))}"]
        words = arrow_text(trace, arrow.seq)
        if words:
            lines.append(f"<b>{html.escape(words)}</b>")
        sentence = describe(trace, arrow.seq)
        if sentence:
            lines.append(html.escape(sentence))
        lines.append(f"at {self._at(trace.ts[arrow.seq])}")
        if arrow.bundled > 1:
            lines.append(f"<i>one of {arrow.bundled} arrows drawn as one here: zoom in to see "
                         f"them apart</i>")
        return "<br>".join(lines)

    def _marker_tooltip(self, marker: Marker) -> str:
        trace = self._trace
        detail = trace.details[trace.detail[marker.seq]]
        name = html.escape(trace.lane_name(marker.lane))
        if marker.kind == "output":
            what = f"printed: <tt>{html.escape(str(detail.get('text', '')))}</tt>"
        elif marker.kind == "error":
            what = f"raised <b>{html.escape(str(detail.get('error', '')))}</b>"
        elif marker.kind == "cancelled":
            what = f"was cancelled (<b>{html.escape(str(detail.get('error', '')))}</b>)"
        elif marker.kind == "end":
            result = detail.get("result")
            what = "ends" + (f", returning {html.escape(str(result))}" if result else "")
        else:
            what = html.escape(str(detail.get("text", "")))
        return f"<b>{name}</b> {what}<br>at {self._at(trace.ts[marker.seq])}"


def _pause_tooltip(pause: TextLabel) -> str:
    """What a held stretch, or the break where one was cut out, means."""
    held = html.escape(pause.text)
    if pause.kind == "break":
        return (f"<b>{held}</b><br>the run was held here while stepping; its clock kept "
                f"going, so that time is cut out of the timeline")
    return (f"<b>{held}</b><br>the run was held here while stepping; its clock kept "
            f"going, so this stretch is not the program's own time")
