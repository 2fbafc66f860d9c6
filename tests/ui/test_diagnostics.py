"""The report in the window: the Tasks view (live, sortable, filterable), histograms, the
findings in the Problems tab, red corners on stalled spans, and a click to line and stack."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import qasync
from PySide6.QtCore import Qt

from loopscope.tracer.events import Code
from loopscope.tracer.lane_table import LaneTable, lane_rows
from loopscope.tracer.native import save_native
from loopscope.tracer.spans import derive_spans
from loopscope.ui.histogram import Tally, add_counts, bucket_counts, buckets_of, doubling_buckets
from loopscope.ui.main_window import MainWindow
from loopscope.ui.problem_marks import corner_triangles
from loopscope.ui.tasks_view import COLUMNS, LANE_ROLE, ticking
from tests.tracer.test_report import BLOCKING, _stalled_loop
from tests.ui.test_main_window import loop, run_scenario, run_until, settings_path, window

__all__ = ["loop", "settings_path", "window"]  # fixtures, used by name
pytestmark = pytest.mark.gui
MS = 1_000_000


def _open(window: MainWindow, loop: qasync.QEventLoop, tmp_path: Path) -> None:
    path = tmp_path / "stalled.loopscope"
    save_native(_stalled_loop(), path)
    assert window.open_trace(str(path))
    run_until(loop, lambda: window.diagnostics.report is not None, what="the report")


def _table(window: MainWindow) -> list[list[str]]:
    proxy = window.diagnostics.tasks.proxy
    return [[str(proxy.data(proxy.index(row, column))) for column in range(len(COLUMNS))]
            for row in range(proxy.rowCount())]


def test_doubling_buckets_count_each_duration_once() -> None:
    buckets = doubling_buckets([500, 1_000, 1_999, 2_000, 9_000])
    assert [(b.low_ns, b.high_ns, b.samples) for b in buckets] == [
        (0, 1_000, 1), (1_000, 2_000, 2), (2_000, 4_000, 1), (4_000, 8_000, 0),
        (8_000, 16_000, 1)]
    assert doubling_buckets([]) == []


def test_a_tally_fed_a_growing_set_counts_what_the_whole_set_counts() -> None:
    durations = np.array([500, 3_000, 70_000, 1_000, 2_000_000, 9_000, 12, 640_000],
                         dtype=np.int64)
    tally = Tally()
    for stop in (0, 2, 2, 5, 8):
        tally.update(durations[:stop])
    assert buckets_of(tally.counts) == doubling_buckets(durations)
    # a set that is not the one seen grown (it shrank) is counted afresh
    tally.update(durations[:3])
    assert buckets_of(tally.counts) == doubling_buckets(durations[:3])
    assert buckets_of(add_counts(bucket_counts(durations[:3]), bucket_counts(durations[3:]))) \
        == doubling_buckets(durations)


def test_a_lane_in_progress_ticks_up_to_now() -> None:
    trace = _stalled_loop()
    row = next(r for r in lane_rows(trace, derive_spans(trace)) if r.name == "slow")
    later = ticking(row, (int(Code.RUNNING), 400 * MS), 450 * MS)
    assert later.time_in["running"] == row.time_in["running"] + 50 * MS
    assert ticking(row, None, 450 * MS) == row


def test_the_tasks_view_shows_the_table_sorted_by_cost_and_filters_it(
        window: MainWindow, loop: qasync.QEventLoop, tmp_path: Path) -> None:
    window.tabs.setCurrentWidget(window.diagnostics.tasks)
    _open(window, loop, tmp_path)
    rows = _table(window)
    assert [row[0] for row in rows] == ["asyncio loop", "slow", "queued", "sleeper"]
    assert rows[1][3] == "300ms" and rows[1][8] == "1"
    tasks = window.diagnostics.tasks
    tasks.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)  # by name
    assert [row[0] for row in _table(window)] == ["asyncio loop", "queued", "sleeper", "slow"]
    tasks.filter.setText("SLE")
    assert [row[0] for row in _table(window)] == ["sleeper"]
    tasks.filter.setText("loop")  # the kind matches too
    assert [row[0] for row in _table(window)] == ["asyncio loop"]
    # the columns, sized without measuring every cell, still fit every cell and heading
    tasks.filter.setText("")
    metrics = tasks.table.fontMetrics()
    for column, (heading, _value, _duration) in enumerate(COLUMNS):
        width = tasks.table.columnWidth(column)
        assert width >= tasks.table.horizontalHeader().fontMetrics().horizontalAdvance(heading)
        assert all(width >= metrics.horizontalAdvance(row[column]) for row in _table(window))


def test_an_opened_trace_s_task_table_is_folded_with_its_report_not_on_the_gui_thread(
        window: MainWindow, loop: qasync.QEventLoop, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    window.tabs.setCurrentWidget(window.diagnostics.tasks)
    folds: list[tuple[bool, int]] = []  # (on the GUI thread, spans it had still to fold)
    update = LaneTable.update

    def noted(table: LaneTable, trace: object, spans: object) -> None:
        fresh = table._spans is not spans  # type: ignore[comparison-overlap]
        new = len(spans) - (0 if fresh else table._spans_seen)  # type: ignore[arg-type]
        folds.append((threading.current_thread() is threading.main_thread(), new))
        update(table, trace, spans)  # type: ignore[arg-type]

    monkeypatch.setattr(LaneTable, "update", noted)
    path = tmp_path / "stalled.loopscope"
    save_native(_stalled_loop(), path)
    window.load_trace(str(path))  # as File > Open does: in the background, the loop running
    run_until(loop, lambda: window.diagnostics.tasks.model.rowCount() == 4, what="the table")

    assert [new for on_gui, new in folds if not on_gui] == [len(window.timeline.spans)]
    assert all(new == 0 for on_gui, new in folds if on_gui)
    assert window.diagnostics.tasks.lanes.rows() == lane_rows(window.trace,  # type: ignore[arg-type]
                                                              window.timeline.spans)


def test_clicking_a_task_row_selects_its_lane_and_its_histograms(
        window: MainWindow, loop: qasync.QEventLoop, tmp_path: Path, qtbot) -> None:
    window.tabs.setCurrentWidget(window.diagnostics.tasks)
    _open(window, loop, tmp_path)
    tasks = window.diagnostics.tasks
    assert sum(b.samples for b in tasks.step_histogram.buckets) == 3  # every lane's steps
    row = next(r for r in range(tasks.proxy.rowCount())
               if tasks.proxy.data(tasks.proxy.index(r, 0)) == "slow")
    index = tasks.proxy.index(row, 0)
    with qtbot.waitSignal(tasks.lane_activated) as activated:
        tasks.table.clicked.emit(index)
    assert activated.args == [tasks.proxy.data(index, LANE_ROLE)]
    assert tasks.selected_lane == activated.args[0]
    assert window.tabs.currentWidget() is tasks  # the view stays in front ...
    assert window.details.toPlainText().startswith("slow")  # ... the lane's details behind
    assert [(b.low_ns, b.samples) for b in tasks.step_histogram.buckets if b.samples] == [
        (1_000 << 18, 1)]  # its one 300 ms step


def test_a_stall_is_listed_marked_with_a_red_corner_and_leads_to_its_line(
        window: MainWindow, loop: qasync.QEventLoop, tmp_path: Path) -> None:
    _open(window, loop, tmp_path)
    findings = window.diagnostics.findings
    assert findings.topLevelItemCount() == 1
    item = findings.topLevelItem(0)
    assert [item.text(c) for c in range(4)] == ["stall", "slow", "0.010 s", "server.py:57"]
    # the stalled span carries a red corner at the top right of its rectangle
    spans = window.timeline.spans
    (span,) = window.diagnostics.flagged
    assert spans.state[span] == Code.RUNNING and spans.end[span] - spans.start[span] == 300 * MS
    primitives = window.timeline.primitives()
    (drawn,) = [i for i in range(len(primitives.rects)) if primitives.rects.span[i] == span]
    right, top = primitives.rects.x[drawn] + primitives.rects.w[drawn], primitives.rects.y[drawn]
    (triangle,) = corner_triangles(primitives, window.diagnostics.flagged)
    assert triangle[1] == (pytest.approx(right), pytest.approx(top))
    assert all(x <= right + 1e-9 and y >= top - 1e-9 for x, y in triangle)
    # hovering it says what was found
    centre_x = primitives.rects.x[drawn] + primitives.rects.w[drawn] / 2
    centre_y = top + primitives.rects.h[drawn] / 2
    assert "stall: slow ran 300 ms without yielding" in window.timeline.tooltip_at(centre_x,
                                                                                 centre_y)
    # a click on the finding selects the span and shows its stack, its victims and its line
    findings.itemClicked.emit(item, 0)
    assert window.timeline.selected_span == span
    assert window.tabs.currentWidget() is window.details
    html = window.details.toPlainText()
    assert "server.py:57 in handle" in html and "sleeper: its timer fired 220ms late" in html
    assert window.source.path == BLOCKING[0] or window.source.path is None


def test_a_clean_trace_lists_no_findings_and_marks_nothing(
        window: MainWindow, loop: qasync.QEventLoop) -> None:
    run_scenario(window, loop, "asyncio-hello")
    run_until(loop, lambda: window.diagnostics.report is not None, what="the report")
    assert window.diagnostics.findings.topLevelItemCount() == 0
    assert window.diagnostics.flagged == {}


@pytest.mark.slow
def test_the_tasks_view_fills_while_a_run_goes_on_then_flags_the_stall(
        window: MainWindow, loop: qasync.QEventLoop) -> None:
    seen_live: list[dict[str, int]] = []
    tasks = window.diagnostics.tasks

    def note() -> None:
        if window.live.is_running:
            seen_live.append({row.name: row.time_in["sleeping"] for row in tasks.model.rows})

    tasks.model.modelReset.connect(note)
    tasks.model.dataChanged.connect(note)
    flagged_live: list[str] = []
    window.diagnostics.findings.model().rowsInserted.connect(
        lambda *_: flagged_live.append(window.diagnostics.findings.topLevelItem(0).text(1))
        if window.live.is_running else None)
    assert window.browser.select("blocking-call")

    async def start() -> None:
        window.run_action.trigger()
        window.tabs.setCurrentWidget(tasks)  # the user looks at the Tasks view

    loop.run_until_complete(start())
    run_until(loop, lambda: not window.live.is_running, what="blocking-call to finish")
    assert any("blocker" in names for names in seen_live), "no rows while the run went on"
    # the times tick while the run goes on: the ticker's sleeping time grows between updates
    ticker = [names["ticker"] for names in seen_live if "ticker" in names]
    assert len(set(ticker)) > 2 and ticker == sorted(ticker)
    assert window.trace is not None and max(ticker) <= window.trace.duration_ns
    # the stall was listed while the run still went on, not only once it had finished
    assert "blocker" in flagged_live
    run_until(loop, lambda: window.diagnostics.report is not None, what="the report")
    items = window.diagnostics.findings
    assert items.topLevelItemCount() == 1
    assert items.topLevelItem(0).text(3) == "blocking_call.py:55"
    assert len(window.diagnostics.flagged) == 1
    # the histograms, counted as the durations arrived, equal those of the finished table
    assert tasks.step_histogram.buckets == doubling_buckets(tasks.lanes.step_durations())
    assert tasks.latency_histogram.buckets == doubling_buckets(tasks.lanes.latencies())
    assert sum(bucket.samples for bucket in tasks.step_histogram.buckets) == sum(
        row.steps.count for row in tasks.lanes.rows())


def test_a_sampled_step_shorter_than_a_stall_shows_what_it_ran(
        window: MainWindow, loop: qasync.QEventLoop, tmp_path: Path) -> None:
    _open(window, loop, tmp_path)
    (span,) = window.diagnostics.flagged
    window.diagnostics.flagged = {}  # as if the step had been shorter than a stall
    window.timeline.select_span(span)
    text = window.details.toPlainText()
    assert "Stack (3 of 4 samples, innermost first)" in text
    assert "server.py:57 in handle" in text
