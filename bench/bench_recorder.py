"""What one event costs the recorder: pure Python against tracer._speedups, side by side.

    .venv/bin/python bench/bench_recorder.py [--events N] [--repeat N]

Both recorders run in this one process (the pure one is tracer/recorder.py loaded a second
time with LOOPSCOPE_PURE_PYTHON=1), with the default clock and batches of 8192 going to a sink
that encodes them as the child's event pipe does. The table shows the median ns per call of
each and the ratio pure/C.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sinks import EncodingSink
from loopscope.tracer import recorder as c_recorder_module
from loopscope.tracer.events import Code

ROOT = Path(__file__).resolve().parent.parent




def load_pure_recorder_module() -> ModuleType:
    previous = os.environ.get("LOOPSCOPE_PURE_PYTHON")
    os.environ["LOOPSCOPE_PURE_PYTHON"] = "1"
    try:
        spec = importlib.util.spec_from_file_location(
            "pure_recorder", ROOT / "tracer" / "recorder.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if previous is None:
            del os.environ["LOOPSCOPE_PURE_PYTHON"]
        else:
            os.environ["LOOPSCOPE_PURE_PYTHON"] = previous
    assert module.SPEEDUPS is None
    return module


def record_two(recorder: Any, events: int) -> None:
    record = recorder.record
    running = int(Code.RUNNING)
    for lane in range(events):
        record(lane & 63, running)


def record_five(recorder: Any, events: int) -> None:
    record = recorder.record
    ready = int(Code.READY)
    for lane in range(events):
        record(lane & 63, ready, lane & 63, 3, 7)


def record_keywords(recorder: Any, events: int) -> None:
    record = recorder.record
    output = int(Code.OUTPUT)
    for lane in range(events):
        record(lane & 63, output, detail=5)


def handoff(recorder: Any, events: int) -> None:
    hand_off = recorder.handoff
    blocked = int(Code.BLOCKED)
    for lane in range(events // 3):
        hand_off(lane & 63, (lane + 1) & 63, 2, blocked, 0, 9)


def empty_loop(recorder: Any, events: int) -> None:
    for _ in range(events):
        pass


CASES: dict[str, tuple[Callable[[Any, int], None], int]] = {
    # name: (body, calls per event): handoff writes three events per call
    "record(lane, code)": (record_two, 1),
    "record(5 positional)": (record_five, 1),
    "record(..., detail=)": (record_keywords, 1),
    "handoff(6) per call": (handoff, 3),
}


def time_case(module: ModuleType, body: Callable[[Any, int], None], events: int) -> float:
    """Seconds for `events` events through a fresh recorder, flushes and encoding included."""
    recorder = module.Recorder(EncodingSink())
    gc.collect()
    start = time.perf_counter()
    body(recorder, events)
    recorder.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    if c_recorder_module.SPEEDUPS is None:
        sys.exit("bench_recorder: tracer._speedups is not built (or LOOPSCOPE_PURE_PYTHON is set)")
    pure_module = load_pure_recorder_module()
    events = options.events

    loop_cost = statistics.median(
        time_case(c_recorder_module, empty_loop, events) for _ in range(options.repeat)
    )
    print(f"python {sys.version.split()[0]}, {events} events, {options.repeat} alternating "
          f"repetitions, medians; ns per call, the bare loop ({loop_cost / events * 1e9:.0f} ns "
          "per iteration) subtracted")
    print(f"{'case':<24} {'pure':>8} {'C':>8} {'pure/C':>7}")
    for name, (body, per_call) in CASES.items():
        body(pure_module.Recorder(EncodingSink()), 10_000)  # warm-up
        body(c_recorder_module.Recorder(EncodingSink()), 10_000)
        pure: list[float] = []
        native: list[float] = []
        for _ in range(options.repeat):
            pure.append(time_case(pure_module, body, events))
            native.append(time_case(c_recorder_module, body, events))
        calls = events // per_call
        bare = loop_cost * calls / events
        pure_ns = (statistics.median(pure) - bare) / calls * 1e9
        native_ns = (statistics.median(native) - bare) / calls * 1e9
        print(f"{name:<24} {pure_ns:>8.0f} {native_ns:>8.0f} {pure_ns / native_ns:>6.1f}x",
              flush=True)


if __name__ == "__main__":
    main()
