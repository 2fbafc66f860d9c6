"""Chrome Trace Event JSON (the format ui.perfetto.dev and chrome://tracing open).

One process; one thread per lane (named by `thread_name` metadata, ordered loop lanes first by
`thread_sort_index`); one complete ("X") slice per state span, named by its state, with the
span's detail and source location in `args`; a flow ("s" -> "f") per wake and switch arrow;
thread-scoped instants ("i") for printed lines, ends and marks.

Flow events bind to slices, not to moments: a flow start binds to the slice enclosing it on
the source lane, a flow end with `"bp":"e"` to the slice enclosing it on the target lane. Both
are therefore placed strictly inside their slice (one ns in from an edge where the slice is
long enough), so that a slice ending at the very instant of the arrow cannot capture it.

The export streams: the trace is folded a window of events at a time (tracer.spans.SpanBuilder,
the one fold every view uses, its spans taken and dropped after each window), each span's
slice is written once it closes, and each arrow's flow once both slices it binds to have
closed; so the memory it takes does not grow with the trace (beyond the lane table and the
arrows still waiting). The lane metadata comes last, once every lane with spans is known.
The events' order in the file is therefore not time order, which the format does not ask
for. The text is assembled line by line: each interned detail is formatted once, and a
value row as its base's text with the value appended, rather than a dict serialised per
event.
"""

from __future__ import annotations

import io
import json
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from loopscope.tracer.events import NO_LANE, STATE_NAMES, Code
from loopscope.tracer.query import lane_order
from loopscope.tracer.safe_write import write_file
from loopscope.tracer.spans import SpanBuilder, Spans
from loopscope.tracer.trace import Trace
from loopscope.tracer.values import VALUE_ROW

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


class _Args:
    """The `args` object of an event as JSON text. An interned detail is formatted once per
    (detail, source); a value row (most are seen once) as its base detail's text, formatted
    once per base, with the value's text appended: the same text json.dumps gives its dict."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        # by detail << 32 | source; value rows are never kept (most are seen once)
        self.cache: dict[int, str] = {}
        self._value_prefixes: dict[int, str | None] = {}

    def get(self, detail: int, source: int = 0) -> str:
        key = detail << 32 | source
        text = self.cache.get(key)
        if text is None:
            if detail >= VALUE_ROW:
                return self._value_row(detail, source)
            text = self.cache[key] = self.build(self.trace.details[detail], source)
        return text

    def build(self, detail: dict[str, Any], source: int) -> str:
        args = dict(detail)
        if source:
            filename, line, function = self.trace.sources[source]
            args["source"] = f"{filename}:{line}"
            args["function"] = function
        return _json(args)

    def _value_row(self, detail: int, source: int) -> str:
        values, row = self.trace.details.values, detail - VALUE_ROW
        base = values.bases[row]
        text = values.texts[values.ends[row - 1] if row else 0 : values.ends[row]].decode(
            "utf-8", "replace")
        prefix = self._value_prefixes.get(base, "") if not source else None
        if prefix == "":
            prefix = self._value_prefixes[base] = self._prefix(self.trace.details[base])
        if prefix is None:  # the slow way, for the rare row it does not fit
            return self.build(self.trace.details[detail], source)
        return f"{prefix}{encode_basestring(text)}}}"

    @staticmethod
    def _prefix(base: dict[str, Any]) -> str | None:
        """The JSON of a value row with base `base` up to its value (tracer.values.
        value_detail: the value goes last, under "value" or the key the base names); None
        when the key is already in the base, which keeps its place there instead."""
        key = base.get("value_key")
        row = {name: value for name, value in base.items() if name != "value_key"}
        name = "value" if key is None else str(key)
        if name in row:
            return None
        opening = _json(row)[:-1]
        return f"{opening}{',' if row else ''}{_json(name)}:"


def _micros(ns: int) -> str:
    return f"{ns // 1000}.{ns % 1000:03d}" if ns >= 0 else micros(ns)


def _inside(start: int, end: int, ts: int) -> int:
    """`ts` moved strictly inside the span [start, end] when it is at least 2 ns long."""
    if end - start < 2:
        return start
    return min(max(ts, start + 1), end - 1)


# An arrow waiting for its slices: [seq, source lane, target lane, source span, target span,
# the target's fallback span]. A span is (start, end) once closed, the seq that began it while
# it is open, or None when there is none; the target span is _NEXT until the target lane's
# next span begins (the fallback -- its span at the arrow -- serves if none ever does).
_NEXT = -2
_SEQ, _FROM, _TO, _SOURCE, _TARGET, _FALLBACK = range(6)
SpanRef = tuple[int, int] | int | None


class _Window:
    """The spans one window of the fold closed, looked up by lane and by the seq that began
    them."""

    def __init__(self, spans: Spans) -> None:
        self.spans = spans
        self._starts: dict[int, list[int]] = {}

    def starts(self, lane: int) -> list[int]:
        """The seqs that began the lane's spans in this window, in order."""
        found = self._starts.get(lane)
        if found is None:
            indices = self.spans.by_lane.get(lane, ())
            start_seq = self.spans.start_seq
            found = self._starts[lane] = [start_seq[i] for i in indices]
        return found

    def span(self, lane: int, position: int) -> tuple[int, int]:
        index = self.spans.by_lane[lane][position]
        return self.spans.start[index], self.spans.end[index]


class _ChromeStream:
    """The fold and the bookkeeping of the arrows waiting for their slices."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.builder = SpanBuilder()
        self.args = _Args(trace)
        # lane -> (seq that began it, start, end) of its last span closed before this window
        self.last: dict[int, tuple[int, int, int]] = {}
        self.waiting: list[list[Any]] = []
        self.names = {code: _json(name) for code, name in STATE_NAMES.items()}

    def batches(self) -> Iterator[list[str]]:
        """The export's events, one JSON object per string, a window's worth at a time."""
        trace = self.trace
        for stop in range(_WINDOW, len(trace) + _WINDOW, _WINDOW):
            self.builder.feed(trace, min(stop, len(trace)))
            yield self._window(final=False)
        self.builder.finish(trace.duration_ns)
        yield self._window(final=True)
        yield list(_metadata_lines(trace, Spans(by_lane=dict.fromkeys(self.last, array("i")))))
        yield list(_instant_lines(trace))

    def _window(self, final: bool) -> list[str]:
        spans = self.builder.take_spans()
        lines = self._slices(spans)
        window = _Window(spans)
        settle, flow = self._settle, self._flow
        still = []
        for arrow in self.waiting:
            if not settle(arrow, window, final):
                still.append(arrow)
            elif arrow[_SOURCE] is not None and arrow[_TARGET] is not None:
                flow(arrow, lines)
        # The usual arrow binds to two spans this window closed: its flow is written at once,
        # here; any other goes the general way (_arrow, _settle), waiting if it must.
        trace, open_spans = self.trace, self.builder.open_spans
        by_lane, span_start, span_end = spans.by_lane, spans.start, spans.end
        begun_at, no_spans = spans.start_seq.__getitem__, array("i")
        code_col, lane_col, other_col, ts_col = trace.code, trace.lane, trace.other, trace.ts
        detail_col, args_of, wake = trace.detail, self.args.get, int(Code.WAKE)
        cached = self.args.cache.get
        for seq in spans.arrow_seq:
            code = code_col[seq]
            if code == wake:
                source_lane, target_lane = other_col[seq], lane_col[seq]
            else:
                source_lane, target_lane = lane_col[seq], other_col[seq]
            current = open_spans.get(source_lane)
            source_spans = by_lane.get(source_lane, no_spans)
            target_spans = by_lane.get(target_lane, no_spans)
            source_at = bisect_right(source_spans, seq, key=begun_at) - 1
            target_at = bisect_left(target_spans, seq + 1, key=begun_at)
            if (source_lane == NO_LANE or target_lane == NO_LANE or source_at < 0
                    or (current is not None and current[4] <= seq)
                    or target_at == len(target_spans)):
                general = self._arrow(seq, window)
                if general is None:
                    continue
                if not settle(general, window, final):
                    still.append(general)
                elif general[_SOURCE] is not None and general[_TARGET] is not None:
                    flow(general, lines)
                continue
            # _inside, inlined: the source's moment and the target's start, strictly inside
            index = source_spans[source_at]
            start, end = span_start[index], span_end[index]
            begin = start if end - start < 2 else min(max(ts_col[seq], start + 1), end - 1)
            index = target_spans[target_at]
            start, end = span_start[index], span_end[index]
            finish = max(begin, start if end - start < 2 else start + 1)
            name = ARROW_NAMES[code]
            detail = detail_col[seq]
            args = cached(detail << 32) or args_of(detail)
            lines.append(
                f'{{"ph":"s","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
                f'"tid":{source_lane + 1},"ts":{begin // 1000}.{begin % 1000:03d},'
                f'"args":{args}}}'
                if begin >= 0 else
                f'{{"ph":"s","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
                f'"tid":{source_lane + 1},"ts":{micros(begin)},"args":{args}}}'
            )
            lines.append(
                f'{{"ph":"f","bp":"e","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
                f'"tid":{target_lane + 1},"ts":{_micros(finish)}}}'
            )
        self.waiting = still
        last = self.last
        for lane, indices in by_lane.items():
            index = indices[-1]
            last[lane] = (spans.start_seq[index], span_start[index], span_end[index])
        return lines

    def _slices(self, spans: Spans) -> list[str]:
        names, args_of, cached = self.names, self.args.get, self.args.cache.get
        rows = zip(spans.lane, spans.state, spans.start, spans.end, spans.detail,
                   spans.source, strict=True)
        if not spans.annotated and (not spans.start or min(spans.start) >= 0):
            # the usual case, kept to one expression: times formatted in place
            return [
                f'{{"ph":"X","name":{names[state]},"cat":"state","pid":{PID},'
                f'"tid":{lane + 1},"ts":{start // 1000}.{start % 1000:03d},'
                f'"dur":{(end - start) // 1000}.{(end - start) % 1000:03d},'
                f'"args":{cached(detail << 32 | source) or args_of(detail, source)}}}'
                for lane, state, start, end, detail, source in rows
            ]
        annotated, build = spans.annotated, self.args.build
        lines = []
        for index, (lane, state, start, end, detail, source) in enumerate(rows):
            merged = annotated.get(index)
            args = args_of(detail, source) if merged is None else build(merged, source)
            lines.append(
                f'{{"ph":"X","name":{names[state]},"cat":"state","pid":{PID},'
                f'"tid":{lane + 1},"ts":{micros(start)},"dur":{micros(end - start)},'
                f'"args":{args}}}'
            )
        return lines

    def _span_at(self, lane: int, seq: int, window: _Window) -> SpanRef:
        """The lane's last span begun at or before `seq` (open or not), as far as the fold has
        gone: its (start, end), the seq that began it while open, or None."""
        begun = self.builder.open_start_seq(lane)
        if begun is not None and begun <= seq:
            return begun
        starts = window.starts(lane)
        position = bisect_right(starts, seq) - 1
        if position >= 0:
            return window.span(lane, position)
        last = self.last.get(lane)
        return None if last is None else (last[1], last[2])

    def _arrow(self, seq: int, window: _Window) -> list[Any] | None:
        trace = self.trace
        if trace.code[seq] == Code.WAKE:
            source_lane, target_lane = trace.other[seq], trace.lane[seq]
        else:
            source_lane, target_lane = trace.lane[seq], trace.other[seq]
        if source_lane == NO_LANE or target_lane == NO_LANE:
            return None
        return [seq, source_lane, target_lane, self._span_at(source_lane, seq, window), _NEXT,
                self._span_at(target_lane, seq, window)]

    def _settle(self, arrow: list[Any], window: _Window, final: bool) -> bool:
        """Moves the arrow's spans on as far as this window allows; whether both are known
        (closed, or known not to exist)."""
        seq, source_lane, target_lane = arrow[_SEQ], arrow[_FROM], arrow[_TO]
        if arrow[_TARGET] == _NEXT:
            starts = window.starts(target_lane)
            position = bisect_left(starts, seq + 1)
            if position < len(starts):
                arrow[_TARGET] = window.span(target_lane, position)
            else:
                begun = self.builder.open_start_seq(target_lane)
                if begun is not None and begun > seq:
                    arrow[_TARGET] = begun
                elif final:
                    arrow[_TARGET] = arrow[_FALLBACK]
        for slot, lane in ((_SOURCE, source_lane), (_TARGET, target_lane),
                           (_FALLBACK, target_lane)):
            ref = arrow[slot]
            if type(ref) is int and ref != _NEXT:  # open when last seen: closed here?
                starts = window.starts(lane)
                position = bisect_left(starts, ref)
                if position < len(starts) and starts[position] == ref:
                    arrow[slot] = window.span(lane, position)
        return type(arrow[_SOURCE]) is not int and type(arrow[_TARGET]) is not int

    def _flow(self, arrow: list[Any], lines: list[str]) -> None:
        trace, seq = self.trace, arrow[_SEQ]
        (source_start, source_end), (target_start, target_end) = arrow[_SOURCE], arrow[_TARGET]
        begin = _inside(source_start, source_end, trace.ts[seq])
        finish = max(begin, _inside(target_start, target_end, target_start))
        name = ARROW_NAMES[trace.code[seq]]
        lines.append(
            f'{{"ph":"s","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
            f'"tid":{arrow[_FROM] + 1},"ts":{_micros(begin)},'
            f'"args":{self.args.get(trace.detail[seq])}}}'
        )
        lines.append(
            f'{{"ph":"f","bp":"e","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
            f'"tid":{arrow[_TO] + 1},"ts":{_micros(finish)}}}'
        )


def _instant_lines(trace: Trace) -> Iterator[str]:
    codes = trace.code
    if not any(code in codes for code in INSTANT_CODES):
        return
    args = _Args(trace)
    for seq, code in enumerate(codes):
        name = INSTANT_CODES.get(code)
        if name is not None:
            yield (
                f'{{"ph":"i","s":"t","name":"{name}","cat":"{name}","pid":{PID},'
                f'"tid":{trace.lane[seq] + 1},"ts":{micros(trace.ts[seq])},'
                f'"args":{args.get(trace.detail[seq])}}}'
            )


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
