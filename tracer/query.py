"""Read-side conveniences over a trace and its spans: rows to compare, lanes by name or kind.

Tests, narration and statistics ask the same questions of a trace; they are answered here once.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from loopscope.tracer.events import CODE_NAMES, STATE_NAMES, LaneKind
from loopscope.tracer.spans import Spans
from loopscope.tracer.trace import LaneInfo, Trace


class SpanRow(NamedTuple):
    span: int
    lane: int
    state: str
    start: int
    end: int
    detail: dict[str, Any]

    @property
    def duration(self) -> int:
        return self.end - self.start


def span_rows(trace: Trace, spans: Spans, lane: int | None = None) -> list[SpanRow]:
    """A lane's spans in time order (or every span, in the order they closed)."""
    indices = spans.by_lane.get(lane, ()) if lane is not None else range(len(spans))
    return [
        SpanRow(
            i, spans.lane[i], STATE_NAMES[spans.state[i]], spans.start[i], spans.end[i],
            spans.detail_of(i, trace),
        )
        for i in indices
    ]


def lanes(trace: Trace, kind: str | None = None, name: str | None = None) -> list[LaneInfo]:
    """Lanes in spawn order, filtered by kind and by a substring of the name."""
    return [
        info
        for info in trace.lanes
        if (kind is None or info.kind == kind) and (name is None or name in info.name)
    ]


def lane_named(trace: Trace, name: str) -> LaneInfo:
    """The one lane whose name contains `name`; fails loudly if there are none or several."""
    found = lanes(trace, name=name)
    if len(found) != 1:
        raise LookupError(f"{len(found)} lanes match {name!r}: {[i.name for i in found]}")
    return found[0]


def event_kinds(trace: Trace, lane: int | None = None) -> list[str]:
    """The kind of every event (on one lane), for comparing with an expected sequence."""
    return [
        CODE_NAMES[trace.code[seq]]
        for seq in range(len(trace))
        if lane is None or trace.lane[seq] == lane
    ]


def lane_order(trace: Trace, spans: Spans) -> list[tuple[int, str, str]]:
    """(lane, name, kind) top to bottom, as the timeline and every export show them: loop
    lanes first, then every other lane in spawn order; lanes that have spans but no spawn
    event (a recorder that skipped it) last, named "lane N" with no kind."""
    known = {info.id for info in trace.lanes}
    rows = [(info.id, info.name, info.kind) for info in trace.lanes]
    rows += [(lane, f"lane {lane}", "") for lane in sorted(spans.by_lane) if lane not in known]
    loops = [row for row in rows if row[2] in LaneKind.LOOP_KINDS]
    others = [row for row in rows if row[2] not in LaneKind.LOOP_KINDS]
    return loops + others
