"""Timeline geometry: a pure function from (trace, spans, viewport) to drawing primitives.

No Qt here. The widget, the PNG/SVG/PDF exports and the tests take their geometry from
`layout`; one paint routine (ui.paint) draws it, so every output looks the same.

Level of detail: a span at least one pixel wide gets its own rectangle with exact float
edges. Pixel columns that contain a narrower span are merged: each such column shows one
representative state (the highest in `STATES_BY_RANK`, so running wins) and runs of equal
columns become one rectangle with span index -1. Per-lane numpy columns with per-state
running counts (`SpanIndex`) make a frame cost O(visible pixels + visible spans).
"""

from __future__ import annotations

import math
import weakref
from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import accumulate
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.ma  # np.unique imports it on first use: 15-20 ms inside the first live frame
import numpy.typing as npt

from loopscope.tracer.events import MARKERS, STATE_NAMES, STATES_BY_MERGE_RANK, Code, end_marker
from loopscope.tracer.held_time import HELD_CUT_NS
from loopscope.tracer.query import lane_order
from loopscope.tracer.spans import SpanBuilder, Spans
from loopscope.tracer.trace import Trace
from loopscope.ui.trace_notes import (
    TraceNotes,
    lane_tag,
    span_poll_texts,
    span_text,
    trace_notes,
)

_POLL = int(Code.POLL)  # a plain int: an enum member costs a lookup per use in a loop
# A merged run of sub-pixel spans, and a span still in progress in a live trace.
MERGED_SPAN = -1
OPEN_SPAN = -2

# Which state a merged pixel column shows: the last one present in this list.
STATES_BY_RANK: tuple[int, ...] = STATES_BY_MERGE_RANK
# The legend's order: a lane's states first, then the loop lane's (the codes' own order).
LEGEND_STATE_ORDER: tuple[int, ...] = tuple(STATE_NAMES)
_RANK_OF_STATE = np.zeros(16, dtype=np.int8)
for _rank, _state in enumerate(STATES_BY_RANK):
    _RANK_OF_STATE[_state] = _rank
_STATE_OF_RANK = np.array(STATES_BY_RANK, dtype=np.int8)
_RANKS = len(STATES_BY_RANK)
# The running counts keep a slot a rank and one spare, eight in all: a column's ranks that
# are present, as eight 0/1 bytes, then read as one 64-bit word.
_RANK_SLOTS = 8
assert _RANKS < _RANK_SLOTS
_EVERY_RANK = np.arange(_RANKS, dtype=np.int8)
# Multiplying such a word by this gathers its bytes' low bits into the top byte, byte r
# giving bit 7 - r (the bytes' sums never carry, each being 0 or 1).
_GATHER_BYTES = np.uint64(0x8040201008040201)


def _top_state_of(top_byte: int) -> int:
    """The state of the highest rank present in such a top byte; -1 for none."""
    present = [rank for rank in range(_RANKS) if top_byte >> (7 - rank) & 1]
    return int(_STATE_OF_RANK[max(present)]) if present else -1


_TOP_STATE_OF_RANKS = np.array([_top_state_of(bits) for bits in range(256)], dtype=np.int8)
# Spans counted in one piece when the index grows: bounds how long one numpy call holds the
# GIL while a big trace is opened on a worker thread.
_COUNTED_AT_ONCE = 1 << 18

ARROW_KINDS = ("wake", "switch")
# The markers' kinds (tracer.events.MARKERS); an instant's first row is its usual marker, and
# an END's kind is then chosen by how the lane ended (events.end_marker).
MARKER_KINDS: tuple[str, ...] = tuple(info.kind for info in MARKERS)
_MARKER_KIND_OF_CODE: dict[int, int] = {}
for _kind, _info in enumerate(MARKERS):
    _MARKER_KIND_OF_CODE.setdefault(_info.code, _kind)
_MARKER_LEGEND = {info.kind: info.legend for info in MARKERS}
# Rows that stand for something other than one lane: the folded library lanes, and the
# lanes an image had no room for.
GROUP_LANE = -3
MORE_LANES = -4
GROUP_KIND = "group"
MORE_KIND = "more"
# Words go inside a span at least this wide, and beside at most this many arrows.
MIN_LABELLED_SPAN_PX = 34.0
MAX_SPAN_TEXTS = 160
MIN_TEXT_BAND_PX = 12.0  # a band thinner than this cannot hold a line of small text
MAX_ARROW_TEXTS = 120
# Arrows within the same this-many pixels (same lanes, same kind) draw as one, with a count.
ARROW_BUNDLE_PX = 12.0
# How wide the break is drawn where held time was cut out of a trace.
BREAK_PX = 9.0

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class LayoutWork:
    """How many span entries the layouts have read (a count of work, for the tests that check
    a frame reads what is on screen, not the whole lane)."""

    spans_read = 0


LAYOUT_WORK = LayoutWork()


# -- the viewport: what part of the run is shown, and where ------------------------------------


@dataclass(frozen=True)
class Viewport:
    """A time range drawn into a pixel area, with the sizes of the fixed parts around it."""

    start_ns: float
    end_ns: float
    width: int
    height: int
    lane_height: float = 24.0
    label_width: float = 168.0
    header_height: float = 0.0  # title area (exports); 0 on screen
    axis_height: float = 28.0
    legend_height: float = 28.0
    scroll_y: float = 0.0  # pixels of lane rows scrolled off the top
    selected_span: int = -1
    cursor_ns: float | None = None  # the stepping cursor's time, when there is one
    title: str = ""
    subtitle: str = ""
    max_arrows: int = 3000
    max_markers: int = 5000
    row_padding: float = 3.0  # gap between a lane row's edge and its state rectangles
    time_origin_ns: float = 0.0  # the time the axis calls 0 (the program's first event)
    folded_lanes: frozenset[int] = frozenset()  # drawn together on one group row at the end
    folded_name: str = "library lanes"
    texts: bool = True  # words inside wide spans and beside arrows
    char_px: float = 7.0  # an average character's width, where no text_width is given
    # The small text's measure (ui.paint.text_measure): each word's width in pixels, and
    # the height of a line. Words are placed by their real size, so that none is drawn over
    # another or over a bar; without a measure, char_px a character is the estimate.
    text_width: Callable[[str], float] | None = field(default=None, compare=False)
    text_height: float = 13.0
    now_ns: float | None = None  # the live edge, when it has moved past the last event
    # An image cannot scroll: when the lanes do not all fit, the last row says how many
    # more there are.
    overflow_row: bool = False
    lane_names: bool = True  # the names column's words (an overview strip leaves them out)

    def width_of(self, text: str) -> float:
        """How wide the small text draws `text`."""
        return self.text_width(text) if self.text_width is not None else len(text) * self.char_px

    @property
    def ns_per_px(self) -> float:
        return (self.end_ns - self.start_ns) / max(self.plot_width, 1.0)

    @property
    def plot_width(self) -> float:
        return max(self.width - self.label_width, 1.0)

    @property
    def lanes_top(self) -> float:
        return self.header_height + self.axis_height

    @property
    def lanes_bottom(self) -> float:
        return self.height - self.legend_height


# -- primitives -------------------------------------------------------------------------------


class Box(NamedTuple):
    x: float
    y: float
    w: float
    h: float

    def contains(self, x: float, y: float) -> bool:
        return self.x <= x < self.x + self.w and self.y <= y < self.y + self.h


class LaneRow(NamedTuple):
    lane: int
    name: str
    kind: str
    row: int  # position in the lane order
    y: float
    height: float
    tag: str = ""  # the word beside the name (the lane's fd, or its kind)


@dataclass(frozen=True)
class Rects:
    """State rectangles in columns; `span` is the span index, MERGED_SPAN or OPEN_SPAN."""

    x: FloatArray
    y: FloatArray
    w: FloatArray
    h: FloatArray
    state: npt.NDArray[np.int8]
    span: IntArray
    lane: IntArray

    def __len__(self) -> int:
        return len(self.x)

    @staticmethod
    def empty() -> Rects:
        f = np.empty(0, dtype=np.float64)
        i = np.empty(0, dtype=np.int64)
        return Rects(f, f, f, f, np.empty(0, dtype=np.int8), i, i)

    @staticmethod
    def concat(parts: Sequence[Rects]) -> Rects:
        if not parts:
            return Rects.empty()
        return Rects(
            *(np.concatenate([getattr(p, name) for p in parts]) for name in _RECT_COLUMNS)
        )


_RECT_COLUMNS = ("x", "y", "w", "h", "state", "span", "lane")


class Arrow(NamedTuple):
    x: float
    y0: float  # at the lane that acted (waker, switch origin)
    y1: float  # at the lane acted upon (woken, switch target); the head goes here
    kind: str  # "wake" or "switch"
    seq: int
    from_lane: int
    to_lane: int
    bundled: int = 1  # arrows drawn as this one (close together, same lanes and kind)


class TextLabel(NamedTuple):
    """Words drawn in a box: inside a span (on its colour) or beside an arrow."""

    x: float
    y: float
    w: float
    h: float
    text: str
    # "span", "arrow", "note" (a poll's finding, reaching past its span), "pause" (a held
    # stretch), "break" (where held time was cut out)
    kind: str
    state: int = -1  # the span's state, for a readable text colour
    seq: int = -1  # the arrow's event


class Marker(NamedTuple):
    x: float
    y: float  # top of the lane row
    height: float
    kind: str  # "output", "end" or "mark"
    seq: int
    lane: int


class Tick(NamedTuple):
    x: float
    ns: int
    label: str


class LegendEntry(NamedTuple):
    kind: str  # "state", "arrow" or "marker"
    code: int  # the state code, or the index into ARROW_KINDS / MARKER_KINDS
    label: str


class Hit(NamedTuple):
    rect: int
    lane: int
    state: int
    span: int


@dataclass(frozen=True)
class Primitives:
    """Everything one frame draws, in pixels; theme-independent."""

    viewport: Viewport
    header: Box
    axis: Box
    labels: Box
    plot: Box
    legend_box: Box
    lanes: list[LaneRow]  # the visible rows only
    lane_count: int
    content_height: float  # all rows, for a scroll bar
    rects: Rects  # exact spans (span >= 0) and open spans first, merged runs last
    merged_from: int  # rects[merged_from:] are the merged runs
    # The same merged columns as a grid (visible row x plot pixel): state code or -1, so a
    # painter can blit them as an image when there are too many runs to draw one by one.
    strips: npt.NDArray[np.int8]
    strip_rows: list[LaneRow]
    arrows: list[Arrow]
    arrows_hidden: int  # arrows in range left out because there were too many to read
    markers: list[Marker]
    ticks: list[Tick]
    axis_note: str  # e.g. "2.000 s +" when tick labels are offsets from a base time
    legend: list[LegendEntry]
    title: str
    subtitle: str
    highlight: Box | None  # the selected span, at least a pixel wide
    now_x: float | None  # the live edge, when a live trace's end is in view
    message: str  # shown when there is nothing to draw
    cursor_x: float | None = None  # the stepping cursor, when it is in view
    # Each visible lane's state at the cursor (lanes not yet spawned or already ended have
    # none), so the labels column can name what every lane is doing at that instant.
    cursor_states: dict[int, int] = field(default_factory=dict)
    texts: list[TextLabel] = field(default_factory=list)
    # Stretches a learner held the run while its clock went on (gevent, select): drawn as a
    # hatched band over every lane, saying how long, so the spans across them are not read
    # as the program's own time.
    pauses: list[TextLabel] = field(default_factory=list)
    lanes_not_shown: int = 0  # lanes an image had no room for (told on the last row)

    def x_of(self, ns: float) -> float:
        vp = self.viewport
        return self.plot.x + (ns - vp.start_ns) / vp.ns_per_px

    def ns_at(self, x: float) -> float:
        vp = self.viewport
        return vp.start_ns + (x - self.plot.x) * vp.ns_per_px

    def row_at(self, y: float) -> LaneRow | None:
        for row in self.lanes:
            if row.y <= y < row.y + row.height:
                return row
        return None


def state_band(row: LaneRow, viewport: Viewport) -> tuple[float, float]:
    """(y, height) of the state rectangles inside a lane row."""
    pad = min(viewport.row_padding, row.height / 4)
    return row.y + pad, row.height - 2 * pad


# -- the span index: per-lane numpy columns, grown as the spans grow ----------------------------


class _Growable:
    """A numpy column that grows by doubling, so appending a live batch is amortised O(batch)."""

    def __init__(self, dtype: type[np.generic], width: int = 0) -> None:
        self.width = width
        shape: tuple[int, ...] = (16, width) if width else (16,)
        self.data: np.ndarray = np.zeros(shape, dtype=dtype)
        self.size = 0

    def reserve(self, size: int) -> None:
        if size <= len(self.data):
            return
        capacity = max(size, 2 * len(self.data))
        shape: tuple[int, ...] = (capacity, self.width) if self.width else (capacity,)
        grown = np.zeros(shape, dtype=self.data.dtype)
        grown[: self.size] = self.data[: self.size]
        self.data = grown

    def extend(self, values: np.ndarray) -> None:
        self.reserve(self.size + len(values))
        self.data[self.size : self.size + len(values)] = values
        self.size += len(values)

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.size]


class _LaneColumns:
    """One lane's closed spans in time order, with running counts of each state's rank."""

    def __init__(self) -> None:
        self.index = _Growable(np.int64)
        self.start = _Growable(np.int64)
        self.end = _Growable(np.int64)
        self.state = _Growable(np.int8)
        self.duration = _Growable(np.int64)
        # ranked.view[i, r] = how many of the first i spans have rank r: a frame reads every
        # rank's count at a column edge in one gather.
        self.ranked = _Growable(np.int32, _RANK_SLOTS)
        self.ranked.extend(np.zeros((1, _RANK_SLOTS), dtype=np.int32))
        # The level of detail: maxima[k].view[b] is the longest duration among spans
        # [b * 2**(k+1), (b+1) * 2**(k+1)), so a frame finds the spans wide enough for their
        # own rectangle without reading every span in view.
        self.maxima: list[_Growable] = []

    def __len__(self) -> int:
        return self.index.size

    def extend(self, index: IntArray, start: IntArray, end: IntArray, state: np.ndarray) -> None:
        self.index.extend(index)
        self.start.extend(start)
        self.end.extend(end)
        self.state.extend(state)
        self.duration.extend(end - start)
        rank = _RANK_OF_STATE[state]
        ranked = self.ranked
        ranked.reserve(ranked.size + len(rank))
        for first in range(0, len(rank), _COUNTED_AT_ONCE):
            piece = rank[first:first + _COUNTED_AT_ONCE]
            # Counted a rank at a time, along contiguous rows (a running sum down the
            # columns of a span-major array is several times slower), then turned round.
            running = np.cumsum(piece == _EVERY_RANK[:, None], axis=1, dtype=np.int32)
            running += ranked.data[ranked.size - 1, :_RANKS, None]
            ranked.data[ranked.size:ranked.size + len(piece), :_RANKS] = running.T
            ranked.size += len(piece)
        self._update_maxima(len(self) - len(index))

    def _update_maxima(self, changed: int) -> None:
        """Brings the duration maxima up to date from span `changed` on: at each level only
        the blocks over new spans are computed again, so a live batch costs O(batch)."""
        below = self.duration.view
        for level in self.maxima:
            changed //= 2
            pairs = below[2 * changed:]
            if len(pairs) % 2:
                pairs = np.append(pairs, -1)
            level.size = changed
            level.extend(np.maximum(pairs[0::2], pairs[1::2]))
            below = level.view
        while len(below) > 1:
            level = _Growable(np.int64)
            pairs = below if len(below) % 2 == 0 else np.append(below, -1)
            level.extend(np.maximum(pairs[0::2], pairs[1::2]))
            self.maxima.append(level)
            below = level.view

    def wide_spans(self, first: int, stop: int, at_least: int, blocks: int) -> IntArray:
        """The positions in [first, stop) of the spans lasting at least `at_least` ns, in
        order, found by descending the duration maxima from a level where about `blocks`
        blocks cover the range: O((blocks + found) * levels), not O(stop - first)."""
        if stop <= first:
            return np.empty(0, dtype=np.int64)
        # A look from near the top first: in a view of many short spans none is wide, and a
        # handful of blocks there say so for the whole range.
        coarse = min(len(self.maxima), (stop - first).bit_length() - 3)
        if coarse > 0 and (stop - first) >> coarse < blocks:
            top = self.maxima[coarse - 1].view[first >> coarse: ((stop - 1) >> coarse) + 1]
            LAYOUT_WORK.spans_read += len(top)
            if top.max() < at_least:
                return np.empty(0, dtype=np.int64)
        level = 0
        while level < len(self.maxima) and (stop - first) >> (level + 1) >= blocks:
            level += 1
        last = stop - 1
        candidates = np.arange(first >> level, (last >> level) + 1, dtype=np.int64)
        while True:
            maxima = self.maxima[level - 1].view if level else self.duration.view
            LAYOUT_WORK.spans_read += len(candidates)
            candidates = candidates[maxima[candidates] >= at_least]
            if level == 0:
                return candidates
            level -= 1
            children = np.empty(2 * len(candidates), dtype=np.int64)
            children[0::2] = 2 * candidates
            children[1::2] = children[0::2] + 1
            low, high = first >> level, last >> level
            candidates = children[(children >= low) & (children <= high)]


def _gather(values: Sequence[int], dtype: type[np.generic], where: np.ndarray) -> np.ndarray:
    """values[where] as numpy: a copy, not a view, because an `array` cannot grow while a
    buffer export is alive, and a live trace keeps growing."""
    if len(where) == 0:
        return np.empty(0, dtype=dtype)
    view = np.frombuffer(values, dtype=dtype)  # type: ignore[call-overload]
    taken: np.ndarray = view[where]  # fancy indexing copies
    del view
    return taken


class SpanIndex:
    """What a frame needs from a trace and its spans, in numpy, kept up to date incrementally."""

    def __init__(self) -> None:
        self.lanes: dict[int, _LaneColumns] = {}
        self.states_seen: set[int] = set()
        self.arrow_ts = _Growable(np.int64)
        self.arrow_from = _Growable(np.int64)
        self.arrow_to = _Growable(np.int64)
        self.arrow_kind = _Growable(np.int8)  # index into ARROW_KINDS
        self.arrow_seq = _Growable(np.int64)
        self.marker_ts = _Growable(np.int64)
        self.marker_lane = _Growable(np.int64)
        self.marker_kind = _Growable(np.int8)  # index into MARKER_KINDS
        self.marker_seq = _Growable(np.int64)
        self.arrow_kinds_seen: set[int] = set()
        self.marker_kinds_seen: set[int] = set()
        self._events_scanned = 0
        # The sizes last taken in: a frame of a trace that has not grown (every frame of an
        # opened one) skips the walk over all its lanes, which a view of a few would pay.
        self._sizes = (0, 0, 0)
        # The rows top to bottom, kept by the layout (_rows) with the sizes they are for.
        self.rows: tuple[tuple[object, ...],
                         tuple[list[tuple[int, str, str, str]], list[int], IntArray]] | None = None

    def update(self, trace: Trace, spans: Spans) -> None:
        sizes = (len(trace), len(spans), len(spans.arrow_seq))
        if sizes == self._sizes:
            return  # spans, arrows and events only ever grow
        self._update_lanes(spans)
        self._update_arrows(trace, spans)
        self._update_markers(trace)
        self._sizes = sizes

    def _update_lanes(self, spans: Spans) -> None:
        fresh: list[tuple[_LaneColumns, IntArray]] = []
        for lane, indices in spans.by_lane.items():
            columns = self.lanes.get(lane)
            if columns is None:
                columns = self.lanes[lane] = _LaneColumns()
            if len(indices) > len(columns):
                new = _gather(indices, np.int32, np.arange(len(columns), len(indices)))
                fresh.append((columns, new.astype(np.int64)))
        if not fresh:
            return
        everything = np.concatenate([new for _, new in fresh])
        start = _gather(spans.start, np.int64, everything)
        end = _gather(spans.end, np.int64, everything)
        state = _gather(spans.state, np.int8, everything)
        self.states_seen.update(int(s) for s in np.unique(state))
        offset = 0
        for columns, new in fresh:
            part = slice(offset, offset + len(new))
            columns.extend(new, start[part], end[part], state[part])
            offset += len(new)

    def _update_arrows(self, trace: Trace, spans: Spans) -> None:
        done = self.arrow_seq.size
        if len(spans.arrow_seq) <= done:
            return
        seq = _gather(spans.arrow_seq, np.int32, np.arange(done, len(spans.arrow_seq)))
        seq = seq.astype(np.int64)
        lane = _gather(trace.lane, np.int32, seq).astype(np.int64)
        other = _gather(trace.other, np.int32, seq).astype(np.int64)
        is_wake = _gather(trace.code, np.int8, seq) == Code.WAKE
        self.arrow_ts.extend(_gather(trace.ts, np.int64, seq))
        # A wake is drawn from the waker (other) to the woken lane; a switch from its origin.
        self.arrow_from.extend(np.where(is_wake, other, lane))
        self.arrow_to.extend(np.where(is_wake, lane, other))
        self.arrow_kind.extend(np.where(is_wake, 0, 1).astype(np.int8))
        self.arrow_seq.extend(seq)
        self.arrow_kinds_seen.update(np.unique(np.where(is_wake, 0, 1)).tolist())

    def _update_markers(self, trace: Trace) -> None:
        start, stop = self._events_scanned, len(trace)
        if stop <= start:
            return
        codes = _gather(trace.code, np.int8, np.arange(start, stop))
        kind = np.full(len(codes), -1, dtype=np.int8)
        for code, marker_kind in _MARKER_KIND_OF_CODE.items():
            kind[codes == code] = marker_kind
        found = np.nonzero(kind >= 0)[0]
        seq = found.astype(np.int64) + start
        for at in np.nonzero(kind[found] == _MARKER_KIND_OF_CODE[Code.END])[0].tolist():
            ended = end_marker(trace.details[trace.detail[int(seq[at])]])
            kind[found[at]] = MARKER_KINDS.index(ended)
        self.marker_ts.extend(_gather(trace.ts, np.int64, seq))
        self.marker_lane.extend(_gather(trace.lane, np.int32, seq).astype(np.int64))
        self.marker_kind.extend(kind[found])
        self.marker_seq.extend(seq)
        self.marker_kinds_seen.update(np.unique(kind[found]).tolist())
        self._events_scanned = stop


_index_cache: dict[tuple[int, int], tuple[weakref.ref[Trace], weakref.ref[Spans], SpanIndex]] = {}


def span_index(trace: Trace, spans: Spans) -> SpanIndex:
    """The index of these spans, cached per (trace, spans) pair and brought up to date."""
    key = (id(trace), id(spans))
    cached = _index_cache.get(key)
    if cached is None or cached[0]() is not trace or cached[1]() is not spans:
        for stale in [k for k, (t, s, _) in _index_cache.items() if t() is None or s() is None]:
            del _index_cache[stale]
        cached = (weakref.ref(trace), weakref.ref(spans), SpanIndex())
        _index_cache[key] = cached
    index = cached[2]
    index.update(trace, spans)
    return index


# -- lane order, time axis, number formatting ---------------------------------------------------


_UNITS: tuple[tuple[int, str], ...] = ((1_000_000_000, "s"), (1_000_000, "ms"), (1_000, "µs"))


def _unit_for(magnitude_ns: float) -> tuple[int, str]:
    for factor, name in _UNITS:
        if magnitude_ns >= factor:
            return factor, name
    return 1, "ns"


def format_ns(ns: float) -> str:
    """A duration or time with three significant digits in the unit that suits it: 12.3 ms."""
    factor, unit = _unit_for(abs(ns))
    value = ns / factor
    if factor == 1:
        if round(abs(ns)) >= 1000:  # 999.6 ns reads as 1.00 µs, not "1000 ns"
            return format_ns(math.copysign(1000, ns))
        return f"{ns:.0f} ns"
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    if round(abs(value), digits) >= 1000 and factor < 1_000_000_000:
        return format_ns(math.copysign(1000 * factor, ns))  # a whole unit up, not "1000 µs"
    return f"{value:.{digits}f} {unit}"


def nice_step(raw_ns: float) -> int:
    """The smallest 1, 2 or 5 times a power of ten (in whole ns) at least `raw_ns`."""
    if raw_ns <= 1:
        return 1
    power = 10 ** math.floor(math.log10(raw_ns))
    for multiple in (1, 2, 5, 10):
        if raw_ns <= multiple * power:
            return int(multiple * power)
    return int(10 * power)  # unreachable: raw_ns / power < 10


def _tick_label(value_ns: int, step_ns: int, magnitude_ns: float) -> str:
    factor, unit = _unit_for(magnitude_ns)
    if value_ns == 0:
        return f"0 {unit}"
    decimals = max(0, math.ceil(-math.log10(step_ns / factor) - 1e-9))
    return f"{value_ns / factor:.{decimals}f} {unit}"


def time_ticks(
    start_ns: float, end_ns: float, plot_x: float, plot_width: float, spacing_px: float = 110.0,
    *, origin_ns: float = 0.0,
) -> tuple[list[Tick], str]:
    """Ticks about `spacing_px` apart at 1-2-5 steps, and a base note when labels are offsets.
    Labels count from `origin_ns` (the axis's zero); each tick's `ns` is the trace's time."""
    origin = math.floor(origin_ns)
    if origin:
        ticks, note = _time_ticks(start_ns - origin, end_ns - origin, plot_x, plot_width,
                                  spacing_px)
        return [tick._replace(ns=tick.ns + origin) for tick in ticks], note
    return _time_ticks(start_ns, end_ns, plot_x, plot_width, spacing_px)


def _time_ticks(
    start_ns: float, end_ns: float, plot_x: float, plot_width: float, spacing_px: float
) -> tuple[list[Tick], str]:
    span = end_ns - start_ns
    if span <= 0 or plot_width <= 0:
        return [], ""
    step = nice_step(span * spacing_px / plot_width)
    first = math.ceil(start_ns / step) * step
    values = range(first, math.floor(end_ns) + 1, step)
    scale = plot_width / span
    magnitude = max(abs(start_ns), abs(end_ns), step)
    factor, _ = _unit_for(magnitude)
    decimals = max(0, math.ceil(-math.log10(step / factor) - 1e-9))
    if decimals <= 3:
        ticks = [
            Tick(plot_x + (v - start_ns) * scale, v, _tick_label(v, step, magnitude))
            for v in values
        ]
        return ticks, ""
    # Deep zoom far from the start: "2.000000150 s" is unreadable, so label offsets from a
    # round base time shown once beside the axis.
    base = (int(start_ns) // (step * 10)) * (step * 10)
    offset_magnitude = max(abs(end_ns - base), step)
    ticks = [
        Tick(
            plot_x + (v - start_ns) * scale,
            v,
            "+" + _tick_label(v - base, step, offset_magnitude),
        )
        for v in values
    ]
    base_factor, base_unit = _unit_for(max(abs(base), 1))
    base_decimals = max(0, math.ceil(math.log10(base_factor / (step * 10)) - 1e-9))
    return ticks, f"{base / base_factor:.{base_decimals}f} {base_unit}"


# -- the layout -------------------------------------------------------------------------------


@dataclass
class _Frame:
    """Per-frame constants shared by the per-lane work."""

    vp: Viewport
    plot: Box
    t0: float
    t1: float
    # The range in whole ns, for searching int64 columns: a float needle would make numpy
    # convert the whole column to float first.
    first_ns: int
    last_ns: int
    ns_per_px: float
    columns: int
    edges: IntArray  # column k covers [edges[k], edges[k+1]) in ns
    rects: list[Rects] = field(default_factory=list)
    # Merged runs, each with its row's number: laid out in more than one pass, they are put
    # back in row order (each pass makes them in row order, so a stable sort merges them).
    merged: list[tuple[IntArray, Rects]] = field(default_factory=list)


def layout(
    trace: Trace, spans: Spans | SpanBuilder, viewport: Viewport, *, index: SpanIndex | None = None
) -> Primitives:
    """The frame's primitives. `spans` may be a live SpanBuilder: its open spans are drawn up
    to the trace's last timestamp ("now")."""
    builder = spans if isinstance(spans, SpanBuilder) else None
    closed = builder.spans if builder is not None else spans
    assert isinstance(closed, Spans)
    if index is None:
        index = span_index(trace, closed)
    vp = viewport
    header = Box(0.0, 0.0, float(vp.width), vp.header_height)
    axis = Box(vp.label_width, vp.header_height, vp.plot_width, vp.axis_height)
    lanes_h = max(vp.lanes_bottom - vp.lanes_top, 0.0)
    labels = Box(0.0, vp.lanes_top, vp.label_width, lanes_h)
    plot = Box(vp.label_width, vp.lanes_top, vp.plot_width, lanes_h)
    legend_box = Box(0.0, vp.lanes_bottom, float(vp.width), vp.legend_height)

    notes = trace_notes(trace)
    order, folded_order, row_numbers = _rows(index, trace, closed, vp, notes)
    scroll_limit = None
    not_shown = 0
    if vp.overflow_row and len(order) * vp.lane_height > lanes_h:
        fits = max(int(lanes_h // vp.lane_height), 1)
        not_shown = len(order) - (fits - 1)
        hidden_lanes = {lane for lane, _, _, _ in order[fits - 1:] if lane >= 0}
        more = (MORE_LANES, f"+ {not_shown:,} more lanes", MORE_KIND, "")
        order = [*order[: fits - 1], more]
        folded_order = [lane for lane in folded_order if lane not in hidden_lanes]
        row_numbers = _row_numbers(order, folded_order)
        scroll_limit = 0.0
    content_height = len(order) * vp.lane_height
    scroll = min(max(vp.scroll_y, 0.0), max(content_height - lanes_h, 0.0))
    if scroll_limit is not None:
        scroll = scroll_limit
    places = _RowPlaces(row_numbers, vp.lanes_top, vp.lane_height, scroll)
    visible = []
    # Only the rows near the plot are looked at: a frame costs the rows on screen, not all
    # of a trace's lanes.
    for i in places.near(plot, len(order)):
        y = places.y_of(i)
        if y + vp.lane_height > plot.y and y < plot.y + plot.h:
            lane, name, kind, tag = order[i]
            visible.append(LaneRow(lane, name, kind, i, y, vp.lane_height, tag))
    # Folded lanes draw on their group's row: their spans, and the ends of their arrows.
    group = next((row for row in visible if row.lane == GROUP_LANE), None)
    drawn = [row for row in visible if row.lane >= 0]
    if group is not None:
        drawn += [group._replace(lane=lane) for lane in folded_order]

    ticks, axis_note = time_ticks(vp.start_ns, vp.end_ns, plot.x, plot.w,
                                  origin_ns=vp.time_origin_ns)
    columns = int(plot.w)
    ns_per_px = vp.ns_per_px
    # Column edges in whole ns; below 1 ns a pixel there is nothing to merge.
    edge_ns = vp.start_ns + np.arange(columns + 1, dtype=np.float64) * ns_per_px
    frame = _Frame(vp, plot, vp.start_ns, vp.end_ns, math.floor(vp.start_ns),
                   math.ceil(vp.end_ns), ns_per_px, columns, np.floor(edge_ns).astype(np.int64))
    strips = np.full((len(drawn), columns), -1, dtype=np.int8)
    _lay_out_lanes(frame, drawn, index, strips)

    now_ns = trace.duration_ns
    if vp.now_ns is not None:
        now_ns = max(now_ns, math.floor(vp.now_ns))
    open_states: set[int] = set()
    if builder is not None:
        open_rects = _open_span_rects(frame, builder, drawn, now_ns)
        open_states = {int(s) for s in open_rects.state}
        frame.rects.append(open_rects)

    exact = Rects.concat(frame.rects)
    rects = Rects.concat([exact, _in_row_order(frame.merged)])
    arrows, arrows_hidden = _arrows(frame, index, places)
    markers = _markers(frame, index, {row.lane: row for row in drawn})
    legend = _legend(index.states_seen | open_states, index)
    highlight = _highlight(frame, closed, places, vp.selected_span)
    now_x = None
    if builder is not None and vp.start_ns <= now_ns <= vp.end_ns:
        now_x = plot.x + (now_ns - vp.start_ns) / ns_per_px
    message = "" if order else "No events yet"
    texts: list[TextLabel] = []
    if vp.texts:
        texts = _span_texts(frame, trace, closed, exact, notes)
        texts += _arrow_texts(frame, trace, arrows, notes,
                              lambda: _Occupied(frame, places, rects, markers, len(order), texts))
    cursor_x = None
    cursor_states: dict[int, int] = {}
    if vp.cursor_ns is not None:
        cursor_states = states_at(index, builder, [row.lane for row in visible if row.lane >= 0],
                                  vp.cursor_ns)
        if vp.start_ns <= vp.cursor_ns <= vp.end_ns:
            cursor_x = plot.x + (vp.cursor_ns - vp.start_ns) / ns_per_px
    return Primitives(
        viewport=vp, header=header, axis=axis, labels=labels, plot=plot, legend_box=legend_box,
        lanes=visible, lane_count=len(order), content_height=content_height, rects=rects,
        merged_from=len(exact), strips=strips, strip_rows=drawn, arrows=arrows,
        arrows_hidden=arrows_hidden, markers=markers, ticks=ticks, axis_note=axis_note,
        legend=legend, title=vp.title, subtitle=vp.subtitle, highlight=highlight, now_x=now_x,
        message=message, cursor_x=cursor_x, cursor_states=cursor_states, texts=texts,
        pauses=_pauses(frame, trace, index), lanes_not_shown=not_shown,
    )


def _pauses(frame: _Frame, trace: Trace, index: SpanIndex) -> list[TextLabel]:
    """The held stretches in view: each pause mark ends one, `paused_ns` long. In a trace
    with its held time cut out (tracer.held_time) each is a break, BREAK_PX wide, where the
    run was held."""
    marks = np.nonzero(index.marker_kind.view == MARKER_KINDS.index("mark"))[0]
    if not len(marks) or len(marks) > frame.vp.max_markers:
        return []
    plot = frame.plot
    cut = HELD_CUT_NS in trace.meta
    pauses = []
    breaks: list[tuple[float, int, int]] = []
    for seq in index.marker_seq.view[marks].tolist():
        paused = trace.details[trace.detail[seq]].get("paused_ns")
        if not isinstance(paused, int) or paused <= 0:
            continue
        end = trace.ts[seq]
        begin = end if cut else end - paused
        if end < frame.t0 or begin > frame.t1:
            continue
        left = plot.x + (max(begin, frame.t0) - frame.t0) / frame.ns_per_px
        right = plot.x + (min(end, frame.t1) - frame.t0) / frame.ns_per_px
        if cut:
            breaks.append((left, paused, seq))
        else:
            pauses.append(TextLabel(left, plot.y, max(right - left, 1.0), plot.h,
                                    f"held {format_ns(paused)}", "pause", -1, seq))
    # Breaks closer than their width draw as one, with the time of all of them.
    merged: list[list[float | int]] = []
    for left, paused, seq in breaks:
        if merged and left - float(merged[-1][0]) < BREAK_PX:
            merged[-1][1] = int(merged[-1][1]) + paused
            merged[-1][3] = int(merged[-1][3]) + 1
        else:
            merged.append([left, paused, seq, 1])
    for left, paused, seq, count in merged:
        times = f" ({count} pauses)" if count > 1 else ""
        pauses.append(TextLabel(float(left) - BREAK_PX / 2, plot.y, BREAK_PX, plot.h,
                                f"held {format_ns(int(paused))}{times}", "break", -1,
                                int(seq)))
    return pauses


def pause_at(primitives: Primitives, x: float, y: float) -> TextLabel | None:
    """The held stretch (or the break where held time was cut out) under a point."""
    for pause in primitives.pauses:
        if pause.x - 2 <= x <= pause.x + pause.w + 2 and pause.y <= y <= pause.y + pause.h:
            return pause
    return None


@dataclass(frozen=True)
class _RowPlaces:
    """Where each lane's row is: `numbers[lane]` its row's number top to bottom (a folded
    lane's is its group's row; -1 for none), each row `lane_height` below the one before."""

    numbers: IntArray
    lanes_top: float
    lane_height: float
    scroll: float

    def y_of(self, number: int) -> float:
        return self.lanes_top + number * self.lane_height - self.scroll

    def y_of_lanes(self, lanes: IntArray, slots: int) -> FloatArray:
        """y_of each lane's row (NaN for none; lanes are below `slots`, -1 is none)."""
        numbers = np.full(slots, -1, dtype=np.int64)  # the last slot stands for -1
        numbers[:len(self.numbers)] = self.numbers
        number = numbers[lanes]
        # The same float steps as y_of, so a row's y is the same either way.
        y: FloatArray = np.where(number >= 0,
                                 self.lanes_top + number * self.lane_height - self.scroll,
                                 np.nan)
        return y

    @property
    def any_lane(self) -> bool:
        return bool((self.numbers >= 0).any())

    def near(self, plot: Box, rows: int) -> range:
        """The row numbers that can reach into the plot (and a row more each way)."""
        if self.lane_height <= 0:
            return range(rows)
        first = math.floor(self.scroll / self.lane_height) - 2
        stop = math.ceil((self.scroll + plot.h) / self.lane_height) + 2
        return range(max(first, 0), min(max(stop, 0), rows))


def _rows(index: SpanIndex, trace: Trace, spans: Spans, vp: Viewport, notes: TraceNotes
          ) -> tuple[list[tuple[int, str, str, str]], list[int], IntArray]:
    """_rows_in_order and each lane's row number, kept on the index while the trace has not
    grown and the same lanes are folded: a frame of a trace with 100,000 lanes then costs the
    rows it shows, not a Python step for every lane."""
    key = (len(trace), len(spans), vp.folded_lanes, vp.folded_name)
    if index.rows is None or index.rows[0] != key:
        order, folded = _rows_in_order(trace, spans, vp, notes)
        index.rows = (key, (order, folded, _row_numbers(order, folded)))
    return index.rows[1]


def _row_numbers(order: Sequence[tuple[int, str, str, str]], folded: Sequence[int]
                 ) -> IntArray:
    """Each lane's row number in `order` (a folded lane's is its group's row), -1 for none."""
    lanes = np.array([lane for lane, _, _, _ in order], dtype=np.int64)
    has_lane = lanes >= 0
    size = max(int(lanes.max(initial=-1)), max(folded, default=-1)) + 1
    numbers = np.full(size, -1, dtype=np.int64)
    numbers[lanes[has_lane]] = np.nonzero(has_lane)[0]
    group = np.nonzero(lanes == GROUP_LANE)[0]
    if len(group) and folded:
        numbers[np.array(folded, dtype=np.int64)] = group[0]
    return numbers


def _rows_in_order(trace: Trace, spans: Spans, vp: Viewport, notes: TraceNotes
                   ) -> tuple[list[tuple[int, str, str, str]], list[int]]:
    """(lane, name, kind, tag) per row top to bottom, the folded lanes' group row last; and
    the folded lanes in lane order."""
    rows: list[tuple[int, str, str, str]] = []
    folded: list[int] = []
    for lane, name, kind in lane_order(trace, spans):
        if lane in vp.folded_lanes:
            folded.append(lane)
        else:
            rows.append((lane, name, kind, lane_tag(trace, lane, kind, notes)))
    if folded:
        rows.append((GROUP_LANE, f"+ {len(folded)} {vp.folded_name}", GROUP_KIND, ""))
    return rows, folded


def _span_texts(frame: _Frame, trace: Trace, spans: Spans, exact: Rects, notes: TraceNotes
                ) -> list[TextLabel]:
    """Words inside the spans wide enough to hold some, the widest first, up to a cap: the
    full words where they fit, else the state's name. A poll that found ready fds says
    which lanes came back, over the dispatch that follows it if the poll itself is narrow.
    Each label's box is as wide as its words: what the painter draws, and what the arrows'
    words keep clear of."""
    vp = frame.vp
    text_band = max(MIN_TEXT_BAND_PX, vp.text_height)
    labelled = ((exact.span >= 0) & (exact.h >= text_band)
                & ~np.isin(exact.lane, np.fromiter(vp.folded_lanes, dtype=np.int64)))
    notes_for_polls, covered = _poll_notes(frame, trace, spans, exact, notes, labelled)
    wide = np.nonzero((exact.w >= MIN_LABELLED_SPAN_PX) & labelled)[0]
    wide = wide[np.argsort(-exact.w[wide], kind="stable")][:MAX_SPAN_TEXTS]
    plot = frame.plot
    texts = list(notes_for_polls)
    for i in wide.tolist():
        if i in covered:
            continue
        x = max(float(exact.x[i]), plot.x)
        right = min(float(exact.x[i] + exact.w[i]), plot.x + plot.w)
        room = right - x - 8
        if room < MIN_LABELLED_SPAN_PX - 8:
            continue
        state = int(exact.state[i])
        text = span_text(trace, spans, int(exact.span[i]), notes)
        width = vp.width_of(text)
        if width > room:
            text = STATE_NAMES.get(state, "")
            width = vp.width_of(text)
            if width > room:
                continue
        if text:
            texts.append(TextLabel(x + 4, float(exact.y[i]), width, float(exact.h[i]), text,
                                   "span", state))
    return texts


def _poll_notes(frame: _Frame, trace: Trace, spans: Spans, exact: Rects, notes: TraceNotes,
                labelled: npt.NDArray[np.bool_]) -> tuple[list[TextLabel], set[int]]:
    """ "ready: listener, conn :42444" on each poll that found something, reaching over the
    loop's next spans up to its next poll when the poll is too narrow for the words; and the
    rectangles those words cover, which get no words of their own."""
    polls = np.nonzero(labelled & (exact.state == _POLL))[0]
    if not len(polls) or len(polls) > MAX_SPAN_TEXTS:
        return [], set()
    vp = frame.vp
    plot = frame.plot
    texts: list[TextLabel] = []
    covered: set[int] = set()
    for lane in np.unique(exact.lane[polls]).tolist():
        mine = np.nonzero(labelled & (exact.lane == lane))[0]
        mine = mine[np.argsort(exact.x[mine], kind="stable")]
        poll_at = np.nonzero(exact.state[mine] == _POLL)[0].tolist()
        for number, k in enumerate(poll_at):
            i = int(mine[k])
            span = int(exact.span[i])
            candidates = span_poll_texts(trace, spans, span, notes)
            if len(candidates) < 2:
                continue  # nothing was ready
            stop = poll_at[number + 1] if number + 1 < len(poll_at) else len(mine)
            x = max(float(exact.x[i]), plot.x)
            reach = float(exact.x[mine[stop - 1]] + exact.w[mine[stop - 1]])
            right = min(reach, plot.x + plot.w)
            room = right - x - 8
            # A note's words have a margin either side on their halo (ui.paint).
            text = next((c for c in candidates if vp.width_of(c) + 8 <= room), "")
            if not text:
                continue
            own_room = float(exact.x[i] + exact.w[i]) - x - 8
            if vp.width_of(text) <= own_room:
                texts.append(TextLabel(x + 4, float(exact.y[i]), vp.width_of(text),
                                       float(exact.h[i]), text, "span", _POLL))
                covered.add(i)
                continue
            width = min(vp.width_of(text) + 8, room)
            texts.append(TextLabel(x + 2, float(exact.y[i]), width, float(exact.h[i]), text,
                                   "note"))
            covered.update(int(j) for j in mine[k:stop].tolist()
                           if exact.x[j] < x + 2 + width)
    return texts, covered


# Where an arrow's words may go, tried in this order, the first free one taken: beside the
# head (the shaft's right, then its left), then beside the tail. None free: no words (the
# arrow's tooltip still says them).
_ARROW_TEXT_PLACES = (("head", 1), ("head", -1), ("tail", 1), ("tail", -1))
_ARROW_TEXT_GAP = 4.0  # between a shaft and its words
_SHAFT_HALF = 2.0  # half a shaft's halo
_TOUCH = 1e-6
_ROW_LIFT = 1e5  # wider than any plot; a few hundred rows of it keep x to 1e-8 px


class _Occupied:
    """What a frame has drawn, by row, for words to keep clear of: each row's bars (as left
    edges in order, with the running maximum of their right edges, so one bisection says
    whether any bar reaches into a span of x), its markers, and the words placed so far."""

    def __init__(self, frame: _Frame, places: _RowPlaces, rects: Rects,
                 markers: Sequence[Marker], rows: int, texts: Sequence[TextLabel]) -> None:
        self.places = places
        self.rows = rows
        lane_height = places.lane_height
        self.pad = min(frame.vp.row_padding, lane_height / 4)
        self.bar_left: dict[int, list[float]] = {}
        self.bar_reach: dict[int, list[float]] = {}
        if len(rects) and lane_height > 0:
            middle = rects.y + rects.h / 2
            row_of = np.floor((middle - places.lanes_top + places.scroll) / lane_height)
            row_of = row_of.astype(np.int64)
            order = np.lexsort((rects.x, row_of))
            row_sorted = row_of[order]
            # Clipped to the plot (words stay inside it): a deep zoom's long span starts
            # far off screen, and every x is then small enough for the lift below.
            low, high = frame.plot.x - 1.0, frame.plot.x + frame.plot.w + 1.0
            left = np.clip(rects.x[order], low, high)
            right = np.clip(rects.x[order] + np.maximum(rects.w[order], 1.0), low, high)
            # Each row's running maximum in one pass: rows lifted apart by more than any x,
            # so a row's maximum never carries into the next.
            lift = (row_sorted - row_sorted[0]).astype(np.float64) * _ROW_LIFT
            reach = (np.maximum.accumulate(right + lift) - lift).tolist()
            lefts = left.tolist()
            bounds = (np.flatnonzero(np.diff(row_sorted)) + 1).tolist()
            for first, stop in zip([0, *bounds], [*bounds, len(lefts)], strict=True):
                row = int(row_sorted[first])
                self.bar_left[row] = lefts[first:stop]
                self.bar_reach[row] = reach[first:stop]
        # Words and markers as (left, right, top, bottom), by the rows they reach into.
        self.boxes: dict[int, list[tuple[float, float, float, float]]] = {}
        # A marker stays inside its own row: kept by that row, like the bars.
        self.marks: dict[int, list[tuple[float, float, float, float]]] = {}
        for marker in markers:
            size = _marker_size(marker)
            if marker.kind in ("output", "mark"):
                top, bottom = _marker_reach(marker)
            else:
                # An end's bar crosses the whole row, but what says the lane ended is the
                # part across its bars: words may cover it in the gaps between rows.
                top, bottom = marker.y + self.pad, marker.y + marker.height - self.pad
            self.marks.setdefault(_row_number(places, marker.lane), []).append(
                (marker.x - size, marker.x + size, top, bottom))
        for label in texts:
            self.add(label.x, label.y, label.w, label.h)

    def _rows_of(self, top: float, bottom: float) -> range:
        """The rows a stretch of y reaches into (its bottom edge excluded)."""
        places = self.places
        if places.lane_height <= 0:
            return range(0)
        offset = places.scroll - places.lanes_top
        first = math.floor((top + offset) / places.lane_height)
        last = math.floor((bottom - _TOUCH + offset) / places.lane_height)
        return range(max(first, 0), min(last, self.rows - 1) + 1)

    def add(self, x: float, y: float, w: float, h: float) -> None:
        box = (x, x + w, y, y + h)
        for row in self._rows_of(y, y + h):
            self.boxes.setdefault(row, []).append(box)

    def band(self, row: int) -> tuple[float, float]:
        """The top and bottom of a row's bars."""
        top = self.places.y_of(row)
        return top + self.pad, top + self.places.lane_height - self.pad

    def is_free(self, box: Box, own_rows: tuple[int, int]) -> bool:
        """Whether `box` crosses no placed words, and no bar or marker of a row other than
        `own_rows` (the rows of the lanes the words are about)."""
        # Edges that meet do not cross: a box made flush with a bar may differ from it in the
        # last bits of a float.
        left, top = box.x + _TOUCH, box.y + _TOUCH
        right, bottom = box.x + box.w - _TOUCH, box.y + box.h - _TOUCH
        for row in self._rows_of(top, bottom):
            own = row in own_rows
            for kept in (self.boxes, self.marks) if not own else (self.boxes,):
                for other_left, other_right, other_top, other_bottom in kept.get(row, ()):
                    if (left < other_right and other_left < right
                            and top < other_bottom and other_top < bottom):
                        return False
            if own or row not in self.bar_left:
                continue
            band_top, band_bottom = self.band(row)
            if top >= band_bottom or bottom <= band_top:
                continue
            # The bars starting left of the box's right edge: does any reach past its left?
            before = bisect_left(self.bar_left[row], right)
            if before and self.bar_reach[row][before - 1] > left:
                return False
        return True


def _marker_size(marker: Marker) -> float:
    """The half-width of a marker's shape (as ui.paint draws it)."""
    return min(max(marker.height * 0.22, 4.0), 9.0)


def _arrow_texts(frame: _Frame, trace: Trace, arrows: Sequence[Arrow], notes: TraceNotes,
                 occupancy: Callable[[], _Occupied]) -> list[TextLabel]:
    """Words beside arrows, each in the first of _ARROW_TEXT_PLACES where it is clear of
    other words, other arrows' shafts and the bars and markers of lanes it is not about, inside
    the plot; left out where none is. Beside the head, the words sit in the gap between
    the target's row and the one the arrow comes from, and reach into the target's own bars
    only when that gap is thinner than a line, by at most half their height (the tail's
    place likewise into the source's); rows thinner than that get no words on arrows. A
    bundle says how many arrows it holds."""
    if not arrows or len(arrows) > 4 * MAX_ARROW_TEXTS:
        return []
    vp = frame.vp
    plot = frame.plot
    lane_height = vp.lane_height
    pad = min(vp.row_padding, lane_height / 4)
    height = vp.text_height + 2
    # Where the gap between rows is thinner than a line, the words reach into a lane's own
    # bars, up to half their height: any more and they would hide them.
    if height - 2 * pad > (lane_height - 2 * pad) / 2:
        return []
    # Made only now: a frame with no arrows to label (most dense ones) does not pay for it.
    occupied = occupancy()
    places = occupied.places
    ordered = sorted(arrows, key=lambda a: a.x)
    shaft_x = [arrow.x for arrow in ordered]
    plot_left, plot_right = plot.x, plot.x + plot.w
    plot_top, plot_bottom = plot.y, plot.y + plot.h
    placed: list[TextLabel] = []
    for arrow in ordered:
        if len(placed) >= MAX_ARROW_TEXTS:
            break
        text = (f"×{arrow.bundled}" if arrow.bundled > 1  # noqa: RUF001 (a count, "times")
                else notes.arrow_words(trace, arrow.seq))
        if not text:
            continue
        width = vp.width_of(text) + 6
        down = arrow.y1 > arrow.y0
        head_top = _text_top(arrow, "head", down, pad, lane_height, height)
        tail_top = _text_top(arrow, "tail", down, pad, lane_height, height)
        own_rows: tuple[int, int] | None = None
        for end, side in _ARROW_TEXT_PLACES:
            top = head_top if end == "head" else tail_top
            left = (arrow.x + _ARROW_TEXT_GAP if side > 0
                    else arrow.x - _ARROW_TEXT_GAP - width)
            if (left < plot_left or left + width > plot_right or top < plot_top
                    or top + height > plot_bottom):
                continue
            box = Box(left, top, width, height)
            if _crosses_a_shaft(box, ordered, shaft_x, arrow.seq):
                continue
            if own_rows is None:
                own_rows = (_row_number(places, arrow.from_lane),
                            _row_number(places, arrow.to_lane))
            if not occupied.is_free(box, own_rows):
                continue
            occupied.add(left, top, width, height)
            placed.append(TextLabel(left, top, width, height, text, "arrow", -1, arrow.seq))
            break
    return placed


def _row_number(places: _RowPlaces, lane: int) -> int:
    return int(places.numbers[lane]) if 0 <= lane < len(places.numbers) else -1


def _text_top(arrow: Arrow, end: str, down: bool, pad: float, lane_height: float,
              height: float) -> float:
    """The top of an arrow's words at its head or its tail: centred in the gap between the
    rows there, or, when the gap is thinner than the words, flush with the far side's bars
    and reaching into the near lane's own (the target's at the head, the source's at the
    tail)."""
    overhang = max(height / 2 - pad, 0.0)
    if end == "head":
        # The head touches the target's bars; the gap is on the source's side of it.
        gap_middle = arrow.y1 - pad if down else arrow.y1 + pad
        return gap_middle - height / 2 + (overhang if down else -overhang)
    # The tail starts in the middle of the source's row; the gap is at that row's edge
    # towards the target.
    gap_middle = arrow.y0 + lane_height / 2 if down else arrow.y0 - lane_height / 2
    return gap_middle - height / 2 + (-overhang if down else overhang)


def _crosses_a_shaft(box: Box, ordered: Sequence[Arrow], shaft_x: Sequence[float],
                     seq: int) -> bool:
    """Whether another arrow's shaft (with its halo) runs through `box`."""
    first = bisect_left(shaft_x, box.x - _SHAFT_HALF)
    for other in ordered[first:]:
        if other.x > box.x + box.w + _SHAFT_HALF:
            break
        if other.seq != seq and (min(other.y0, other.y1) < box.y + box.h
                                 and max(other.y0, other.y1) > box.y):
            return True
    return False


def states_at(index: SpanIndex, builder: SpanBuilder | None, lanes: Sequence[int],
              ns: float) -> dict[int, int]:
    """The state each lane is in at time `ns`: the later span where two meet, so live and in
    a recording alike: the lane's open span when it had begun by then (it follows every
    closed one), else the closed span that covers it."""
    states: dict[int, int] = {}
    at = math.floor(ns)
    for lane in lanes:
        if builder is not None:
            open_span = builder.open_span(lane)
            if open_span is not None and open_span[1] <= at:
                states[lane] = open_span[0]
                continue
        columns = index.lanes.get(lane)
        if columns is not None and len(columns):
            starts = columns.start.view
            found = int(np.searchsorted(starts, at, side="right")) - 1
            if found >= 0 and at <= int(columns.end.view[found]):
                states[lane] = int(columns.state.view[found])
    return states


def _lay_out_lanes(
    frame: _Frame, visible: Sequence[LaneRow], index: SpanIndex, strips: npt.NDArray[np.int8]
) -> None:
    """Every visible lane's spans in view: the wide ones of all lanes at once (a frame's
    numpy calls, not a lane's, set its cost), then the narrow ones merged lane by lane."""
    in_view: list[tuple[int, LaneRow, _LaneColumns, int, int]] = []
    # One search a lane for both ends of the view: a frame pays these calls once per lane.
    view_ends = np.array([frame.first_ns, frame.last_ns], dtype=np.int64)
    for row_number, row in enumerate(visible):
        lane = index.lanes.get(row.lane)
        if lane is None or not len(lane):
            continue
        first, stop = lane.start.view.searchsorted(view_ends, side="left").tolist()
        # Spans on a lane are sorted and disjoint: only the one before the first starting in
        # view can reach into it (as _first_overlapping finds).
        if first and lane.end.data[first - 1] > frame.first_ns:
            first -= 1
        if stop > first:
            in_view.append((row_number, row, lane, first, stop))
    # Lanes go together in groups of up to _GROUP_SPANS spans in view, as one set of
    # columns: a frame's numpy calls, more than their lengths, set its cost. Row order is
    # kept, so the rectangles come out lane by lane as before.
    group: list[tuple[int, LaneRow, _LaneColumns, int, int]] = []
    grouped = 0
    # Lanes with many spans a pixel: their merged columns are found for all of them at once.
    dense: list[_DenseLane] = []
    alone = max(_GROUPED_SPANS, _DENSE_FACTOR * frame.columns)
    for lane_in_view in in_view:
        row_number, row, lane, first, stop = lane_in_view
        if stop - first > alone:
            if group:  # its wide spans' rectangles come after theirs
                _lay_out_group(frame, group, strips, dense)
                group, grouped = [], 0
            _lay_out_dense(frame, row_number, row, lane, first, stop, dense)
            continue
        if group and grouped + stop - first > _GROUP_SPANS:
            _lay_out_group(frame, group, strips, dense)
            group, grouped = [], 0
        group.append(lane_in_view)
        grouped += stop - first
    if group:
        _lay_out_group(frame, group, strips, dense)
    # In batches of lanes, so that a frame's grids stay a few megabytes however many lanes
    # are drawn (folded lanes all share one row).
    at_once = max(_DENSE_CELLS_AT_ONCE // max(frame.columns, 1), 1)
    for first in range(0, len(dense), at_once):
        _merge_dense(frame, dense[first:first + at_once], strips)


class _DenseLane(NamedTuple):
    """A lane whose merged columns are found column by column: `wide` holds the positions,
    in order, of its spans in view that have a rectangle of their own."""

    row_number: int
    row: LaneRow
    band: tuple[float, float]
    lane: _LaneColumns
    wide: IntArray


# A lane with at most this many spans in view is never laid out from its level of detail.
_GROUPED_SPANS = 512
# Lanes with at most this many spans in view between them are laid out together (a lane with
# more goes alone).
_GROUP_SPANS = 1 << 16
# A lane with more than this many spans a pixel column in view is laid out from its level of
# detail (the duration maxima and the running state counts), never span by span.
_DENSE_FACTOR = 4
# (lane, column) cells whose merged state is found in one pass over such lanes.
_DENSE_CELLS_AT_ONCE = 1 << 17


def _lay_out_dense(frame: _Frame, row_number: int, row: LaneRow, lane: _LaneColumns,
                   first: int, stop: int, dense: list[_DenseLane]) -> None:
    """One lane with many spans a pixel: the same rectangles _lay_out_group makes, found in
    O(columns * log(spans)). The spans wide enough for their own rectangle come from the
    duration maxima (there are at most a column's worth of them); the merged columns from a
    binary search per column edge and the running counts of each state."""
    band = state_band(row, frame.vp)
    npp = frame.ns_per_px
    wide = lane.wide_spans(first, stop, math.ceil(npp), frame.columns)
    if len(wide):
        left = np.maximum(lane.start.view[wide], frame.t0)
        right = np.minimum(lane.end.view[wide], frame.t1)
        shown = right > left
        at, left, right = wide[shown], left[shown], right[shown]
        x = frame.plot.x + (left - frame.t0) / npp
        frame.rects.append(Rects(
            x=x, y=_filled(len(at), band[0]), w=frame.plot.x + (right - frame.t0) / npp - x,
            h=_filled(len(at), band[1]), state=lane.state.view[at], span=lane.index.view[at],
            lane=_filled(len(at), row.lane, np.int64),
        ))
    if frame.columns == 0 or len(wide) == stop - first:
        return
    LAYOUT_WORK.spans_read += frame.columns
    dense.append(_DenseLane(row_number, row, band, lane, wide))


def _lay_out_group(
    frame: _Frame, in_view: Sequence[tuple[int, LaneRow, _LaneColumns, int, int]],
    strips: npt.NDArray[np.int8], dense: list[_DenseLane],
) -> None:
    def gathered(column: str) -> np.ndarray:
        # The growable's whole buffer, not its `view` (a slice more per lane): stop <= size.
        if len(in_view) == 1:
            _, _, lane, first, stop = in_view[0]
            view: np.ndarray = getattr(lane, column).data[first:stop]
            return view
        return np.concatenate([getattr(lane, column).data[first:stop]
                               for _, _, lane, first, stop in in_view])

    start, end = gathered("start"), gathered("end")
    counts = [stop - first for _, _, _, first, stop in in_view]
    LAYOUT_WORK.spans_read += sum(counts)
    bands = [state_band(row, frame.vp) for _, row, _, _, _ in in_view]
    npp = frame.ns_per_px
    plot = frame.plot
    # Durations are whole ns, so "< ceil(npp)" is "< npp" without a float copy of the column.
    narrow = end - start < math.ceil(npp)
    wide = (~narrow).nonzero()[0]
    if len(wide):
        left = np.maximum(start[wide], frame.t0)
        right = np.minimum(end[wide], frame.t1)
        shown = right > left
        wide, left, right = wide[shown], left[shown], right[shown]
        x = plot.x + (left - frame.t0) / npp
        frame.rects.append(Rects(
            x=x, y=np.repeat(np.array([y for y, _ in bands]), counts)[wide],
            w=plot.x + (right - frame.t0) / npp - x,
            h=np.repeat(np.array([h for _, h in bands]), counts)[wide],
            state=gathered("state")[wide], span=gathered("index")[wide],
            lane=np.repeat(np.array([row.lane for _, row, _, _, _ in in_view],
                                    dtype=np.int64), counts)[wide],
        ))
    if frame.columns == 0 or len(wide) == len(narrow):
        return
    # Lanes with many spans for the columns are merged column by column, with the dense
    # lanes; the others from their narrow spans, here, all together.
    offsets = [0, *accumulate(counts)]
    has_narrow = np.logical_or.reduceat(narrow, offsets[:-1]).tolist()
    few: list[int] = []
    for number, ((row_number, row, lane, first, stop), band) in enumerate(
            zip(in_view, bands, strict=True)):
        if not has_narrow[number]:
            continue
        if stop - first > frame.columns // 4:
            part = slice(offsets[number], offsets[number + 1])
            dense.append(_DenseLane(row_number, row, band, lane,
                                    np.nonzero(~narrow[part])[0] + first))
        else:
            few.append(number)
    if few:
        owner = np.repeat(np.arange(len(in_view)), counts)
        merging = narrow
        if len(few) < len(in_view):
            is_few = np.zeros(len(in_view), dtype=bool)
            is_few[few] = True
            merging = narrow & is_few[owner]
        at = np.nonzero(merging)[0]
        _merge_sparse(frame, _GroupSpans(in_view, owner, start, end), bands, at, strips)


class _GroupSpans(NamedTuple):
    """A group's spans in view, lane after lane: `owner` is each one's lane, by its place in
    `in_view`."""

    in_view: Sequence[tuple[int, LaneRow, _LaneColumns, int, int]]
    owner: IntArray
    start: IntArray
    end: IntArray


def _merge_sparse(frame: _Frame, group: _GroupSpans, bands: Sequence[tuple[float, float]],
                  narrow: IntArray, strips: npt.NDArray[np.int8]) -> None:
    """The merged runs of lanes with few spans for the columns, found from their narrow
    spans (positions in `group`): the columns they touch, then in each of those the
    highest-ranked state among all the spans there, wide ones included, from the running
    counts at the column's edges."""
    in_view = group.in_view
    owner, start, end = group.owner[narrow], group.start[narrow], group.end[narrow]
    columns, last_column = frame.columns, frame.columns - 1
    begin_col = _column_of(frame, start, inclusive=True)
    # A span ending exactly on a column's left edge does not reach into that column.
    end_col = np.maximum(_column_of(frame, end, inclusive=False), begin_col)
    touched = np.concatenate((_clamp(begin_col, 0, last_column),
                              _clamp(end_col, 0, last_column)))
    cell = np.unique(np.concatenate((owner, owner)) * columns + touched)
    lane_of, column = np.divmod(cell, columns)
    at_lo, at_hi = _counts_at_cell_edges(frame, group, lane_of, column)
    state = _top_states(at_lo, at_hi)
    found = state >= 0  # columns with no span at all are dropped
    lane_of, column, state = lane_of[found], column[found], state[found]
    if not len(column):  # the narrow spans all lie just outside the view
        return
    row_number = np.array([row_number for row_number, _, _, _, _ in in_view],
                          dtype=np.int64)[lane_of]
    strips[row_number, column] = state
    # Runs of adjacent columns of one lane with the same state become one rectangle.
    run_start = np.flatnonzero(np.concatenate((
        [True], (column[1:] - column[:-1] != 1) | (state[1:] != state[:-1])
        | (lane_of[1:] != lane_of[:-1]))))
    run_stop = np.append(run_start[1:], len(column))
    run_lane = lane_of[run_start]
    frame.merged.append((row_number[run_start], Rects(
        x=frame.plot.x + column[run_start].astype(np.float64),
        y=np.array([y for y, _ in bands])[run_lane],
        w=(column[run_stop - 1] - column[run_start] + 1).astype(np.float64),
        h=np.array([h for _, h in bands])[run_lane],
        state=state[run_start],
        span=_filled(len(run_start), MERGED_SPAN, np.int64),
        lane=np.array([row.lane for _, row, _, _, _ in in_view], dtype=np.int64)[run_lane],
    )))


def _counts_at_cell_edges(frame: _Frame, group: _GroupSpans, lane_of: IntArray,
                          column: IntArray) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's running count at the left and right edge of each (lane, column) cell:
    at lo, the cell's first span (the first that ends after its left edge or starts at or
    after it), and at hi, the first span starting at or after its right edge.

    Both lie within the lane's spans in view (a column's edges are inside the view), so
    they are searched for all the lanes with cells at once: each lane's times, clamped to
    just outside the view, are lifted by the lane's number times the view's width in ns,
    which keeps them all sorted. The group's other lanes (dense ones, or ones with no
    narrow span) are left out, so a big group with a few sparse lanes reads only theirs."""
    in_view = group.in_view
    edges = frame.edges
    low, high = frame.first_ns - 1, frame.last_ns + 1
    lift = high - low + 1
    if len(in_view) * lift >= 1 << 62:  # lifted times would not fit in 64 bits
        return _counts_at_cell_edges_by_lane(frame, in_view, lane_of, column)
    with_cells = np.zeros(len(in_view), dtype=bool)
    with_cells[lane_of] = True
    owner, start, end = group.owner, group.start, group.end
    if not with_cells.all():
        mine = with_cells[owner]
        owner, start, end = owner[mine], start[mine], end[mine]
        # Lanes renumbered among those with cells, still in row order.
        number = np.cumsum(with_cells) - 1
        owner, lane_of = number[owner], number[lane_of]
        in_view = [lane for lane, kept in zip(in_view, with_cells.tolist(), strict=True)
                   if kept]
    lifted = owner * lift - low
    start = np.minimum(np.maximum(start, low), high) + lifted
    end = np.minimum(np.maximum(end, low), high) + lifted
    cell_lift = lane_of * lift - low
    left, right = edges[column] + cell_lift, edges[column + 1] + cell_lift
    lo = np.minimum(end.searchsorted(left, side="right"), start.searchsorted(left, side="left"))
    hi = start.searchsorted(right, side="left")
    # Each lane's running counts at its spans in view and just after them: one row more
    # than its spans, so the position p (among these lanes' spans) of lane k's span is row
    # p + k here.
    ranked = np.concatenate([lane.ranked.data[first:stop + 1]
                             for _, _, lane, first, stop in in_view])
    return ranked[lo + lane_of], ranked[hi + lane_of]


def _counts_at_cell_edges_by_lane(
    frame: _Frame, in_view: Sequence[tuple[int, LaneRow, _LaneColumns, int, int]],
    lane_of: IntArray, column: IntArray,
) -> tuple[np.ndarray, np.ndarray]:
    """_counts_at_cell_edges searching lane by lane, for views too long to lift."""
    at_lo = np.empty((len(column), _RANK_SLOTS), dtype=np.int32)
    at_hi = np.empty((len(column), _RANK_SLOTS), dtype=np.int32)
    edges = frame.edges
    bounds = np.searchsorted(lane_of, np.arange(len(in_view) + 1)).tolist()
    for number, (_, _, lane, _, _) in enumerate(in_view):
        part = slice(bounds[number], bounds[number + 1])
        if part.start == part.stop:
            continue
        its = column[part]
        lo = _first_overlapping(lane.start.view, lane.end.view, edges[its])
        hi = lane.start.view.searchsorted(edges[its + 1], side="left")
        np.take(lane.ranked.view, lo, axis=0, out=at_lo[part], mode="clip")
        np.take(lane.ranked.view, hi, axis=0, out=at_hi[part], mode="clip")
    return at_lo, at_hi


def _top_states(at_lo: np.ndarray, at_hi: np.ndarray) -> npt.NDArray[np.int8]:
    """The state of the highest rank among spans [lo, hi), from every rank's running count
    at lo and at hi (the last axis); -1 where there is no span."""
    present = (at_hi > at_lo).view("<u8")[..., 0]  # byte r of the word is rank r
    top_byte = (present * _GATHER_BYTES) >> np.uint64(56)
    state: npt.NDArray[np.int8] = _TOP_STATE_OF_RANKS[top_byte]
    return state


def _in_row_order(merged: Sequence[tuple[IntArray, Rects]]) -> Rects:
    """Merged runs laid out in several passes, each in row order, put in row order."""
    if len(merged) == 1:
        return merged[0][1]
    runs = Rects.concat([part for _, part in merged])
    if not len(runs):
        return runs
    order = np.concatenate([rows for rows, _ in merged]).argsort(kind="stable")
    return Rects(*(getattr(runs, name)[order] for name in _RECT_COLUMNS))


def _filled(count: int, value: float, dtype: type[np.generic] = np.float64) -> np.ndarray:
    """np.full without its Python-level overhead, which dominates for a lane's few values."""
    filled = np.empty(count, dtype=dtype)
    filled.fill(value)
    return filled


def _merge_dense(frame: _Frame, dense: Sequence[_DenseLane],
                 strips: npt.NDArray[np.int8]) -> None:
    """The merged runs of lanes with many spans a pixel, found column by column (a binary
    search per column edge, then the running counts of each state at the edges): for many
    spans a pixel, O(columns) searches beat O(spans) arithmetic. Only the searches and the
    gathers go lane by lane; the rest is done for every such lane at once, over whole
    (lane, column) grids, since a frame's numpy calls, not their lengths, set its cost."""
    lanes, columns = len(dense), frame.columns
    edges = frame.edges
    # Per lane and column k: the spans [lo, hi) in it (hi the first starting at or after
    # its right edge, lo the first starting in it or the one before if that one reaches
    # in; spans on a lane are sorted and disjoint), how many of them are narrow, and every
    # rank's running count at lo and at hi.
    narrow = np.empty((lanes, columns), dtype=np.int64)
    at_lo = np.empty((lanes, columns, _RANK_SLOTS), dtype=np.int32)
    at_hi = np.empty((lanes, columns, _RANK_SLOTS), dtype=np.int32)
    for number, (_, _, _, lane, wide) in enumerate(dense):
        starting = lane.start.view.searchsorted(edges, side="left")
        hi = starting[1:]
        lo = starting[:-1]
        before = np.maximum(lo - 1, 0)
        lo = lo - ((lo > 0) & (lane.end.view[before] > edges[:-1]))
        np.subtract(hi, lo, out=narrow[number])
        if len(wide):  # the wide spans have rectangles of their own
            narrow[number] -= np.searchsorted(wide, hi) - np.searchsorted(wide, lo)
        ranked = lane.ranked.view
        np.take(ranked, lo, axis=0, out=at_lo[number], mode="clip")
        np.take(ranked, hi, axis=0, out=at_hi[number], mode="clip")
    # Each column's highest-ranked state among its spans, wide ones included, from the ranks
    # present in it; -1 where no narrow span needs the column merged.
    state = np.where(narrow > 0, _top_states(at_lo, at_hi), np.int8(-1))
    row_numbers = np.array([part.row_number for part in dense], dtype=np.int64)
    strips[row_numbers] = state
    # Runs of adjacent columns of one lane with the same state become one rectangle: found
    # in the grid with a -1 column closing each lane.
    grid = np.full((lanes, columns + 1), -1, dtype=np.int8)
    grid[:, :columns] = state
    cells = grid.ravel()
    changes = np.flatnonzero(cells[1:] != cells[:-1]) + 1
    run_start = changes[cells[changes] >= 0]
    if cells[0] >= 0:
        run_start = np.concatenate(([0], run_start))
    if not len(run_start):  # the narrow spans all lie just outside the view
        return
    run_stop = changes[cells[changes - 1] >= 0]
    run_lane, column = np.divmod(run_start, columns + 1)
    runs = Rects(
        x=frame.plot.x + column.astype(np.float64),
        y=np.array([part.band[0] for part in dense])[run_lane],
        w=(run_stop - run_start).astype(np.float64),
        h=np.array([part.band[1] for part in dense])[run_lane],
        state=cells[run_start],
        span=_filled(len(run_start), MERGED_SPAN, np.int64),
        lane=np.array([part.row.lane for part in dense], dtype=np.int64)[run_lane],
    )
    frame.merged.append((row_numbers[run_lane], runs))


def _column_of(frame: _Frame, ns: IntArray, *, inclusive: bool) -> IntArray:
    """The pixel column holding each time: the k with edges[k] <= t < edges[k+1] (inclusive) or
    edges[k] < t <= edges[k+1]; -1 or `columns` when outside.

    Arithmetic gives the column to within one of the exact answer, and one comparison each
    way against the integer edges corrects it: much cheaper than a binary search per span.
    """
    edges = frame.edges
    guess = np.floor((ns - frame.t0) / frame.ns_per_px).astype(np.int64)
    guess = _clamp(guess, -1, frame.columns)
    lower = edges[_clamp(guess, 0, frame.columns)]
    upper = edges[_clamp(guess + 1, 0, frame.columns)]
    if inclusive:
        too_far = (ns < lower) & (guess >= 0)
        too_near = (ns >= upper) & (guess < frame.columns)
    else:
        too_far = (ns <= lower) & (guess >= 0)
        too_near = (ns > upper) & (guess < frame.columns)
    column: IntArray = guess - too_far + too_near
    return column


def _clamp(values: IntArray, low: int, high: int) -> IntArray:
    """np.clip for int arrays without its per-call dtype checks, which cost more than the
    clipping itself on the few dozen values a lane has in view."""
    clamped: IntArray = np.minimum(np.maximum(values, low), high)
    return clamped


def _first_overlapping(starts: IntArray, ends: IntArray, at: IntArray | int) -> IntArray:
    """The first span (of a lane's sorted, disjoint spans) that ends after `at` or starts at or
    after it, so that a zero-length span sitting on `at` counts as overlapping."""
    return np.minimum(ends.searchsorted(at, side="right"), starts.searchsorted(at, side="left"))


def _open_span_rects(
    frame: _Frame, builder: SpanBuilder, visible: list[LaneRow], now_ns: int
) -> Rects:
    x: list[float] = []
    w: list[float] = []
    y: list[float] = []
    h: list[float] = []
    state: list[int] = []
    lanes: list[int] = []
    for row in visible:
        open_span = builder.open_span(row.lane)
        if open_span is None:
            continue
        code, begin = open_span
        left, right = max(begin, frame.t0), min(max(now_ns, begin), frame.t1)
        if right < left:
            continue
        band_y, band_h = state_band(row, frame.vp)
        x.append(frame.plot.x + (left - frame.t0) / frame.ns_per_px)
        w.append((right - left) / frame.ns_per_px)
        y.append(band_y)
        h.append(band_h)
        state.append(code)
        lanes.append(row.lane)
    return Rects(
        np.array(x, dtype=np.float64), np.array(y, dtype=np.float64),
        np.array(w, dtype=np.float64), np.array(h, dtype=np.float64),
        np.array(state, dtype=np.int8), np.full(len(x), OPEN_SPAN, dtype=np.int64),
        np.array(lanes, dtype=np.int64),
    )


def _visible_range(ts: IntArray, frame: _Frame) -> slice:
    return slice(int(np.searchsorted(ts, frame.first_ns, side="left")),
                 int(np.searchsorted(ts, frame.last_ns, side="right")))


def _first_per_key(key: IntArray) -> IntArray:
    """Positions of the first occurrence of each key, in their original order."""
    _, first = np.unique(key, return_index=True)
    return np.sort(first)


def _arrows(frame: _Frame, index: SpanIndex, places: _RowPlaces) -> tuple[list[Arrow], int]:
    seen = _visible_range(index.arrow_ts.view, frame)
    in_range = seen.stop - seen.start
    if in_range <= 0 or not places.any_lane:
        return [], 0
    if in_range > _GIVE_UP_FACTOR * frame.vp.max_arrows:
        return [], in_range  # far too many to read: do not even sort them out
    ts = index.arrow_ts.view[seen]
    source = index.arrow_from.view[seen]
    target = index.arrow_to.view[seen]
    kind = index.arrow_kind.view[seen]
    lane_height = places.lane_height
    slots = max(len(places.numbers), int(source.max()) + 1, int(target.max()) + 1) + 1
    y_from, y_to = places.y_of_lanes(source, slots), places.y_of_lanes(target, slots)
    plot = frame.plot
    # Two folded lanes share their group's row: an arrow between them has no length.
    keep = ~np.isnan(y_from) & ~np.isnan(y_to) & (source != target) & (y_from != y_to)
    # Skip arrows that lie wholly above or below the visible rows.
    low, high = np.fmin(y_from, y_to), np.fmax(y_from, y_to) + lane_height
    keep &= (high > plot.y) & (low < plot.y + plot.h)
    at = np.nonzero(keep)[0]
    x = plot.x + (ts[at] - frame.t0) / frame.ns_per_px
    # Arrows too close together to tell apart (same lanes and kind, within a few pixels) are
    # drawn once, counting what they stand for, rather than as a solid block of shafts.
    column = np.floor((x - plot.x) / ARROW_BUNDLE_PX).astype(np.int64)
    key = ((column * slots + source[at]) * slots + target[at]) * 2 + kind[at]
    if len(key) > frame.vp.max_arrows:
        # Possibly too many to draw: count the bundles with a plain sort first, a tenth of
        # the stable one np.unique needs to say where each bundle begins.
        ordered = np.sort(key)
        bundles = int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1
        if bundles > frame.vp.max_arrows:
            return [], bundles
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    order = np.argsort(first)
    first, counts = first[order], counts[order]
    at, x = at[first], x[first]
    if len(at) > frame.vp.max_arrows:
        return [], len(at)
    seq = index.arrow_seq.view[seen]
    pad = min(frame.vp.row_padding, lane_height / 4)
    from_y, to_y = y_from[at], y_to[at]
    # The shaft starts mid-row; the head touches the edge of the target's state band that
    # faces the source. Built column-wise: a Python step per arrow would cost more than
    # drawing it when there are thousands.
    head_y = to_y + np.where(to_y > from_y, pad, lane_height - pad)
    kinds = [ARROW_KINDS[k] for k in kind[at].tolist()]
    arrows = _records(Arrow, x.tolist(), (from_y + lane_height / 2).tolist(), head_y.tolist(),
                      kinds, seq[at].tolist(), source[at].tolist(), target[at].tolist(),
                      counts.tolist())
    return arrows, 0


_GIVE_UP_FACTOR = 20


def _markers(frame: _Frame, index: SpanIndex, rows: Mapping[int, LaneRow]) -> list[Marker]:
    seen = _visible_range(index.marker_ts.view, frame)
    in_range = seen.stop - seen.start
    if in_range <= 0 or not rows or in_range > _GIVE_UP_FACTOR * frame.vp.max_markers:
        return []
    lanes = index.marker_lane.view[seen]
    at = np.nonzero(np.isin(lanes, np.fromiter(rows, dtype=np.int64)))[0]
    x = frame.plot.x + (index.marker_ts.view[seen][at] - frame.t0) / frame.ns_per_px
    kinds = index.marker_kind.view[seen][at]
    lane_slots = max(rows) + 1
    kind_slots = len(MARKER_KINDS)
    key = (np.floor(x).astype(np.int64) * lane_slots + lanes[at]) * kind_slots + kinds
    unique = _first_per_key(key)[: frame.vp.max_markers]
    seq = index.marker_seq.view[seen][at]
    # Built column-wise, each row's place looked up in numpy: a Python step per marker cost
    # most of a dense frame.
    row_top = np.zeros(lane_slots)
    row_height = np.zeros(lane_slots)
    for lane, row in rows.items():
        row_top[lane], row_height[lane] = row.y, row.height
    marker_lanes = lanes[at[unique]]
    return _records(Marker, x[unique].tolist(), row_top[marker_lanes].tolist(),
                    row_height[marker_lanes].tolist(), _MARKER_KIND_NAMES[kinds[unique]].tolist(),
                    seq[unique].tolist(), marker_lanes.tolist())


_MARKER_KIND_NAMES = np.array(MARKER_KINDS, dtype=object)


_Record = TypeVar("_Record", bound=tuple[object, ...])


def _records(kind: type[_Record], *columns: Sequence[object]) -> list[_Record]:
    """kind(*row) for each row of the columns, made as tuple.__new__ makes them: a named
    tuple's own constructor is a Python function, which costs twice as much a row."""
    return list(map(partial(tuple.__new__, kind), zip(*columns, strict=True)))


def _legend(states: set[int], index: SpanIndex) -> list[LegendEntry]:
    entries = [LegendEntry("state", s, STATE_NAMES[s]) for s in LEGEND_STATE_ORDER
               if s in states]
    entries += [LegendEntry("arrow", k, name) for k, name in enumerate(ARROW_KINDS)
                if k in index.arrow_kinds_seen]
    entries += [LegendEntry("marker", k, _MARKER_LEGEND[name])
                for k, name in enumerate(MARKER_KINDS) if k in index.marker_kinds_seen]
    return entries


def _highlight(frame: _Frame, spans: Spans, places: _RowPlaces, selected: int
               ) -> Box | None:
    if not 0 <= selected < len(spans):
        return None
    lane = spans.lane[selected]
    number = int(places.numbers[lane]) if lane < len(places.numbers) else -1
    if number < 0:
        return None
    begin, end = spans.start[selected], spans.end[selected]
    if end < frame.t0 or begin > frame.t1:
        return None
    left = frame.plot.x + (max(begin, frame.t0) - frame.t0) / frame.ns_per_px
    right = frame.plot.x + (min(end, frame.t1) - frame.t0) / frame.ns_per_px
    width = max(right - left, 1.0)
    return Box(left, places.y_of(number), width, frame.vp.lane_height)


# -- hit-testing ------------------------------------------------------------------------------


def hit_at(primitives: Primitives, x: float, y: float) -> Hit | None:
    """The rectangle under a point: an exact span if there is one, else a merged run."""
    rects = primitives.rects
    if not len(rects) or not primitives.plot.contains(x, y):
        return None
    # Rectangles narrower than a pixel still answer within one pixel, so they can be hovered.
    inside = (
        (x >= rects.x) & (x < rects.x + np.maximum(rects.w, 1.0))
        & (y >= rects.y) & (y < rects.y + rects.h)
    )
    found = np.nonzero(inside)[0]
    if not len(found):
        return None
    exact = found[rects.span[found] != MERGED_SPAN]
    chosen = int(exact[0] if len(exact) else found[0])
    return Hit(chosen, int(rects.lane[chosen]), int(rects.state[chosen]),
               int(rects.span[chosen]))


def span_at(primitives: Primitives, x: float, y: float) -> int:
    """The index of the span under a point, or -1 (nothing there, or several merged spans)."""
    hit = hit_at(primitives, x, y)
    return hit.span if hit is not None and hit.span >= 0 else -1


def arrow_at(primitives: Primitives, x: float, y: float, slack: float = 4.0) -> Arrow | None:
    """The arrow whose shaft (or words) is under a point, the nearest if several."""
    if not primitives.plot.contains(x, y):
        return None
    best: Arrow | None = None
    for arrow in primitives.arrows:
        distance = abs(arrow.x - x)
        if (distance <= slack and min(arrow.y0, arrow.y1) - 2 <= y <= max(arrow.y0, arrow.y1) + 2
                and (best is None or distance < abs(best.x - x))):
            best = arrow
    if best is not None:
        return best
    by_seq = {arrow.seq: arrow for arrow in primitives.arrows}
    for label in primitives.texts:
        if (label.kind == "arrow" and label.x <= x < label.x + label.w
                and label.y <= y < label.y + label.h and label.seq in by_seq):
            return by_seq[label.seq]
    return None


def marker_at(primitives: Primitives, x: float, y: float, slack: float = 5.0) -> Marker | None:
    """The instant marker (output, end, exception, mark) under a point, the nearest."""
    if not primitives.plot.contains(x, y):
        return None
    found = [m for m in primitives.markers
             if abs(m.x - x) <= slack and _marker_reach(m)[0] <= y < _marker_reach(m)[1]]
    return min(found, key=lambda m: abs(m.x - x)) if found else None


def _marker_reach(marker: Marker) -> tuple[float, float]:
    """The rows of pixels a marker is drawn over (see ui.paint): an output's triangle hangs
    from the row's top, a mark's diamond sits in its middle, an end's bar crosses it."""
    size = min(max(marker.height * 0.22, 4.0), 9.0)
    if marker.kind == "output":
        return marker.y, marker.y + 2 + 1.4 * size
    if marker.kind == "mark":
        middle = marker.y + marker.height / 2
        return middle - size, middle + size
    return marker.y, marker.y + marker.height


def lane_at(primitives: Primitives, x: float, y: float) -> int:
    """The lane whose name is under a point in the label column, or -1 (GROUP_LANE for the
    folded lanes' row)."""
    if not primitives.labels.contains(x, y):
        return -1
    row = primitives.row_at(y)
    return row.lane if row is not None else -1


__all__ = [
    "ARROW_KINDS",
    "GROUP_KIND",
    "GROUP_LANE",
    "LEGEND_STATE_ORDER",
    "MARKER_KINDS",
    "MERGED_SPAN",
    "MORE_KIND",
    "MORE_LANES",
    "OPEN_SPAN",
    "STATES_BY_RANK",
    "Arrow",
    "Box",
    "Hit",
    "LaneRow",
    "LegendEntry",
    "Marker",
    "Primitives",
    "Rects",
    "SpanIndex",
    "TextLabel",
    "Tick",
    "Viewport",
    "arrow_at",
    "format_ns",
    "hit_at",
    "lane_at",
    "layout",
    "marker_at",
    "nice_step",
    "span_at",
    "span_index",
    "state_band",
    "states_at",
    "time_ticks",
]


def run_extent(trace: Trace) -> tuple[float, float]:
    """The time range "fit" shows: from just before the first event to the last.

    A child records its first event only after start-up and imports (often 10-150 ms), so
    fitting from time zero would squeeze the run against the right edge.
    """
    if not len(trace):
        return 0.0, 0.0
    first, last = float(trace.ts[0]), float(trace.duration_ns)
    margin = (last - first) * 0.02
    return max(first - margin, 0.0), last
