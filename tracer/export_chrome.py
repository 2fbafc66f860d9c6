"""Chrome Trace Event JSON (the format ui.perfetto.dev and chrome://tracing open).

One process; one thread per lane (named by `thread_name` metadata, ordered loop lanes first by
`thread_sort_index`); one complete ("X") slice per state span, named by its state, with the
span's detail and source location in `args`; a flow ("s" -> "f") per wake and switch arrow;
thread-scoped instants ("i") for printed lines, ends and marks.

Flow events bind to slices, not to moments: a flow start binds to the slice enclosing it on
the source lane, a flow end with `"bp":"e"` to the slice enclosing it on the target lane. Both
are therefore placed strictly inside their slice (one ns in from an edge where the slice is
long enough), so that a slice ending at the very instant of the arrow cannot capture it.

The file is written as text assembled line by line: formatting each interned detail once and
reusing the string is several times faster than serialising a dict per span.
"""

from __future__ import annotations

import io
import json
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from loopscope.tracer.events import NO_LANE, STATE_NAMES, Code
from loopscope.tracer.query import lane_order
from loopscope.tracer.safe_write import write_file
from loopscope.tracer.spans import Spans, derive_spans
from loopscope.tracer.trace import Trace

PID = 1
INSTANT_CODES: dict[int, str] = {Code.OUTPUT: "output", Code.END: "end", Code.MARK: "mark"}
ARROW_NAMES: dict[int, str] = {Code.WAKE: "wake", Code.SWITCH: "switch"}
_LINES_PER_WRITE = 20000


def thread_id(lane: int) -> int:
    """The Chrome `tid` of a lane (lane ids start at 0; tid 0 means "no thread" to some tools)."""
    return lane + 1


def micros(ns: int) -> str:
    """Nanoseconds as a JSON number of microseconds, exact to the nanosecond."""
    return f"{ns // 1000}.{ns % 1000:03d}" if ns >= 0 else f"-{micros(-ns)}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


def _metadata_lines(trace: Trace, spans: Spans) -> Iterator[str]:
    process = f"loopscope: {trace.meta.get('target', 'trace')}"
    yield (
        f'{{"ph":"M","name":"process_name","pid":{PID},"tid":0,'
        f'"args":{{"name":{_json(process)}}}}}'
    )
    for position, (lane, name, _kind) in enumerate(lane_order(trace, spans)):
        tid = thread_id(lane)
        yield (
            f'{{"ph":"M","name":"thread_name","pid":{PID},"tid":{tid},'
            f'"args":{{"name":{_json(name)}}}}}'
        )
        yield (
            f'{{"ph":"M","name":"thread_sort_index","pid":{PID},"tid":{tid},'
            f'"args":{{"sort_index":{position}}}}}'
        )


class _ArgsCache:
    """The `args` object of a span as a JSON string, formatted once per (detail, source)."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._cache: dict[tuple[int, int], str] = {}

    def get(self, detail: int, source: int) -> str:
        key = (detail, source)
        text = self._cache.get(key)
        if text is None:
            text = self._cache[key] = self.build(self.trace.details[detail], source)
        return text

    def build(self, detail: dict[str, Any], source: int) -> str:
        args = dict(detail)
        if source:
            filename, line, function = self.trace.sources[source]
            args["source"] = f"{filename}:{line}"
            args["function"] = function
        return _json(args)


def _slice_lines(trace: Trace, spans: Spans) -> Iterator[str]:
    names = {code: _json(name) for code, name in STATE_NAMES.items()}
    args_cache = _ArgsCache(trace)
    annotated = spans.annotated
    rows = zip(spans.lane, spans.state, spans.start, spans.end, spans.detail, spans.source,
               strict=True)
    for index, (lane, state, start, end, detail, source) in enumerate(rows):
        merged = annotated.get(index)
        args = args_cache.get(detail, source) if merged is None else args_cache.build(merged,
                                                                                    source)
        yield (
            f'{{"ph":"X","name":{names[state]},"cat":"state","pid":{PID},'
            f'"tid":{lane + 1},"ts":{micros(start)},"dur":{micros(end - start)},"args":{args}}}'
        )


class _LaneSpanIndex:
    """Finds, per lane, the span open at an event and the first span starting after it."""

    def __init__(self, spans: Spans) -> None:
        self.spans = spans
        self._starts = {
            lane: [spans.start_seq[i] for i in indices] for lane, indices in spans.by_lane.items()
        }

    def open_at(self, lane: int, seq: int) -> int | None:
        starts = self._starts.get(lane)
        if not starts:
            return None
        position = bisect_right(starts, seq) - 1
        return self.spans.by_lane[lane][position] if position >= 0 else None

    def next_after(self, lane: int, seq: int) -> int | None:
        starts = self._starts.get(lane)
        if not starts:
            return None
        position = bisect_left(starts, seq + 1)
        if position < len(starts):
            return self.spans.by_lane[lane][position]
        return self.open_at(lane, seq)


def _inside(spans: Spans, index: int, ts: int) -> int:
    """`ts` moved strictly inside span `index` when the span is at least 2 ns long."""
    start, end = spans.start[index], spans.end[index]
    if end - start < 2:
        return start
    return min(max(ts, start + 1), end - 1)


def _flow_lines(trace: Trace, spans: Spans) -> Iterator[str]:
    index = _LaneSpanIndex(spans)
    args_by_detail: dict[int, str] = {}
    for seq in spans.arrow_seq:
        code = trace.code[seq]
        if code == Code.WAKE:
            source_lane, target_lane = trace.other[seq], trace.lane[seq]
        else:
            source_lane, target_lane = trace.lane[seq], trace.other[seq]
        if source_lane == NO_LANE or target_lane == NO_LANE:
            continue
        source_span = index.open_at(source_lane, seq)
        target_span = index.next_after(target_lane, seq)
        if source_span is None or target_span is None:
            continue
        ts = trace.ts[seq]
        begin = _inside(spans, source_span, ts)
        finish = max(begin, _inside(spans, target_span, spans.start[target_span]))
        name = ARROW_NAMES[code]
        detail = trace.detail[seq]
        args = args_by_detail.get(detail)
        if args is None:
            args = args_by_detail[detail] = _json(trace.details[detail])
        yield (
            f'{{"ph":"s","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
            f'"tid":{source_lane + 1},"ts":{micros(begin)},"args":{args}}}'
        )
        yield (
            f'{{"ph":"f","bp":"e","id":{seq},"name":"{name}","cat":"{name}","pid":{PID},'
            f'"tid":{target_lane + 1},"ts":{micros(finish)}}}'
        )


def _instant_lines(trace: Trace) -> Iterator[str]:
    codes = trace.code
    if not any(code in codes for code in INSTANT_CODES):
        return
    for seq, code in enumerate(codes):
        name = INSTANT_CODES.get(code)
        if name is not None:
            args = _json(trace.details[trace.detail[seq]])
            yield (
                f'{{"ph":"i","s":"t","name":"{name}","cat":"{name}","pid":{PID},'
                f'"tid":{trace.lane[seq] + 1},"ts":{micros(trace.ts[seq])},"args":{args}}}'
            )


def chrome_lines(trace: Trace, spans: Spans | None = None) -> Iterator[str]:
    """Every trace event of the export, one JSON object per string, in file order."""
    spans = derive_spans(trace) if spans is None else spans
    yield from _metadata_lines(trace, spans)
    yield from _slice_lines(trace, spans)
    yield from _flow_lines(trace, spans)
    yield from _instant_lines(trace)


def write_chrome_json(trace: Trace, out: TextIO, spans: Spans | None = None) -> None:
    """Writes the whole JSON document: {"traceEvents": [...], "otherData": meta}."""
    out.write('{"displayTimeUnit":"ms","otherData":')
    out.write(_json({str(k): v for k, v in trace.meta.items()}))
    out.write(',\n"traceEvents":[\n')
    chunk: list[str] = []
    first = True
    for line in chrome_lines(trace, spans):
        chunk.append(line)
        if len(chunk) >= _LINES_PER_WRITE:
            out.write(("" if first else ",\n") + ",\n".join(chunk))
            first = False
            chunk = []
    if chunk:
        out.write(("" if first else ",\n") + ",\n".join(chunk))
    out.write("\n]}\n")


def save_chrome_json(trace: Trace, path: str | Path, spans: Spans | None = None) -> None:
    """Writes the JSON all or nothing (tracer.safe_write); OutputError when it cannot."""

    def write(out: BinaryIO) -> None:
        text = io.TextIOWrapper(out, encoding="utf-8")
        write_chrome_json(trace, text, spans)
        text.flush()
        text.detach()  # the file is closed by the writer, not by the wrapper

    write_file(path, write)
