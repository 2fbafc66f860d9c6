"""The red corner a finding puts on its span (as DevTools marks long tasks): which spans get
one, where the triangle goes and how it is painted. The timeline and the image export draw
the same corners; this module needs only QtGui, so a headless export can use it.
"""

from __future__ import annotations

from array import array
from collections.abc import Collection, Iterable

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QPainter, QPolygonF

from loopscope.tracer.findings import Finding
from loopscope.tracer.spans import Spans, column_rows
from loopscope.tracer.stalls import DEFAULT_THRESHOLD_NS, stall_indices
from loopscope.tracer.trace import Trace
from loopscope.ui.layout import Primitives

CORNER_PX = 9.0
CORNER_COLOR = "#e02424"


def span_of(spans: Spans, finding: Finding) -> int:
    """The span a finding is about (the one its `seq` began), or -1."""
    if finding.seq is None or finding.lane is None:
        return -1
    # column-wise: the report's thread finds these beside the window, and numpy lets go of
    # the GIL where a loop over a long lane's spans would hold it
    at = column_rows(spans.by_lane.get(finding.lane, array("i")))
    begun = np.frombuffer(spans.start_seq, dtype=np.int32)[at]
    found = np.flatnonzero(begun == finding.seq)
    return int(at[found[0]]) if len(found) else -1


def flagged_spans(spans: Spans, findings: Iterable[Finding]) -> dict[int, Finding]:
    """Span index -> the finding about it, for the findings that are about a span."""
    flagged = {}
    for finding in findings:
        index = span_of(spans, finding)
        if index >= 0:
            flagged[index] = finding
    return flagged


def stalled_spans(trace: Trace, spans: Spans,
                  threshold_ns: int = DEFAULT_THRESHOLD_NS) -> set[int]:
    """The spans a picture of a finished trace marks: its stalls, without working out whom
    each delayed (the report does; the app has built it already and passes its findings)."""
    return set(stall_indices(trace, spans, threshold_ns))


def corner_triangles(primitives: Primitives, flagged: Collection[int]
                     ) -> list[tuple[tuple[float, float], ...]]:
    """A triangle in the top right corner of every drawn rectangle of a flagged span."""
    if not flagged:
        return []
    rects = primitives.rects
    wanted = np.isin(rects.span, np.fromiter(flagged, dtype=np.int64))
    triangles: list[tuple[tuple[float, float], ...]] = []
    for i in np.flatnonzero(wanted):
        x, y, w, h = (float(rects.x[i]), float(rects.y[i]), float(rects.w[i]),
                      float(rects.h[i]))
        size = min(CORNER_PX, w, h)
        right = x + w
        triangles.append(((right - size, y), (right, y), (right, y + size)))
    return triangles


def paint_problem_corners(painter: QPainter, primitives: Primitives,
                          flagged: Collection[int]) -> None:
    triangles = corner_triangles(primitives, flagged)
    if not triangles:
        return
    painter.save()
    painter.setPen(QColor(CORNER_COLOR))
    painter.setBrush(QColor(CORNER_COLOR))
    for triangle in triangles:
        painter.drawPolygon(QPolygonF([QPointF(x, y) for x, y in triangle]))
    painter.restore()
