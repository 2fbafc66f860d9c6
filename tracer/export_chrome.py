"""Chrome Trace Event JSON (the format ui.perfetto.dev and chrome://tracing open).

One process; one thread per lane (named by `thread_name` metadata, ordered loop lanes first by
`thread_sort_index`); one complete ("X") slice per state span, named by its state, with the
span's detail and source location in `args`; a flow ("s" -> "f") per wake and switch arrow;
thread-scoped instants ("i") for printed lines, ends and marks.

Flow events bind to slices, not to moments: a flow start binds to the slice enclosing it on
the source lane, a flow end with `"bp":"e"` to the slice enclosing it on the target lane. Both
are therefore placed strictly inside their slice (one ns in from an edge where the slice is
long enough), so that a slice ending at the very instant of the arrow cannot capture it.

The export streams: the trace is folded a window of events at a time, each span's slice is
written once it closes, and each arrow's flow once both slices it binds to have closed; what
it keeps between windows is per lane (its open span, its last span) plus the arrows still
waiting, so its memory grows with the lanes, not with the events. The fold is tracer.spans'
(SpanBuilder) done with numpy over a window's columns rather than event by event, for speed:
the same spans, which tests/tracer/test_export_chrome.py holds it to against `derive_spans` on
scrambled and recorded traces. The events' order in the file is not time order, which the
format does not ask for.

The text is assembled line by line from those columns: each interned detail is formatted once
per window, and a value row as its base's text with the value appended, rather than a dict
serialised per event. The lane metadata comes last, once every lane with spans is known.
"""

from __future__ import annotations

import io
import json
from array import array
from collections.abc import Iterator
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, BinaryIO, TextIO

import numpy as np
import numpy.typing as npt

from loopscope.tracer.events import FIRST_INSTANT, STATE_NAMES, Code
from loopscope.tracer.query import lane_order
from loopscope.tracer.safe_write import write_file
from loopscope.tracer.spans import Spans, column_rows
from loopscope.tracer.trace import Trace
from loopscope.tracer.values import VALUE_ROW, int_of_text

PID = 1
INSTANT_CODES: dict[int, str] = {Code.OUTPUT: "output", Code.END: "end", Code.MARK: "mark"}
ARROW_NAMES: dict[int, str] = {Code.WAKE: "wake", Code.SWITCH: "switch"}
_LINES_PER_WRITE = 20000
_WINDOW = 1 << 16  # events folded at a time (their lines are held until written)


def thread_id(lane: int) -> int:
    """The Chrome `tid` of a lane (lane ids start at 0; tid 0 means "no thread" to some tools)."""
    return lane + 1


def micros(ns: int) -> str:
    """Nanoseconds as a JSON number of microseconds, exact to the nanosecond."""
    return f"{ns // 1000}.{ns % 1000:03d}" if ns >= 0 else f"-{micros(-ns)}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


def _metadata_lines(trace: Trace, lanes_with_spans: Spans) -> Iterator[str]:
    """The process's and each lane's name and place; `lanes_with_spans` is a Spans whose
    `by_lane` holds (at least) every lane that has a span."""
    process = f"loopscope: {trace.meta.get('target', 'trace')}"
    yield (
        f'{{"ph":"M","name":"process_name","pid":{PID},"tid":0,'
        f'"args":{{"name":{_json(process)}}}}}'
    )
    for position, (lane, name, _kind) in enumerate(lane_order(trace, lanes_with_spans)):
        tid = thread_id(lane)
        yield (
            f'{{"ph":"M","name":"thread_name","pid":{PID},"tid":{tid},'
            f'"args":{{"name":{encode_basestring(name)}}}}}'
        )
        yield (
            f'{{"ph":"M","name":"thread_sort_index","pid":{PID},"tid":{tid},'
            f'"args":{{"sort_index":{position}}}}}'
        )


_Table = dict[str, npt.NDArray[np.int64]]


class _Args:
    """The `args` object of an event as JSON text. An interned detail is formatted once per
    (detail, source); a value row (most are seen once) as its base detail's text, formatted
    once per base, with the value's text appended: the same text json.dumps gives its dict."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        # by detail << 32 | source; value rows are never kept (most are seen once)
        self.cache: dict[int, str] = {}
        # by base: (the row's JSON up to its value, whether the value is an int), or None
        self._value_prefixes: dict[int, tuple[str, bool] | None] = {}

    def get(self, detail: int, source: int = 0) -> str:
        key = detail << 32 | source
        text = self.cache.get(key)
        if text is None:
            if detail >= VALUE_ROW and not source:
                return self.value_rows(np.array([detail - VALUE_ROW], np.int64))[0]
            text = self.build(self.trace.details[detail], source)
            if detail < VALUE_ROW:
                self.cache[key] = text
        return text

    def build(self, detail: dict[str, Any], source: int) -> str:
        args = dict(detail)
        if source:
            filename, line, function = self.trace.sources[source]
            args["source"] = f"{filename}:{line}"
            args["function"] = function
        return _json(args)

    def value_rows(self, rows: npt.NDArray[np.int64]) -> list[str]:
        """The args of value rows `rows` (numbered from 0), read from the rows' columns: the
        texts of the rows asked for are decoded as one piece when they are ASCII."""
        values = self.trace.details.values
        low, high = int(rows.min()), int(rows.max()) + 1
        offset = 1 if low else 0  # ends[low - 1] is where row `low` begins
        ends = np.frombuffer(values.ends[low - offset : high], dtype=np.int64)
        if not offset:
            ends = np.concatenate([np.zeros(1, np.int64), ends])
        stops = ends[rows - low + 1]
        starts = ends[rows - low]
        bases = np.frombuffer(values.bases[low:high], dtype=np.int32)[rows - low]
        first, last = int(starts.min()), int(stops.max())
        chunk = bytes(values.texts[first:last])
        starts, stops = (starts - first).tolist(), (stops - first).tolist()
        if chunk.isascii():
            whole = chunk.decode("ascii")
            texts = [whole[start:stop] for start, stop in zip(starts, stops, strict=True)]
        else:
            texts = [chunk[start:stop].decode("utf-8", "replace")
                     for start, stop in zip(starts, stops, strict=True)]
        unique, inverse = np.unique(bases, return_inverse=True)
        prefixes = np.array([self._prefix_of(base) for base in unique.tolist()] + [None],
                            dtype=object)[:-1][inverse.reshape(-1)].tolist()
        result = [("" if prefix is None
                   else f"{prefix[0]}{_int_json(text)}}}" if prefix[1]
                   else f"{prefix[0]}{encode_basestring(text)}}}")
                  for prefix, text in zip(prefixes, texts, strict=True)]
        for index, prefix in enumerate(prefixes):
            if prefix is None:  # the slow way, for the rare row it does not fit
                result[index] = self.build(self.trace.details[VALUE_ROW + int(rows[index])], 0)
        return result

    def _prefix_of(self, base: int) -> tuple[str, bool] | None:
        if base not in self._value_prefixes:
            self._value_prefixes[base] = self._prefix(self.trace.details[base])
        return self._value_prefixes[base]

    @staticmethod
    def _prefix(base: dict[str, Any]) -> tuple[str, bool] | None:
        """The JSON of a value row with base `base` up to its value (tracer.values.
        value_detail: the value goes last, under "value" or the key the base names as its
        "value_key" or "int_key") and whether the value is an int; None when the key is
        already in the base, which keeps its place there instead."""
        marker = "value_key" if "value_key" in base else "int_key" if "int_key" in base else ""
        row = {name: value for name, value in base.items() if name != marker}
        name = str(base[marker]) if marker else "value"
        if name in row:
            return None
        opening = _json(row)[:-1]
        return f"{opening}{',' if row else ''}{_json(name)}:", marker == "int_key"


def _int_json(text: str) -> str:
    """The JSON of an "int_key" value row's value (tracer.values.value_detail)."""
    number = int_of_text(text)
    return "null" if number is None else str(number)


def _inside(start: npt.NDArray[np.int64], end: npt.NDArray[np.int64],
            ts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """`ts` moved strictly inside the span [start, end] when it is at least 2 ns long."""
    inside: npt.NDArray[np.int64] = np.where(
        end - start < 2, start, np.minimum(np.maximum(ts, start + 1), end - 1))
    return inside


def _select(table: _Table, keep: npt.NDArray[np.bool_]) -> _Table:
    return {name: column[keep] for name, column in table.items()}


def _concatenate(table: _Table, more: _Table) -> _Table:
    return {name: np.concatenate([column, more[name]]) for name, column in table.items()}


def _hits(keys: npt.NDArray[np.int64], positions: npt.NDArray[np.int64],
          lanes: npt.NDArray[np.int64], key_lanes: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Where `positions` (from a search of `keys`) name an entry of the lane asked for."""
    inside = (positions >= 0) & (positions < len(keys))
    found = np.zeros(len(positions), dtype=bool)
    found[inside] = key_lanes[positions[inside]] == lanes[inside]
    return found


class _Time:
    """Nanosecond times as the JSON text `micros` gives, in two parts for one f-string: the
    whole microseconds (with the sign) and the three digits after the point."""

    FRACTIONS = np.array([f"{n:03d}" for n in range(1000)], dtype=object)

    @classmethod
    def parts(cls, ns: npt.NDArray[np.int64]) -> tuple[list[Any], list[str]]:
        size = np.abs(ns)
        fractions: list[str] = cls.FRACTIONS[size % 1000].tolist()
        wholes: list[Any] = (size // 1000).tolist()
        if (ns < 0).any():
            wholes = [f"-{whole}" if negative else whole
                      for whole, negative in zip(wholes, (ns < 0).tolist(), strict=True)]
        return wholes, fractions


# The fields of an arrow waiting for its slices, each a column of the waiting table: the seq,
# its code, detail and moment; the source and target lanes (as lane + 1); and for each of the
# three spans it may bind to (source, target, the target's fallback) the seq that began it
# (-1: none, or for the target: not begun yet), its start and end, and whether it has closed.
_ARROW_FIELDS = ("seq", "code", "detail", "ts", "from", "to",
                 "s_op", "s_start", "s_end", "s_closed", "t_op", "t_start", "t_end", "t_closed",
                 "f_op", "f_start", "f_end", "f_closed")


class _ChromeStream:
    """The fold, vectorised a window of events at a time, and the arrows waiting for their
    slices.

    A span is named by the seq of the state event that began it (its opener): it starts at
    that event and ends at the lane's next state or END event, or at the end of the run. An
    arrow binds to the last span its source lane began at or before it, and to the first span
    its target lane begins after it (else the target's last span begun at or before it). Per
    window the state and END events are sorted by (lane, seq): each one's successor in its lane
    is the one after it, and the spans, the arrows' spans and the lanes' first events in the
    window are found by binary search over that order. What carries over from one window to
    the next is per lane (its open span, its last span) plus the arrows still waiting. Lanes
    are indexed as lane + 1, so that NO_LANE is index 0.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.count = len(trace)
        self.args = _Args(trace)
        names = np.full(FIRST_INSTANT, None, dtype=object)
        for code, name in STATE_NAMES.items():
            names[code] = _json(name)
        self.names = names
        self.arrow_names = np.array([None] * (max(ARROW_NAMES) + 1), dtype=object)
        for code, name in ARROW_NAMES.items():
            self.arrow_names[code] = name
        # per lane index: the open span (its opener, start, code, detail, source; opener -1
        # when none) and the last span begun (opener, start, end, closed)
        self.lanes = 0
        self.open: dict[str, npt.NDArray[np.int64]] = {}
        self.last: dict[str, npt.NDArray[np.int64]] = {}
        self._grow(1)
        self.merged: dict[int, dict[str, Any]] = {}  # opener -> its detail merged by ANNOTATEs
        self.waiting: _Table = {name: np.zeros(0, np.int64) for name in _ARROW_FIELDS}

    def _grow(self, lanes: int) -> None:
        if lanes <= self.lanes:
            return
        more = max(lanes, 2 * self.lanes) - self.lanes
        for table, fields in ((self.open, ("op", "start", "code", "detail", "source")),
                              (self.last, ("op", "start", "end", "closed"))):
            for name in fields:
                fill = -1 if name == "op" else 0
                table[name] = np.concatenate(
                    [table.get(name, np.zeros(0, np.int64)), np.full(more, fill, np.int64)])
        self.lanes += more

    def batches(self) -> Iterator[list[str]]:
        """The export's events, one JSON object per string, a window's worth at a time."""
        for start in range(0, self.count, _WINDOW):
            yield self._window(start, min(start + _WINDOW, self.count))
        yield self._finish()
        with_spans = (np.flatnonzero(self.last["op"] >= 0) - 1).tolist()
        yield list(_metadata_lines(self.trace, Spans(by_lane=dict.fromkeys(with_spans,
                                                                           array("i")))))

    def _window(self, first: int, stop: int) -> list[str]:
        trace, size = self.trace, stop - first
        code = column_rows(trace.code, first, stop)
        lane = column_rows(trace.lane, first, stop) + 1
        other = column_rows(trace.other, first, stop) + 1
        ts = column_rows(trace.ts, first, stop)
        self._grow(int(max(lane.max(), other.max())) + 1)
        # the window's state and END events by (lane, seq)
        bounds = np.flatnonzero((code < FIRST_INSTANT) | (code == Code.END))
        bounds = bounds[np.argsort(lane[bounds], kind="stable")]
        bound_lane = lane[bounds]
        lane_first = np.ones(len(bounds), dtype=bool)
        lane_first[1:] = bound_lane[1:] != bound_lane[:-1]
        lane_last = np.ones(len(bounds), dtype=bool)
        lane_last[:-1] = bound_lane[:-1] != bound_lane[1:]
        following_ts = np.zeros(len(bounds), dtype=np.int64)
        following_ts[:-1] = ts[bounds[1:]]
        is_state = code[bounds] < FIRST_INSTANT
        # the lanes' first events here, which close the spans open before the window
        firsts = bounds[lane_first]
        first_lane, first_ts = lane[firsts], ts[firsts]
        # the spans begun here, by (lane, seq)
        began = np.flatnonzero(is_state)
        state_seq, state_lane = bounds[began], bound_lane[began]
        state_closed = ~lane_last[began]
        state_end = following_ts[began]
        state_start = ts[state_seq]
        window = _WindowSpans(first, size, state_lane, state_seq, state_start, state_end,
                              state_closed, first_lane, first_ts)

        annotations = np.flatnonzero(code == Code.ANNOTATE)
        if len(annotations):
            self._annotate(first, annotations, lane, bounds, bound_lane, is_state, size)

        lines: list[str] = []
        # spans open before the window that its first event on their lane closes
        open_ = self.open
        was_open = open_["op"][first_lane] >= 0
        carried = first_lane[was_open]
        lines += self._slices(carried, open_["op"][carried], open_["code"][carried],
                              open_["start"][carried], first_ts[was_open],
                              open_["detail"][carried], open_["source"][carried])
        # spans begun and closed here
        closed = np.flatnonzero(state_closed)
        seqs = state_seq[closed]
        detail = column_rows(trace.detail, first, stop)
        source = column_rows(trace.source, first, stop)
        lines += self._slices(state_lane[closed], seqs + first, code[seqs], state_start[closed],
                              state_end[closed], detail[seqs], source[seqs])

        arrows = np.flatnonzero((code == Code.WAKE) | (code == Code.SWITCH))
        waiting = self._settle(self.waiting, window)
        if len(arrows):
            waiting = _concatenate(waiting, self._arrows(window, arrows, code[arrows],
                                                         lane[arrows], other[arrows],
                                                         detail[arrows], ts[arrows]))
        ready = (waiting["s_closed"] == 1) & (waiting["t_op"] >= 0) & (waiting["t_closed"] == 1)
        lines += self._flows(_select(waiting, ready))
        self.waiting = _select(waiting, ~ready)

        lines += self._instants(first, code, lane, ts, detail)
        self._carry(first, bounds[lane_last], is_state[lane_last], lane, code, ts, detail,
                    source, window)
        return lines

    def _annotate(self, first: int, annotations: npt.NDArray[np.int64],
                  lane: npt.NDArray[np.int64], bounds: npt.NDArray[np.int64],
                  bound_lane: npt.NDArray[np.int64], is_state: npt.NDArray[np.bool_],
                  size: int) -> None:
        """Merges each ANNOTATE's detail into the span open on its lane at that moment (the
        lane's last state event before it, unless an END came after it)."""
        trace, details = self.trace, self.trace.details
        keys = bound_lane * (size + 1) + bounds
        for seq in annotations.tolist():
            at = int(lane[seq])
            position = int(np.searchsorted(keys, at * (size + 1) + seq)) - 1
            if position >= 0 and bound_lane[position] == at:
                if not is_state[position]:
                    continue  # the lane ended
                opener = first + int(bounds[position])
            else:
                opener = int(self.open["op"][at])
                if opener < 0:
                    continue
            merged = self.merged.get(opener)
            if merged is None:
                merged = self.merged[opener] = dict(details[trace.detail[opener]])
            merged.update(details[trace.detail[first + seq]])

    def _arrows(self, window: _WindowSpans, seqs: npt.NDArray[np.int64],
                codes: npt.NDArray[np.int64], lanes: npt.NDArray[np.int64],
                others: npt.NDArray[np.int64], details: npt.NDArray[np.int64],
                moments: npt.NDArray[np.int64]) -> _Table:
        """The window's arrows with the spans they bind to, as far as the window knows them."""
        wake = codes == Code.WAKE
        sources, targets = np.where(wake, others, lanes), np.where(wake, lanes, others)
        keep = (sources > 0) & (targets > 0)  # NO_LANE is index 0
        table: _Table = {"seq": seqs + window.first, "code": codes, "detail": details,
                         "ts": moments, "from": sources, "to": targets}
        table = _select(table, keep)
        seqs = seqs[keep]
        sources, targets = table["from"], table["to"]
        # the source's span: the last it began at or before the arrow
        at = np.searchsorted(window.key, sources * (window.size + 1) + seqs, side="right") - 1
        table.update(zip(("s_op", "s_start", "s_end", "s_closed"),
                         self._begun(window, at, sources), strict=True))
        # the target's next span, if it begins in this window; else its span at the arrow
        after = np.searchsorted(window.key, targets * (window.size + 1) + seqs, side="right")
        table.update(zip(("t_op", "t_start", "t_end", "t_closed"),
                         window.spans(after, targets), strict=True))
        table.update(zip(("f_op", "f_start", "f_end", "f_closed"),
                         self._begun(window, after - 1, targets), strict=True))
        return _select(table, table["s_op"] >= 0)

    def _begun(self, window: _WindowSpans, positions: npt.NDArray[np.int64],
               lanes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], ...]:
        """The span at `positions` of the window's spans when it is one of the lane's, else the
        lane's last span begun before the window (opener -1 when it has none)."""
        opener, start, end, closed = window.spans(positions, lanes)
        before = opener < 0
        lanes_before = lanes[before]
        last = self.last
        opener[before] = last["op"][lanes_before]
        start[before] = last["start"][lanes_before]
        end[before] = last["end"][lanes_before]
        closed[before] = last["closed"][lanes_before]
        self._close_carried(window, opener, lanes, end, closed)
        return opener, start, end, closed

    def _close_carried(self, window: _WindowSpans, opener: npt.NDArray[np.int64],
                       lanes: npt.NDArray[np.int64], end: npt.NDArray[np.int64],
                       closed: npt.NDArray[np.int64]) -> None:
        """Closes, in place, the spans begun before the window and open at its start that the
        lane's first event in the window ends."""
        still = np.flatnonzero((opener >= 0) & (opener < window.first) & (closed == 0))
        if not len(still):
            return
        position = np.searchsorted(window.first_lane, lanes[still])
        found = _hits(window.first_lane, position, lanes[still], window.first_lane)
        end[still[found]] = window.first_ts[position[found]]
        closed[still[found]] = 1

    def _settle(self, waiting: _Table, window: _WindowSpans) -> _Table:
        """The arrows waiting from earlier windows, with what this window tells of their spans."""
        if not len(waiting["seq"]):
            return waiting
        for prefix, lanes in (("s", waiting["from"]), ("t", waiting["to"]),
                              ("f", waiting["to"])):
            self._close_carried(window, waiting[f"{prefix}_op"], lanes, waiting[f"{prefix}_end"],
                                waiting[f"{prefix}_closed"])
        unknown = np.flatnonzero(waiting["t_op"] < 0)
        if len(unknown):
            targets = waiting["to"][unknown]
            after = np.searchsorted(window.key, targets * (window.size + 1))
            for name, column in zip(("t_op", "t_start", "t_end", "t_closed"),
                                    window.spans(after, targets), strict=True):
                waiting[name][unknown] = column
        return waiting

    def _carry(self, first: int, ends: npt.NDArray[np.int64], opened: npt.NDArray[np.bool_],
               lane: npt.NDArray[np.int64], code: npt.NDArray[np.int64],
               ts: npt.NDArray[np.int64], detail: npt.NDArray[np.int64],
               source: npt.NDArray[np.int64], window: _WindowSpans) -> None:
        """What the next window needs of this one, per lane; `ends` are each lane's last state
        or END event here, `opened` whether it is a state."""
        last = self.last
        # a lane's last span begun before the window, if open, closes at its first event here
        lanes = window.first_lane
        closing = (last["op"][lanes] >= 0) & (last["closed"][lanes] == 0)
        last["end"][lanes[closing]] = window.first_ts[closing]
        last["closed"][lanes[closing]] = 1
        # each lane's last span begun here
        final = np.ones(len(window.key), dtype=bool)
        final[:-1] = window.lanes[:-1] != window.lanes[1:]
        lanes = window.lanes[final]
        last["op"][lanes] = window.seq[final] + first
        last["start"][lanes] = window.start[final]
        last["end"][lanes] = window.end[final]
        last["closed"][lanes] = window.closed[final]
        # each lane's span open at the window's end: its last state event, unless an END
        lanes = lane[ends]
        open_ = self.open
        open_["op"][lanes] = np.where(opened, ends + first, -1)
        open_["start"][lanes] = ts[ends]
        open_["code"][lanes] = code[ends]
        open_["detail"][lanes] = detail[ends]
        open_["source"][lanes] = source[ends]

    def _finish(self) -> list[str]:
        """The spans still open at the end of the run close there."""
        end_ts = self.trace.duration_ns
        open_ = self.open
        lanes = np.flatnonzero(open_["op"] >= 0)
        ends = np.maximum(open_["start"][lanes], end_ts)
        lines = self._slices(lanes, open_["op"][lanes], open_["code"][lanes],
                             open_["start"][lanes], ends, open_["detail"][lanes],
                             open_["source"][lanes])
        waiting = self.waiting
        for prefix in ("s", "t", "f"):
            still = waiting[f"{prefix}_closed"] == 0
            waiting[f"{prefix}_end"][still] = np.maximum(waiting[f"{prefix}_start"][still],
                                                         end_ts)
        unknown = waiting["t_op"] < 0
        for name in ("op", "start", "end"):
            waiting[f"t_{name}"][unknown] = waiting[f"f_{name}"][unknown]
        lines += self._flows(_select(waiting, waiting["t_op"] >= 0))
        return lines

    def _slices(self, lanes: npt.NDArray[np.int64], openers: npt.NDArray[np.int64],
                codes: npt.NDArray[np.int64], starts: npt.NDArray[np.int64],
                ends: npt.NDArray[np.int64], details: npt.NDArray[np.int64],
                sources: npt.NDArray[np.int64]) -> list[str]:
        if not len(lanes):
            return []
        args = self._args(details, sources)
        if self.merged:
            build = self.args.build
            for index in np.flatnonzero(np.isin(openers, list(self.merged))).tolist():
                args[index] = build(self.merged.pop(int(openers[index])),
                                    int(sources[index]))
        ts, ts_fraction = _Time.parts(starts)
        dur, dur_fraction = _Time.parts(ends - starts)
        names = self.names[codes].tolist()
        return [
            f'{{"ph":"X","name":{name},"cat":"state","pid":{PID},"tid":{tid},'
            f'"ts":{whole}.{fraction},"dur":{span}.{span_fraction},"args":{text}}}'
            for name, tid, whole, fraction, span, span_fraction, text in zip(
                names, lanes.tolist(), ts, ts_fraction, dur, dur_fraction, args, strict=True)
        ]

    def _flows(self, arrows: _Table) -> list[str]:
        if not len(arrows["seq"]):
            return []
        begin = _inside(arrows["s_start"], arrows["s_end"], arrows["ts"])
        finish = np.maximum(begin, _inside(arrows["t_start"], arrows["t_end"],
                                           arrows["t_start"]))
        args = self._args(arrows["detail"], np.zeros(len(begin), np.int64))
        names = self.arrow_names[arrows["code"]].tolist()
        seqs = arrows["seq"].tolist()
        begin_whole, begin_fraction = _Time.parts(begin)
        finish_whole, finish_fraction = _Time.parts(finish)
        lines = [
            f'{{"ph":"s","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
            f'"tid":{tid},"ts":{whole}.{fraction},"args":{text}}}'
            for seq, name, tid, whole, fraction, text in zip(
                seqs, names, arrows["from"].tolist(), begin_whole, begin_fraction, args,
                strict=True)
        ]
        lines += [
            f'{{"ph":"f","bp":"e","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
            f'"tid":{tid},"ts":{whole}.{fraction}}}'
            for seq, name, tid, whole, fraction in zip(
                seqs, names, arrows["to"].tolist(), finish_whole, finish_fraction, strict=True)
        ]
        return lines

    def _instants(self, first: int, code: npt.NDArray[np.int64], lane: npt.NDArray[np.int64],
                  ts: npt.NDArray[np.int64], detail: npt.NDArray[np.int64]) -> list[str]:
        seqs = np.flatnonzero(np.isin(code, list(INSTANT_CODES)))
        if not len(seqs):
            return []
        args = self._args(detail[seqs], np.zeros(len(seqs), np.int64))
        whole, fraction = _Time.parts(ts[seqs])
        return [
            f'{{"ph":"i","s":"t","name":"{name}","cat":"{name}","pid":{PID},'
            f'"tid":{tid},"ts":{whole}.{part},"args":{text}}}'
            for name, tid, whole, part, text in zip(
                [INSTANT_CODES[c] for c in code[seqs].tolist()], lane[seqs].tolist(),
                whole, fraction, args, strict=True)
        ]

    def _args(self, details: npt.NDArray[np.int64], sources: npt.NDArray[np.int64]) -> list[str]:
        """The `args` text of each (detail, source): each distinct interned pair formatted once,
        value rows from their base's prefix and their text."""
        texts: npt.NDArray[Any] = np.empty(len(details), dtype=object)
        rows = (details >= VALUE_ROW) & (sources == 0)
        interned = np.flatnonzero(~rows)
        if len(interned):
            keys = details[interned] << 32 | sources[interned]
            unique, inverse = np.unique(keys, return_inverse=True)
            get = self.args.get
            formatted = np.array([get(key >> 32, key & 0xFFFFFFFF) for key in unique.tolist()]
                                 + [None], dtype=object)[:-1]
            texts[interned] = formatted[inverse.reshape(-1)]
        valued = np.flatnonzero(rows)
        if len(valued):
            texts[valued] = self.args.value_rows(details[valued] - VALUE_ROW)
        result: list[str] = texts.tolist()
        return result


class _WindowSpans:
    """The spans one window's state events began, by (lane, seq): `key` is lane * (size + 1)
    + seq, seqs counted from the window's `first`, with each span's start, end and whether the
    window closed it (1) or left it open (0); and each lane's first state or END event in the
    window (`first_lane`, in order, and its moment `first_ts`)."""

    def __init__(self, first: int, size: int, lanes: npt.NDArray[np.int64],
                 seq: npt.NDArray[np.int64], start: npt.NDArray[np.int64],
                 end: npt.NDArray[np.int64], closed: npt.NDArray[np.bool_],
                 first_lane: npt.NDArray[np.int64], first_ts: npt.NDArray[np.int64]) -> None:
        self.first, self.size = first, size
        self.key = lanes * (size + 1) + seq
        self.lanes, self.seq, self.start, self.end = lanes, seq, start, end
        self.closed = closed.astype(np.int64)
        self.first_lane, self.first_ts = first_lane, first_ts

    def spans(self, positions: npt.NDArray[np.int64], lanes: npt.NDArray[np.int64]
              ) -> tuple[npt.NDArray[np.int64], ...]:
        """(opener, start, end, closed) of the spans at `positions` of this window's, where
        they are spans of `lanes`; opener -1 (and zeros) elsewhere."""
        found = _hits(self.key, positions, lanes, self.lanes)
        at = positions[found]
        columns = []
        for column, absent in ((self.seq + self.first, -1), (self.start, 0), (self.end, 0),
                               (self.closed, 0)):
            values = np.full(len(positions), absent, dtype=np.int64)
            values[found] = column[at]
            columns.append(values)
        return tuple(columns)


def write_chrome_json(trace: Trace, out: TextIO) -> None:
    """Writes the whole JSON document: {"traceEvents": [...], "otherData": meta}."""
    out.write('{"displayTimeUnit":"ms","otherData":')
    out.write(_json({str(k): v for k, v in trace.meta.items()}))
    out.write(',\n"traceEvents":[\n')
    separator = ""
    for batch in _ChromeStream(trace).batches():
        for start in range(0, len(batch), _LINES_PER_WRITE):
            out.write(separator + ",\n".join(batch[start : start + _LINES_PER_WRITE]))
            separator = ",\n"
    out.write("\n]}\n")


def save_chrome_json(trace: Trace, path: str | Path) -> None:
    """Writes the JSON all or nothing (tracer.safe_write); OutputError when it cannot."""

    def write(out: BinaryIO) -> None:
        text = io.TextIOWrapper(out, encoding="utf-8")
        write_chrome_json(trace, text)
        text.flush()
        text.detach()  # the file is closed by the writer, not by the wrapper

    write_file(path, write)
