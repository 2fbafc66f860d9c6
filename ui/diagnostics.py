"""The report in the window: the Tasks view, the findings in the Problems tab, the red corners
on stalled spans, and the way from a finding to its span, its source line and its stack.

The main window creates one Diagnostics and tells it when a trace is shown, a run ends and a
span is selected; everything else about findings lives here. The report of a finished run is
built on a worker thread (the trace no longer changes, and tracer/ is pure Python without Qt),
so a big trace does not hold up the window; where no asyncio loop runs it is built in place.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from loopscope.tracer.findings import Finding
from loopscope.tracer.lane_table import LaneTable
from loopscope.tracer.query import lane_order
from loopscope.tracer.report import Report, build_report
from loopscope.tracer.spans import Spans
from loopscope.tracer.stalls import long_steps, stalls_at
from loopscope.tracer.trace import Trace
from loopscope.ui.details_pane import DetailsPane, span_details_html
from loopscope.ui.findings_view import FindingsList, finding_html, samples_html
from loopscope.ui.problem_marks import flagged_spans, span_of
from loopscope.ui.source_pane import SourcePane
from loopscope.ui.tasks_view import TasksView
from loopscope.ui.timeline import TimelineWidget

FINDING_MARGIN = 0.25  # of the finding's own length, shown either side when it is selected


Built = tuple[Report, dict[int, Finding], LaneTable]


def _report_and_flags(trace: Trace, spans: Spans) -> Built:
    """The report, the spans its findings are about and the Tasks view's table: all
    O(events), so all are made off the GUI thread when there is a loop to run them beside."""
    table = LaneTable()
    table.update(trace, spans)
    report = build_report(trace, None, spans, table)
    return report, flagged_spans(spans, report.findings), table


class Diagnostics(QObject):
    report_ready = Signal(object)  # the tracer.report.Report of the trace on display

    def __init__(self, timeline: TimelineWidget, details: DetailsPane, source: SourcePane,
                 show_details: Callable[[], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.timeline = timeline
        self.details = details
        self.source = source
        self.show_details = show_details
        self.tasks = TasksView()
        self.findings = FindingsList()
        self.report: Report | None = None
        self.flagged: dict[int, Finding] = {}
        self._trace: Trace | None = None
        self._pending: asyncio.Future[Built] | None = None
        self._live_scan = 0  # spans already looked at for stalls while the run goes on
        self.findings.finding_activated.connect(self.show_finding)
        self.tasks.refreshed.connect(self._flag_live_stalls)

    # -- what the window tells us ----------------------------------------------------------

    def show_trace(self, trace: Trace, live: bool) -> None:
        self._trace = trace
        self._forget_report()
        # A finished trace's table is folded with its report, off the GUI thread (analyse).
        self.tasks.show_trace(trace, lambda: self.timeline.folded_spans, self.timeline.open_span,
                              live, table_coming=not live)
        if not live:
            self.analyse()

    def _flag_live_stalls(self) -> None:
        """While a run goes on, a step that has ended long is listed and marked at once; the
        finished run's report replaces these (with every lane they delayed by then)."""
        if self._trace is None or self.report is not None or not self.tasks.live:
            return
        spans = self.timeline.folded_spans
        first, self._live_scan = self._live_scan, len(spans)
        found = stalls_at(self._trace, spans, long_steps(self._trace, spans, first=first))
        if not found:
            return
        for finding in found:
            self.flagged[span_of(spans, finding)] = finding
        self.findings.set_findings([*self.findings.findings, *found],
                                   self._trace.first_event_ns)
        self.timeline.set_flagged_spans(self._flag_notes())

    def run_finished(self) -> None:
        self.tasks.set_live(False)
        self.tasks.refresh()
        self.analyse()

    def span_selected(self, index: int) -> None:
        """The timeline selected a span: a flagged one shows its finding under its details."""
        finding = self.flagged.get(index)
        trace = self._trace
        if trace is None:
            return
        spans = self.timeline.spans
        if finding is None:
            # a step shorter than a stall may still have been sampled: show what it ran
            taken = trace.samples.between(spans.start[index], spans.end[index], spans.lane[index])
            dominant = trace.samples.dominant_stack(taken)
            if dominant is not None:
                self.details.setHtml(span_details_html(trace, spans, index)
                                     + samples_html(dominant[0], dominant[1], len(taken)))
            return
        self.details.setHtml(span_details_html(trace, spans, index)
                             + finding_html(finding, trace.first_event_ns))
        if finding.location is not None:
            self.source.show_location(finding.location[0], finding.location[1])

    # -- the report ------------------------------------------------------------------------

    def analyse(self) -> None:
        trace = self._trace
        if trace is None:
            return
        self._forget_report()
        spans = self.timeline.spans
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._apply(_report_and_flags(trace, spans))
            return
        future = loop.run_in_executor(None, _report_and_flags, trace, spans)
        self._pending = future
        future.add_done_callback(self._on_report)

    def _on_report(self, future: asyncio.Future[Built]) -> None:
        if future is not self._pending or future.cancelled():
            return
        self._pending = None
        error = future.exception()
        if error is not None:  # a bug in a lint must not take the window down; say it
            self.findings.set_findings([])
            self.findings.setHeaderLabels(["finding", "lane", "at", "line",
                                           f"the report failed: {error}"])
            self.tasks.adopt_table(None)  # the view folds its own
            return
        self._apply(future.result())

    def _apply(self, built: Built) -> None:
        report, self.flagged, table = built
        self.tasks.adopt_table(table)
        self.report = report
        self.findings.set_findings(report.findings, report.first_event_ns)
        self.timeline.set_flagged_spans(self._flag_notes())
        self.report_ready.emit(report)

    def _flag_notes(self) -> dict[int, str]:
        return {index: f"{finding.rule}: {finding.title}"
                for index, finding in self.flagged.items()}

    def _forget_report(self) -> None:
        if self._pending is not None:
            with contextlib.suppress(Exception):
                self._pending.cancel()
            self._pending = None
        self.report = None
        self.flagged = {}
        self._live_scan = 0
        self.findings.set_findings([])
        self.timeline.set_flagged_spans({})

    # -- going to a finding or a lane --------------------------------------------------------

    def show_finding(self, finding: Finding) -> None:
        """Selects the finding's span and brings it into view; shows its stack and its line."""
        spans = self.timeline.spans
        index = span_of(spans, finding)
        if index >= 0:
            start, end = spans.start[index], spans.end[index]
            margin = max((end - start) * FINDING_MARGIN, 1_000_000)
            self.timeline.set_view_range(start - margin, end + margin)
            self.scroll_to_lane(spans.lane[index])
            self.timeline.select_span(index)
        elif finding.lane is not None:
            self.scroll_to_lane(finding.lane)
        trace = self._trace
        origin = trace.first_event_ns if trace is not None else 0
        self.details.setHtml(finding_html(finding, origin) if index < 0 or trace is None else
                             span_details_html(trace, spans, index)
                             + finding_html(finding, origin))
        self.show_details()
        if finding.location is not None:
            self.source.show_location(finding.location[0], finding.location[1])

    def scroll_to_lane(self, lane: int) -> None:
        trace = self._trace
        if trace is None:
            return
        # folded (library or hidden) lanes share the one row after the others
        folded = self.timeline.folded_lanes()
        order = [entry[0] for entry in lane_order(trace, self.timeline.spans)
                 if entry[0] not in folded]
        row = order.index(lane) if lane in order else len(order)
        self.timeline.scroll_lanes_to(row * self.timeline.lane_height)
