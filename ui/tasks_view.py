"""The Tasks view: `loopscope report`'s task table, live, sortable and filterable, with
histograms of step times and scheduling latency for the selected lane (or all of them).

It reads the spans the timeline has already folded (no second fold of the trace) through a
tracer.lane_table.LaneTable, which only looks at what is new since the last refresh. While a
run goes on, the lanes' current spans are added up to "now", so their times tick; the view
refreshes at most every TICK_MS, and not at all while it is hidden.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from loopscope.tracer.events import STATE_NAMES
from loopscope.tracer.lane_table import LaneRow, LaneTable
from loopscope.tracer.report_text import short_duration
from loopscope.tracer.spans import Spans
from loopscope.tracer.trace import Trace
from loopscope.ui.histogram import HistogramWidget, Tally, add_counts, buckets_of

TICK_MS = 250
_EMPTY_COUNTS = np.zeros(0, dtype=np.int64)
SORT_ROLE = Qt.ItemDataRole.UserRole
LANE_ROLE = Qt.ItemDataRole.UserRole + 1

# heading, value of a row (its sort key; durations in ns), shown as a duration?
COLUMNS: tuple[tuple[str, Callable[[LaneRow], Any], bool], ...] = (
    ("lane", lambda row: row.name, False),
    ("kind", lambda row: row.kind, False),
    ("status", lambda row: row.status, False),
    ("running", lambda row: row.time_in["running"] + row.time_in["dispatch"], True),
    ("ready", lambda row: row.time_in["ready"], True),
    ("io-wait", lambda row: row.time_in["io-wait"], True),
    ("sleeping", lambda row: row.time_in["sleeping"], True),
    ("blocked", lambda row: row.time_in["blocked"], True),
    ("steps", lambda row: row.steps.count, False),
    ("step p50", lambda row: row.steps.p50, True),
    ("step p99", lambda row: row.steps.p99, True),
    ("step max", lambda row: row.steps.max, True),
    ("latency p50", lambda row: row.latency.p50, True),
    ("latency p99", lambda row: row.latency.p99, True),
    ("latency max", lambda row: row.latency.max, True),
    ("wakes out", lambda row: row.wakes_given, False),
    ("wakes in", lambda row: row.wakes_received, False),
)
RUNNING_COLUMN = 3
_ROOT = QModelIndex()

OpenSpan = Callable[[int], "tuple[int, int] | None"]


def ticking(row: LaneRow, open_span: tuple[int, int] | None, now_ns: int) -> LaneRow:
    """The row with the lane's span in progress counted up to `now_ns`."""
    if open_span is None:
        return row
    state, start = open_span
    name = STATE_NAMES.get(state)
    if name is None or now_ns <= start:
        return row
    time_in = dict(row.time_in)
    time_in[name] += now_ns - start
    return replace(row, time_in=time_in)


_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_SORT = int(SORT_ROLE)
_LANE = int(LANE_ROLE)
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
# The widest text a number column shows, for sizing columns without measuring every cell
# (durations are short: tracer.report_text.short_duration gives three figures and a unit).
WIDEST_NUMBER = "9,999,999"
WIDEST_DURATION = "88.8ms"


class TaskTableModel(QAbstractTableModel):
    """The rows as cells: values (sort keys) and their text, made once per refresh, so a
    repaint, which asks for every visible cell in several roles, only looks them up."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[LaneRow] = []
        self._cells: list[list[Any]] = []
        self._texts: list[list[str]] = []

    def set_rows(self, rows: list[LaneRow]) -> None:
        cells = [[value(row) for _heading, value, _duration in COLUMNS] for row in rows]
        if len(rows) != len(self.rows) or [r.lane for r in rows] != [r.lane for r in self.rows]:
            self.beginResetModel()
            self.rows, self._cells, self._texts = rows, cells, [_texts(row) for row in cells]
            self.endResetModel()
            return
        changed = [position for position, (new, old) in enumerate(zip(cells, self._cells,
                                                                      strict=True))
                   if new != old]
        if not changed:
            return
        self.rows, self._cells = rows, cells
        for position in changed:
            self._texts[position] = _texts(cells[position])
        self.dataChanged.emit(self.index(changed[0], 0),
                              self.index(changed[-1], len(COLUMNS) - 1))

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == _DISPLAY:
            return self._texts[index.row()][index.column()]
        if role == _SORT:
            return self._cells[index.row()][index.column()]
        if role == _ALIGNMENT:
            return _RIGHT if index.column() >= RUNNING_COLUMN else None
        if role == _LANE:
            return self.rows[index.row()].lane
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == _DISPLAY:
            return COLUMNS[section][0]
        return None


def _texts(cells: list[Any]) -> list[str]:
    return [(short_duration(value) if value else "-") if duration else str(value)
            for value, (_heading, _value, duration) in zip(cells, COLUMNS, strict=True)]


class _Filter(QSortFilterProxyModel):
    """Keeps the rows whose lane name, kind or status contains the filter text (held here
    as plain lower-case text: rows are filtered again at every live tick)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.wanted = ""

    def set_wanted(self, text: str) -> None:
        self.wanted = text.lower()
        self.setFilterFixedString(text)  # filters the rows again

    def filterAcceptsRow(self, source_row: int,
                         source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        wanted = self.wanted
        if not wanted:
            return True
        model = self.sourceModel()
        return any(wanted in str(model.data(model.index(source_row, column, source_parent)))
                   .lower() for column in (0, 1, 2))


class TasksView(QWidget):
    """Signals lane_activated(lane) when a row is clicked."""

    lane_activated = Signal(int)
    refreshed = Signal()  # after each refresh that read the trace (live: every tick)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = TaskTableModel(self)
        self.proxy = _Filter(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter lanes by name, kind or status")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._on_filter)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(RUNNING_COLUMN, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().hide()
        # sized when lanes appear, not at every tick: measuring every cell costs a live view
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.model.modelReset.connect(self._size_columns)
        self.table.clicked.connect(self._on_clicked)
        self.step_histogram = HistogramWidget("step times")
        self.latency_histogram = HistogramWidget("scheduling latency")
        histograms = QHBoxLayout()
        histograms.addWidget(self.step_histogram)
        histograms.addWidget(self.latency_histogram)
        column = QVBoxLayout(self)
        column.setContentsMargins(2, 2, 2, 2)
        column.addWidget(self.filter)
        column.addWidget(self.table, 1)
        column.addLayout(histograms)

        self.lanes = LaneTable()
        self._table_coming = False  # folded elsewhere, to be handed over (adopt_table)
        self.selected_lane: int | None = None
        self._trace: Trace | None = None
        self._spans: Callable[[], Spans] | None = None
        self._open_span: OpenSpan | None = None
        self._live = False
        self._grew_at = (-1, 0, 0.0)  # (events, duration_ns, monotonic) when the trace last grew
        self._now = 0
        self._shown: dict[int, dict[str, int]] = {}  # lane -> the times last shown, live
        self._tallies: dict[int, tuple[Tally, Tally]] = {}  # lane -> steps', latencies' counts
        self._tallied: Spans | None = None  # the spans the tallies counted
        self._tick = QTimer(self)
        self._tick.setInterval(TICK_MS)
        self._tick.timeout.connect(self.refresh)

    def show_trace(self, trace: Trace, spans: Callable[[], Spans], open_span: OpenSpan,
                   live: bool, table_coming: bool = False) -> None:
        """Follows `trace`; `spans()` gives the spans drawn now, `open_span(lane)` the state
        and start of a lane's span in progress (live). `table_coming`: the table is being
        folded elsewhere (off the GUI thread) and handed over with adopt_table; until then
        the view shows no rows rather than fold a big trace on the GUI thread."""
        self._trace, self._spans, self._open_span = trace, spans, open_span
        self.lanes = LaneTable()
        self._table_coming = table_coming
        self.selected_lane = None
        self._grew_at, self._now = (-1, 0, 0.0), 0
        self._shown = {}
        self._tallies = {}
        self.set_live(live)
        self.refresh()

    def adopt_table(self, table: LaneTable | None) -> None:
        """The table of the trace on show, folded elsewhere from the spans `spans()` gives
        (None: it could not be, the view folds its own)."""
        self._table_coming = False
        if table is not None:
            self.lanes = table
            self._tallies, self._tallied = {}, None
        self.refresh()

    def set_live(self, live: bool) -> None:
        self._live = live
        if live:
            self._tick.start()
        else:
            self._tick.stop()

    @property
    def live(self) -> bool:
        return self._live

    def refresh(self) -> None:
        if self._trace is None or self._spans is None:
            return
        if self._table_coming:
            self.model.set_rows([])
            return
        if not self.isVisible():
            self.refreshed.emit()  # what listens may still want to look at the new spans
            return
        trace = self._trace
        spans = self._spans()
        if spans is not self._tallied:  # folded anew (the run ended): count afresh, as the table
            self._tallies, self._tallied = {}, spans
        self.lanes.update(trace, spans)
        rows = self.lanes.rows()
        if self._live and self._open_span is not None:
            now = self._live_now(trace)
            rows = [self._never_back(ticking(row, self._open_span(row.lane), now))
                    for row in rows]
        self.model.set_rows(rows)
        self._update_histograms(rows)
        self.refreshed.emit()

    def _update_histograms(self, rows: list[LaneRow]) -> None:
        """Each lane's durations are counted into buckets as they arrive (a live run's
        histograms cost what is new, not the run); all lanes' are the sum."""
        wanted = [row.lane for row in rows] if self.selected_lane is None \
            else [self.selected_lane]
        steps, latencies = _EMPTY_COUNTS, _EMPTY_COUNTS
        for lane in wanted:
            step_tally, latency_tally = self._tallies.setdefault(lane, (Tally(), Tally()))
            step_tally.update(self.lanes.step_durations(lane))
            latency_tally.update(self.lanes.latencies(lane))
            steps = add_counts(steps, step_tally.counts)
            latencies = add_counts(latencies, latency_tally.counts)
        self.step_histogram.set_buckets(buckets_of(steps))
        self.latency_histogram.set_buckets(buckets_of(latencies))

    def _never_back(self, row: LaneRow) -> LaneRow:
        """Live, a span in progress is counted up to an estimate of "now"; when it closes a
        little earlier than estimated, keep the time shown rather than tick backwards (the
        exact figures are shown once the run ends)."""
        shown = self._shown.get(row.lane)
        if shown is not None and any(shown[state] > row.time_in[state] for state in shown):
            row = replace(row, time_in={state: max(ns, shown[state])
                                        for state, ns in row.time_in.items()})
        self._shown[row.lane] = row.time_in
        return row

    def _live_now(self, trace: Trace) -> int:
        """The run's clock now: its last event, plus the wall time since it arrived; never
        earlier than the last answer, so the times shown never go back."""
        events, duration, at = self._grew_at
        if len(trace) != events:
            self._grew_at = events, duration, at = len(trace), trace.duration_ns, time.monotonic()
        self._now = max(self._now, duration + int((time.monotonic() - at) * 1e9))
        return self._now

    def select_lane(self, lane: int | None) -> None:
        self.selected_lane = lane
        self.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def _size_columns(self) -> None:
        """Sized when lanes appear, from the headings, the names and the widest figure a
        column can show: measuring every cell (resizeColumnsToContents) took tens of
        milliseconds of a live window's time."""
        cell = self.table.fontMetrics()
        heading = self.table.horizontalHeader().fontMetrics()
        padding = 3 * cell.averageCharWidth() + 8
        for column, (title, _value, duration) in enumerate(COLUMNS):
            if column < RUNNING_COLUMN:
                texts = {self.model.data(self.model.index(row, column)) or ""
                         for row in range(self.model.rowCount())}
            else:
                texts = {WIDEST_DURATION if duration else WIDEST_NUMBER}
            widest = max((cell.horizontalAdvance(text) for text in texts), default=0)
            self.table.setColumnWidth(column, max(widest, heading.horizontalAdvance(title))
                                      + padding)

    def _on_filter(self, text: str) -> None:
        self.proxy.set_wanted(text)

    def _on_clicked(self, index: QModelIndex) -> None:
        lane = self.proxy.data(index, LANE_ROLE)
        if isinstance(lane, int):
            self.select_lane(lane)
            self.lane_activated.emit(lane)
