"""Export speed: Chrome JSON and the native format on a synthetic trace of about a million spans.

    .venv/bin/python bench/bench_trace_export.py [SPANS]

Side by side in one run: the straightforward Chrome export (one dict per trace event, each
passed to json.dumps) against tracer.export_chrome, which formats each interned detail once
and assembles lines as strings; and the native save and load. Prints seconds and ratios.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopscope.tracer.events import STATE_NAMES, Code
from loopscope.tracer.export_chrome import write_chrome_json
from loopscope.tracer.native import load_native, save_native
from loopscope.tracer.spans import Spans, derive_spans
from loopscope.tracer.trace import Trace

LANES = 200
STATES = (Code.RUNNING, Code.IO_WAIT, Code.READY, Code.RUNNING, Code.SLEEPING, Code.READY)


def synthetic_trace(spans: int) -> Trace:
    """`spans` state events across LANES lanes, with a wake before every READY."""
    trace = Trace(meta={"target": "synthetic"})
    trace.details.extend([
        {"name": f"task-{lane}", "kind": "task"} for lane in range(LANES)
    ])
    fd_details = len(trace.details)
    trace.details.extend({"fd": fd, "mode": "read", "peer": f"127.0.0.1:{40000 + fd}"}
                         for fd in range(64))
    wake_detail = len(trace.details)
    trace.details.append({"cause": "fd", "fd": 5, "mode": "read"})
    sleep_detail = len(trace.details)
    trace.details.append({"delay_s": 0.01, "deadline_ns": 10_000_000})
    trace.sources.extend(("/src/app.py", line, "handler") for line in range(1, 100))
    ts, lane_col, code, other, detail, source = (array("q"), array("i"), array("b"),
                                                 array("i"), array("i"), array("i"))

    def add(t: int, lane: int, c: int, o: int, d: int, s: int) -> None:
        ts.append(t)
        lane_col.append(lane)
        code.append(c)
        other.append(o)
        detail.append(d)
        source.append(s)

    now = 0
    for lane in range(LANES):
        add(now, lane, Code.SPAWN, -1, 1 + lane, 0)
    for i in range(spans):
        now += 700 + (i * 7919) % 900
        lane = (i * 31) % LANES
        state = STATES[(i // LANES) % len(STATES)]
        if state == Code.READY:
            add(now, lane, Code.WAKE, (lane + 1) % LANES, wake_detail, 0)
            add(now, lane, Code.READY, (lane + 1) % LANES, wake_detail, 0)
        elif state == Code.IO_WAIT:
            add(now, lane, state, -1, fd_details + i % 64, 0)
        elif state == Code.SLEEPING:
            add(now, lane, state, -1, sleep_detail, 0)
        else:
            add(now, lane, state, -1, 0, 1 + i % 99)
    trace.extend_columns(0, (ts, lane_col, code, other, detail, source))
    return trace


def baseline_chrome(trace: Trace, spans: Spans, out: io.StringIO) -> None:
    """The obvious export: a dict per event, json.dumps each."""
    events: list[str] = []
    for i in range(len(spans)):
        args: dict[str, Any] = dict(spans.detail_of(i, trace))
        if spans.source[i]:
            filename, line, function = trace.sources[spans.source[i]]
            args["source"] = f"{filename}:{line}"
            args["function"] = function
        events.append(json.dumps({
            "ph": "X", "name": STATE_NAMES[spans.state[i]], "cat": "state", "pid": 1,
            "tid": spans.lane[i] + 1, "ts": spans.start[i] / 1000,
            "dur": (spans.end[i] - spans.start[i]) / 1000, "args": args,
        }))
    for seq in spans.arrow_seq:
        for ph, lane in (("s", trace.other[seq]), ("f", trace.lane[seq])):
            events.append(json.dumps({
                "ph": ph, "id": seq, "name": "wake", "cat": "wake", "pid": 1, "tid": lane + 1,
                "ts": trace.ts[seq] / 1000, "bp": "e",
            }))
    out.write('{"traceEvents":[' + ",\n".join(events) + "]}")


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    trace = synthetic_trace(count)
    spans = derive_spans(trace)
    print(f"{len(trace):,} events, {len(spans):,} spans, {len(spans.arrow_seq):,} arrows")

    baseline = timed(lambda: baseline_chrome(trace, spans, io.StringIO()))
    ours = timed(lambda: write_chrome_json(trace, io.StringIO()))
    print(f"chrome json, dict + json.dumps per event : {baseline:6.2f} s (spans given)")
    print(f"chrome json, tracer.export_chrome        : {ours:6.2f} s  "
          f"({baseline / ours:.2f}x faster, folding the spans itself as it streams, with "
          f"arrows bound to slices and instants)")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.loopscope"
        save = timed(lambda: save_native(trace, path))
        load = timed(lambda: load_native(path))
        size = path.stat().st_size
    print(f"native save: {save:6.2f} s, load: {load:6.2f} s, "
          f"{size / 1e6:.1f} MB ({size / len(trace):.2f} bytes per event); "
          f"save is {ours / save:.1f}x faster than the chrome export")


if __name__ == "__main__":
    main()
