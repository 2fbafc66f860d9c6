"""Folds events into per-lane state spans and arrows: the one derivation every view shares.

`derive_spans(trace)` is the pure function; `SpanBuilder` is the same fold fed in slices, so a
live view extends what it has instead of refolding. Both give identical results.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from loopscope.tracer.events import FIRST_INSTANT, NO_LANE, Code
from loopscope.tracer.trace import Trace

# The fold works on this many events at a time: its numpy temporaries stay small (about
# 40 bytes an event), and a worker folding a big trace gives the GIL back between pieces.
FOLD_PIECE = 1 << 18
_WAKE, _SWITCH = int(Code.WAKE), int(Code.SWITCH)
_END, _ANNOTATE = int(Code.END), int(Code.ANNOTATE)


def column_rows(column: array[int], first: int = 0, stop: int | None = None,
                dtype: type[np.generic] = np.int64) -> npt.NDArray[Any]:
    """Rows first..stop of a trace's or spans' column as a numpy array of `dtype`, copied (a
    view would pin a growing column). Read through the buffer, not sliced: slicing an
    array.array keeps the GIL for the whole copy, which a worker thread must not do to the
    window on a column of ten million rows."""
    stop = len(column) if stop is None else min(stop, len(column))
    if stop <= first:
        return np.zeros(0, dtype=dtype)
    view = np.frombuffer(column, dtype=np.dtype(column.typecode), count=stop - first,
                         offset=first * column.itemsize)
    return view.astype(dtype)  # always a copy


def _extend(column: array[int], values: npt.NDArray[Any], dtype: type[np.generic]) -> None:
    column.frombytes(values.astype(dtype, copy=False).tobytes())


def _last_closing_per_group(closing: npt.NDArray[np.bool_], group_first: npt.NDArray[np.bool_]
                            ) -> npt.NDArray[np.intp]:
    """Per lane group (that has one), its last closing entry."""
    count = len(closing)
    group_last = np.ones(count, dtype=bool)
    group_last[:-1] = group_first[1:]
    entries = np.arange(count)
    latest = np.maximum.accumulate(np.where(closing, entries, -1))
    group_start = np.maximum.accumulate(np.where(group_first, entries, 0))
    ends = np.flatnonzero(group_last)
    chosen = latest[ends]
    return chosen[chosen >= group_start[ends]]


def _closer_of(opener: int, openers: npt.NDArray[np.int64], closers: npt.NDArray[np.intp],
               positions: npt.NDArray[np.intp]) -> int | None:
    """The position of the entry that closed the span `opener` opened, if one did."""
    found = np.flatnonzero(openers == opener)
    return int(positions[closers[found[0]]]) if len(found) else None


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
        """Folds the events from `fed` to `stop` (default: all there are). The work is done
        with numpy a piece of at most FOLD_PIECE events at a time, in whole-column steps
        that let go of the GIL, so a fold on a worker thread leaves the GUI thread free; only
        the lanes a piece touches and its ANNOTATE events cost a Python step each."""
        stop = len(trace) if stop is None else stop
        while self.fed < stop:
            piece_stop = min(stop, self.fed + FOLD_PIECE)
            self._feed_piece(trace, self.fed, piece_stop)
            self.fed = piece_stop
        self.fed = stop

    def _feed_piece(self, trace: Trace, first: int, stop: int) -> None:
        codes = column_rows(trace.code, first, stop, np.int8)
        arrows = np.flatnonzero((codes == _WAKE) | (codes == _SWITCH))
        if len(arrows):
            _extend(self.spans.arrow_seq, arrows + first, np.int32)
        # The events that act on their lane's span: a state opens one (closing the open one),
        # END closes it, ANNOTATE adds to its detail. Grouped by lane, in seq order within it.
        acting = np.flatnonzero((codes < FIRST_INSTANT) | (codes == _END) | (codes == _ANNOTATE))
        if not len(acting):
            return
        lanes_all = column_rows(trace.lane, first, stop, np.int32)
        positions = acting[np.argsort(lanes_all[acting], kind="stable")]
        lanes = lanes_all[positions]
        kinds = codes[positions]
        count = len(positions)
        entries = np.arange(count)
        group_first = np.ones(count, dtype=bool)
        group_first[1:] = lanes[1:] != lanes[:-1]
        group_start = np.maximum.accumulate(np.where(group_first, entries, 0))
        closing = kinds != _ANNOTATE  # a state or END: closes what is open
        opens = kinds < FIRST_INSTANT
        # the lane's closing entry just before each entry, -1 when there is none in this piece
        # (then the span that entry acts on is the one carried open from before)
        latest = np.maximum.accumulate(np.where(closing, entries, -1))
        before = np.full(count, -1, dtype=np.int64)
        before[1:] = latest[:-1]
        before[before < group_start] = -1

        details = trace.details
        detail_col = trace.detail
        open_spans = self._open
        merged_of: dict[int, dict[str, Any]] = {}  # an opening entry -> its merged detail
        annotating = np.flatnonzero(~closing)
        if len(annotating):  # rare: one Python step each, in seq order
            for entry in annotating[np.argsort(positions[annotating])].tolist():
                target = int(before[entry])
                addition = details[detail_col[first + int(positions[entry])]]
                if target < 0:
                    current = open_spans.get(int(lanes[entry]))
                    if current is not None:
                        if current[5] is None:
                            current[5] = dict(details[current[2]])
                        current[5].update(addition)
                elif opens[target]:
                    merged = merged_of.get(target)
                    if merged is None:
                        merged = merged_of[target] = dict(
                            details[detail_col[first + int(positions[target])]])
                    merged.update(addition)

        ts = column_rows(trace.ts, first, stop, np.int64)
        sources = column_rows(trace.source, first, stop, np.int32)
        detail_ids = column_rows(detail_col, first, stop, np.int32)
        # spans opened and closed within this piece
        inner = np.flatnonzero(closing & (before >= 0))
        inner = inner[opens[before[inner]]]
        inner_openers = before[inner]
        closer_at = [positions[inner]]
        opener_at = positions[inner_openers]
        state = [codes[opener_at]]
        begun = [ts[opener_at]]
        detail = [detail_ids[opener_at]]
        source = [sources[opener_at]]
        start_seq = [opener_at.astype(np.int64) + first]
        # spans carried open from before, closed by their lane's first closing entry here;
        # and what each touched lane leaves open at the end of the piece
        carried_merged: list[tuple[int, dict[str, Any]]] = []  # (closer position, merged)
        carried = []
        firsts = np.flatnonzero(closing & (before < 0))
        pop = open_spans.pop
        for at, lane in zip(positions[firsts].tolist(), lanes[firsts].tolist(), strict=True):
            current = pop(lane, None)
            if current is not None:
                carried.append((at, current))
        lasts = _last_closing_per_group(closing, group_first)
        ending = ~opens[lasts]
        for lane in lanes[lasts[ending]].tolist():
            pop(lane, None)  # ended (a carried span was popped above)
        lasts = lasts[~ending]
        at = positions[lasts]
        merged_get = merged_of.get
        for lane, *begins, entry in zip(
                lanes[lasts].tolist(), kinds[lasts].tolist(), ts[at].tolist(),
                detail_ids[at].tolist(), sources[at].tolist(), (at + first).tolist(),
                lasts.tolist(), strict=True):
            begins.append(merged_get(entry))
            open_spans[lane] = begins
        if carried:
            closer_at.append(np.array([at for at, _ in carried], dtype=np.int64))
            state.append(np.array([cur[0] for _, cur in carried], dtype=np.int8))
            begun.append(np.array([cur[1] for _, cur in carried], dtype=np.int64))
            detail.append(np.array([cur[2] for _, cur in carried], dtype=np.int32))
            source.append(np.array([cur[3] for _, cur in carried], dtype=np.int32))
            start_seq.append(np.array([cur[4] for _, cur in carried], dtype=np.int64))
            carried_merged = [(at, cur[5]) for at, cur in carried if cur[5] is not None]
        closers = np.concatenate(closer_at)
        if not len(closers):
            return
        # spans are numbered in the order they closed: by the seq of what closed them
        order = np.argsort(closers, kind="stable")
        closers = closers[order]
        spans = self.spans
        base = len(spans.start)
        span_lanes = lanes_all[closers]
        _extend(spans.lane, span_lanes, np.int32)
        _extend(spans.state, np.concatenate(state)[order], np.int8)
        _extend(spans.start, np.concatenate(begun)[order], np.int64)
        _extend(spans.end, ts[closers], np.int64)
        _extend(spans.detail, np.concatenate(detail)[order], np.int32)
        _extend(spans.source, np.concatenate(source)[order], np.int32)
        _extend(spans.start_seq, np.concatenate(start_seq)[order], np.int32)
        if merged_of or carried_merged:
            index_of = {int(at): base + rank for rank, at in enumerate(closers.tolist())}
            for entry, merged in merged_of.items():
                # an opening entry's span, if this piece closed it (else it is still open)
                closer = _closer_of(entry, inner_openers, inner, positions)
                if closer is not None:
                    spans.annotated[index_of[closer]] = merged
            for at, merged in carried_merged:
                spans.annotated[index_of[at]] = merged
        # each lane's new span numbers, appended to its list: one Python step per lane
        by_lane = spans.by_lane
        lane_order = np.argsort(span_lanes, kind="stable")
        grouped = span_lanes[lane_order]
        cuts = np.flatnonzero(grouped[1:] != grouped[:-1]) + 1
        numbers = memoryview((lane_order + base).astype(np.int32).tobytes())
        size = np.dtype(np.int32).itemsize
        bounds = np.concatenate(([0], cuts, [len(grouped)])) * size
        for lane, low, high in zip(grouped[bounds[:-1] // size].tolist(), bounds[:-1].tolist(),
                                   bounds[1:].tolist(), strict=True):
            per_lane = by_lane.get(lane)
            if per_lane is None:
                per_lane = by_lane[lane] = array("i")
            per_lane.frombytes(numbers[low:high])

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


__all__ = ["NO_LANE", "SpanBuilder", "Spans", "arrow_endpoints", "column_rows", "derive_spans",
           "lane_spans"]
