"""Folds events into per-lane state spans and arrows: the one derivation every view shares.

`derive_spans(trace)` is the pure function; `SpanBuilder` is the same fold fed in slices, so a
live view extends what it has instead of refolding. Both give identical results.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from loopscope.tracer.events import FIRST_INSTANT, NO_LANE, Code
from loopscope.tracer.trace import Trace


@dataclass
class Spans:
    """State spans in columns, in the order they ended, plus arrows and lane instants."""

    lane: array[int] = field(default_factory=lambda: array("i"))
    state: array[int] = field(default_factory=lambda: array("b"))
    start: array[int] = field(default_factory=lambda: array("q"))
    end: array[int] = field(default_factory=lambda: array("q"))
    detail: array[int] = field(default_factory=lambda: array("i"))  # index into trace.details
    source: array[int] = field(default_factory=lambda: array("i"))  # index into trace.sources
    start_seq: array[int] = field(default_factory=lambda: array("i"))
    # Span index -> detail merged from ANNOTATE events (the span's own detail plus additions).
    annotated: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Arrows (wake and switch): the seq of the event that drew each one.
    arrow_seq: array[int] = field(default_factory=lambda: array("i"))
    # Span indices per lane, in time order.
    by_lane: dict[int, array[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.start)

    def detail_of(self, index: int, trace: Trace) -> dict[str, Any]:
        merged = self.annotated.get(index)
        return merged if merged is not None else trace.details[self.detail[index]]


class SpanBuilder:
    """The fold, resumable: feed it the trace as it grows, then `finish` at the end."""

    def __init__(self) -> None:
        self.spans = Spans()
        self.fed = 0
        # lane -> [state, start_ts, detail, source, start_seq, merged-detail-or-None]
        self._open: dict[int, list[Any]] = {}

    def feed(self, trace: Trace, stop: int | None = None) -> None:
        stop = len(trace) if stop is None else stop
        spans = self.spans
        open_spans = self._open
        close = self._close
        first_instant = FIRST_INSTANT
        ts_col, lane_col, code_col = trace.ts, trace.lane, trace.code
        detail_col, source_col = trace.detail, trace.source
        # what _close does, inlined for the span a new state closes (the fold's hot path)
        add_lane, add_state, add_start = spans.lane.append, spans.state.append, spans.start.append
        add_end, add_detail, add_source = spans.end.append, spans.detail.append, spans.source.append
        add_start_seq, by_lane, annotated = spans.start_seq.append, spans.by_lane, spans.annotated
        arrows = (int(Code.WAKE), int(Code.SWITCH))
        end_code, annotate = int(Code.END), int(Code.ANNOTATE)
        for seq in range(self.fed, stop):
            code = code_col[seq]
            lane = lane_col[seq]
            if code < first_instant:
                ts = ts_col[seq]
                current = open_spans.get(lane)
                if current is not None:
                    index = len(spans.start)
                    add_lane(lane)
                    add_state(current[0])
                    add_start(current[1])
                    add_end(ts)
                    add_detail(current[2])
                    add_source(current[3])
                    add_start_seq(current[4])
                    if current[5] is not None:
                        annotated[index] = current[5]
                    per_lane = by_lane.get(lane)
                    if per_lane is None:
                        per_lane = by_lane[lane] = array("i")
                    per_lane.append(index)
                open_spans[lane] = [code, ts, detail_col[seq], source_col[seq], seq, None]
            elif code in arrows:
                spans.arrow_seq.append(seq)
            elif code == end_code:
                current = open_spans.pop(lane, None)
                if current is not None:
                    close(lane, current, ts_col[seq])
            elif code == annotate:
                current = open_spans.get(lane)
                if current is not None:
                    merged = current[5]
                    if merged is None:
                        merged = current[5] = dict(trace.details[current[2]])
                    merged.update(trace.details[detail_col[seq]])
        self.fed = stop

    def _close(self, lane: int, current: list[Any], end: int) -> None:
        spans = self.spans
        index = len(spans.start)
        spans.lane.append(lane)
        spans.state.append(current[0])
        spans.start.append(current[1])
        spans.end.append(end)
        spans.detail.append(current[2])
        spans.source.append(current[3])
        spans.start_seq.append(current[4])
        if current[5] is not None:
            spans.annotated[index] = current[5]
        per_lane = spans.by_lane.get(lane)
        if per_lane is None:
            per_lane = spans.by_lane[lane] = array("i")
        per_lane.append(index)

    def open_span(self, lane: int) -> tuple[int, int] | None:
        """(state, start_ts) of the lane's span still in progress, if any."""
        current = self._open.get(lane)
        return None if current is None else (current[0], current[1])

    def open_lanes(self) -> list[int]:
        return list(self._open)

    @property
    def open_spans(self) -> dict[int, list[Any]]:
        """The spans still in progress, by lane: [state, start_ts, detail, source, start_seq,
        merged detail or None]. To read, not to change."""
        return self._open

    def open_start_seq(self, lane: int) -> int | None:
        """The seq that began the lane's span still in progress, if any."""
        current = self._open.get(lane)
        return None if current is None else int(current[4])

    def take_spans(self) -> Spans:
        """The spans (and arrows) folded since the last take, handed over: the builder starts
        a fresh Spans, numbered from 0 again, so a consumer that streams them keeps none."""
        taken, self.spans = self.spans, Spans()
        return taken

    def finish(self, end_ts: int) -> Spans:
        """Closes every span still open at `end_ts` (the end of the run) and returns the spans."""
        for lane, current in sorted(self._open.items()):
            self._close(lane, current, max(end_ts, current[1]))
        self._open.clear()
        return self.spans


def derive_spans(trace: Trace) -> Spans:
    """All of a finished trace's spans; spans still open at the end close at its last event."""
    builder = SpanBuilder()
    builder.feed(trace)
    return builder.finish(trace.duration_ns)


def lane_spans(spans: Spans, lane: int) -> list[int]:
    return list(spans.by_lane.get(lane, ()))


def arrow_endpoints(trace: Trace, seq: int) -> tuple[int, int, int]:
    """(ts, from_lane, to_lane) of a wake or switch arrow."""
    if trace.code[seq] == Code.WAKE:  # lane = woken, other = waker
        return trace.ts[seq], trace.other[seq], trace.lane[seq]
    return trace.ts[seq], trace.lane[seq], trace.other[seq]  # switch: origin -> target


__all__ = ["NO_LANE", "SpanBuilder", "Spans", "arrow_endpoints", "derive_spans", "lane_spans"]
