"""Findings in the app: the list in the Problems tab and their details (the red corners on
their spans are ui.problem_marks).

The HTML is made by plain functions, so tests read it without widgets.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from loopscope.tracer.findings import Finding
from loopscope.tracer.report_text import finding_time, how_delayed, short_duration
from loopscope.tracer.samples import Stack, frame_location

STACK_LINES = 12
DELAY_ITEMS = 50  # the most delayed lanes listed for a stall


def finding_html(finding: Finding, first_event_ns: int = 0) -> str:
    """What a finding says, its stack and whom it delayed, for the details pane; its time on
    the program's clock, which starts at `first_event_ns`."""
    parts = [f"<h3>{escape(finding.rule)}: {escape(finding.title)}</h3>"]
    rows = []
    if finding.lane_name:
        rows.append(("lane", escape(finding.lane_name)))
    if finding.ts_ns is not None:
        rows.append(("at", finding_time(finding.ts_ns, first_event_ns)))
    if finding.duration_ns:
        rows.append(("for", short_duration(finding.duration_ns)))
    if finding.where:
        rows.append(("line", escape(finding.where)))
    parts.append("<table>" + "".join(
        f"<tr><td class='key'>{key}</td><td>{value}</td></tr>" for key, value in rows)
        + "</table>")
    if finding.stack:
        parts.append(samples_html(finding.stack, finding.samples))
    if finding.delayed:
        items = [f"<li>{escape(delay.name)}: {how_delayed(delay)}</li>"
                 for delay in finding.delayed[:DELAY_ITEMS]]
        if len(finding.delayed) > DELAY_ITEMS:
            items.append(f"<li>… {len(finding.delayed) - DELAY_ITEMS:,} more</li>")
        parts.append(f"<p><b>Delayed</b></p><ul>{''.join(items)}</ul>")
    parts.append(f"<p>{escape(finding.explanation)}</p>")
    if finding.scenario:
        parts.append(f"<p>The <b>{escape(finding.scenario)}</b> scenario shows this.</p>")
    return "".join(parts)


def samples_html(stack: Stack, seen: int, taken: int | None = None) -> str:
    """A sampled stack, innermost first: seen in `seen` of `taken` samples."""
    frames = "".join(
        f"<li><code>{escape(frame_location(frame))}</code> in {escape(frame[2])}</li>"
        for frame in stack[:STACK_LINES])
    more = f"<li>… {len(stack) - STACK_LINES} more</li>" if len(stack) > STACK_LINES else ""
    of = f" of {taken}" if taken is not None else ""
    return (f"<p><b>Stack</b> ({seen}{of} samples, innermost first)</p>"
            f"<ol>{frames}{more}</ol>")


class FindingsList(QTreeWidget):
    """The findings, one a row; `finding_activated(Finding)` on a click."""

    finding_activated = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderLabels(["finding", "lane", "at", "line", "what"])
        self.setRootIsDecorated(False)
        self.setAlternatingRowColors(True)
        self.findings: list[Finding] = []
        self.itemClicked.connect(self._on_clicked)
        self.itemActivated.connect(self._on_clicked)

    def set_findings(self, findings: list[Finding], first_event_ns: int = 0) -> None:
        """Lists `findings`, their times on the program's clock (from `first_event_ns`)."""
        self.clear()
        self.findings = list(findings)
        for position, finding in enumerate(self.findings):
            item = QTreeWidgetItem([
                finding.rule,
                finding.lane_name or "",
                "" if finding.ts_ns is None else finding_time(finding.ts_ns, first_event_ns),
                finding.where or "",
                finding.title,
            ])
            item.setData(0, 256, position)  # Qt.UserRole
            item.setToolTip(4, finding.explanation)
            self.addTopLevelItem(item)
        for column in range(4):
            self.resizeColumnToContents(column)

    def _on_clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        position = item.data(0, 256)
        if isinstance(position, int) and 0 <= position < len(self.findings):
            self.finding_activated.emit(self.findings[position])
