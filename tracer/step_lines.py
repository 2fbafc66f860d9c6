"""Which line a lane is on at a step: where it resumed, or, once it has stopped, where it stopped.

A RUNNING event's source is where its lane resumed: for a generator or a task's first step
that is the `def` line, since nothing of its body has run yet. Where a step stopped (the
`yield`, the `await`, the `send()` it handed over at) is not an event's source of its own, but
it is where the lane resumes next: the source of its next RUNNING. So once a lane has handed
over (a switch) or waits (any state but running), the line it is on is its next RUNNING's;
before that it is the line it resumed at, and for a first step, the body's first line -- or,
once it has printed in this step, the line of its last print (an OUTPUT's source).

`LaneLines` indexes, per lane, the RUNNING events that name a source and the events at which
the lane stops running, incrementally as a live trace grows (no Qt; the app's source pane and
the narration read it).
"""

from __future__ import annotations

import ast
import bisect
import weakref
from typing import Any

from loopscope.tracer.events import Code, LaneKind
from loopscope.tracer.source_files import source_text
from loopscope.tracer.trace import Trace

# Lanes whose first RUNNING is already somewhere inside their code (the program's main
# flow, a loop, a select server's connection, pool work), not at the start of a function.
_STARTED_INSIDE = frozenset({LaneKind.MAIN, LaneKind.LOOP, LaneKind.CONNECTION, LaneKind.THREAD})


class LaneLines:
    """Per lane, the RUNNING events with a source, the events where it stops running and
    the OUTPUT events that name the line that printed."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self._scanned = 0
        self._runs: dict[int, list[int]] = {}
        self._stops: dict[int, list[int]] = {}
        self._prints: dict[int, list[int]] = {}

    def _catch_up(self) -> None:
        trace, start = self.trace, self._scanned
        end = len(trace)
        if end <= start:
            return
        import numpy as np  # here: `loopscope narrate`'s imports stay light until it reads

        code = np.frombuffer(trace.code, dtype=np.int8, count=end)[start:]
        source = np.frombuffer(trace.source, dtype=np.int32, count=end)[start:]
        lane = np.frombuffer(trace.lane, dtype=np.int32, count=end)[start:]
        runs = (code == Code.RUNNING) & (source != 0)
        # A lane stops running at any other state of its own, or where it hands over.
        stops = ((code < Code.SPAWN) & (code != Code.RUNNING)) | (code == Code.SWITCH) \
            | (code == Code.END)
        prints = (code == Code.OUTPUT) & (source != 0)
        for offset in np.nonzero(runs | stops | prints)[0].tolist():
            table = self._runs if runs[offset] else self._prints if prints[offset] else self._stops
            table.setdefault(int(lane[offset]), []).append(start + offset)
        self._scanned = end

    def at(self, cursor: int) -> list[tuple[int, int]]:
        """(lane, seq of its last RUNNING event with a source) at or before `cursor`, the
        lane that ran most recently first."""
        self._catch_up()
        found = []
        for lane, seqs in self._runs.items():
            index = bisect.bisect_right(seqs, cursor) - 1
            if index >= 0:
                found.append((lane, seqs[index]))
        found.sort(key=lambda pair: -pair[1])
        return found

    def next_run(self, lane: int, seq: int) -> int | None:
        """The lane's first RUNNING event with a source after `seq`, if recorded yet."""
        self._catch_up()
        seqs = self._runs.get(lane, [])
        index = bisect.bisect_right(seqs, seq)
        return seqs[index] if index < len(seqs) else None

    def first_body_line(self, lane: int, run: int) -> int | None:
        """When `run` is the lane's first RUNNING and its source is a function's `def` line
        (nothing of the body has run yet), the line the body starts at; else None."""
        self._catch_up()
        seqs = self._runs.get(lane)
        if not seqs or seqs[0] != run:
            return None
        trace = self.trace
        info = trace.lanes[lane] if lane < len(trace.lanes) else None
        if info is None or info.kind in _STARTED_INSIDE:
            return None
        filename, line, _ = trace.sources[trace.source[run]]
        return body_start(trace.meta, filename, line)

    def stopped_by(self, lane: int, run: int, cursor: int) -> bool:
        """The lane's step that began at `run` has stopped at or before `cursor`."""
        self._catch_up()
        seqs = self._stops.get(lane, [])
        index = bisect.bisect_right(seqs, run)
        return index < len(seqs) and seqs[index] <= cursor

    def last_print(self, lane: int, run: int, cursor: int) -> int | None:
        """The lane's last OUTPUT with a source after `run` and at or before `cursor`."""
        self._catch_up()
        seqs = self._prints.get(lane, [])
        index = bisect.bisect_right(seqs, cursor) - 1
        return seqs[index] if index >= 0 and seqs[index] > run else None

    def line_at(self, lane: int, run: int, cursor: int) -> tuple[str, int]:
        """(file, line) `lane` is on at `cursor`, given its last RUNNING `run` at or before
        it: once the step has stopped, where it stopped (its next RUNNING's source, when
        recorded yet); else the line of its last print in this step, else where it resumed,
        or for a first step the body's first line."""
        trace = self.trace
        if self.stopped_by(lane, run, cursor):
            following = self.next_run(lane, run)
            if following is not None:
                filename, line, _ = trace.sources[trace.source[following]]
                return filename, line
        else:
            printed = self.last_print(lane, run, cursor)
            if printed is not None:
                filename, line, _ = trace.sources[trace.source[printed]]
                return filename, line
        filename, line, _ = trace.sources[trace.source[run]]
        return filename, self.first_body_line(lane, run) or line


def body_start(meta: dict[str, Any] | None, filename: str, line: int) -> int | None:
    """The first line of the body of the function defined at `line` of `filename` (its `def`
    or its first decorator), its docstring passed over; None when no function starts there or
    the file is not shown (tracer.source_files)."""
    text = source_text(meta, filename).text
    if text is None or not line:
        return None
    starts = _body_starts.get(filename)
    if starts is None or starts[0] != text:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):  # any file at all
            tree = ast.Module(body=[], type_ignores=[])
        found: dict[int, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
                body = node.body
                first = body[0]
                if (len(body) > 1 and isinstance(first, ast.Expr)
                        and isinstance(first.value, ast.Constant)
                        and isinstance(first.value.value, str)):
                    first = body[1]
                for start in (node.lineno, *(d.lineno for d in node.decorator_list)):
                    found[start] = first.lineno
        if len(_body_starts) >= 64:
            _body_starts.clear()
        starts = _body_starts[filename] = (text, found)
    return starts[1].get(line)


_body_starts: dict[str, tuple[str, dict[int, int]]] = {}


_indexes: dict[int, tuple[weakref.ref[Trace], LaneLines]] = {}


def lane_lines(trace: Trace) -> LaneLines:
    """The trace's LaneLines, made once per trace and caught up as it grows."""
    known = _indexes.get(id(trace))
    if known is not None and known[0]() is trace:
        return known[1]
    for key in [key for key, (ref, _) in _indexes.items() if ref() is None]:
        del _indexes[key]
    lines = LaneLines(trace)
    _indexes[id(trace)] = (weakref.ref(trace), lines)
    return lines
