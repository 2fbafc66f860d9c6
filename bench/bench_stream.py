"""The event stream, measured: throughput child -> parent, and parent memory per event.

    .venv/bin/python bench/bench_stream.py [--events N] [--memory-events M]

1. Throughput. A real child process records N events (default 2,000,000) through the real
   Recorder as fast as it can; the parent receives them with tracer.runner.Run into a Trace.
   Baseline: a child writing the same number of bytes to a pipe in 64 KiB chunks, read by the
   parent with the same asyncio pipe transport and thrown away. Goal: >= 1,000,000 events/s.
2. Memory. A child sends M events (default 1,000,000) of a realistic mix: several lanes,
   states with fd/timer details, wake and switch arrows, annotations, output lines. The
   parent's cost per event is measured twice: the Trace's own size (array buffers plus the
   interned tables) and tracemalloc's count of what receiving them left allocated.
   Goal: <= 64 bytes/event.

This file is also the child's model (`run`), so the child needs nothing but this file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import tracemalloc
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loopscope.tracer.events import Code, LaneKind
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.runner import Run
from loopscope.tracer.stream import EVENT_SIZE
from loopscope.tracer.target import Target
from loopscope.tracer.trace import Trace

EVENTS_VARIABLE = "LOOPSCOPE_BENCH_EVENTS"
MIX_VARIABLE = "LOOPSCOPE_BENCH_MIX"
GOAL_EVENTS_PER_S = 1_000_000
GOAL_BYTES_PER_EVENT = 64


# -- the child's side ---------------------------------------------------------------------


def run(recorder: Recorder, program: Program) -> None:
    """The child's model: emit the requested number of events, flat out or as a mix."""
    count = int(os.environ[EVENTS_VARIABLE])
    if os.environ.get(MIX_VARIABLE) == "1":
        _realistic_mix(recorder, count)
    else:
        _flat_out(recorder, count)


def _flat_out(recorder: Recorder, count: int) -> None:
    lane = recorder.spawn("bench", LaneKind.MAIN)
    record = recorder.record
    running, ready = Code.RUNNING, Code.READY
    for _ in range((count - 1) // 2):
        record(lane, running)
        record(lane, ready)
    while recorder.event_count < count:
        record(lane, running)


def _realistic_mix(recorder: Recorder, count: int) -> None:
    """A loop lane and 32 task lanes cycling through what an asyncio server records."""
    loop = recorder.spawn("loop", LaneKind.LOOP)
    tasks = [recorder.spawn(f"task-{i}", LaneKind.TASK, parent=loop) for i in range(32)]
    sources = [recorder.source("/srv/app.py", line, "handler") for line in range(10, 60)]
    cycle = 0
    while recorder.event_count < count:
        task = tasks[cycle % len(tasks)]
        fd = 10 + cycle % 64
        recorder.state(loop, Code.POLL, ("timeout_s", None))
        recorder.annotate(loop, ("readable", (fd,), "writable", ()))
        recorder.state(loop, Code.DISPATCH)
        recorder.wake(task, loop, ("cause", "fd", "fd", fd, "mode", "read"))
        recorder.state(task, Code.RUNNING, source=sources[cycle % len(sources)])
        if cycle % 16 == 0:
            recorder.record(task, Code.OUTPUT, detail=recorder.detail(("text", f"req {cycle}")))
        recorder.switch(task, loop, ("via", "yield"))
        recorder.state(task, Code.IO_WAIT, ("fd", fd, "mode", "read", "peer", f"127.0.0.1:{fd}"))
        cycle += 1


_RAW_CHILD = """
import os, sys
fd, total = int(sys.argv[1]), int(sys.argv[2])
chunk = bytes(65536)
with open(fd, "wb", buffering=0) as out:
    while total > 0:
        total -= out.write(chunk[: min(total, len(chunk))])
"""


# -- the parent's side --------------------------------------------------------------------


def _target() -> Target:
    module = "bench.bench_stream"
    return Target("scenario", "bench-stream", (), module, module)


async def _stream(count: int, mix: bool) -> tuple[Trace, float, float]:
    """Runs the child; returns the trace, the wall time and the time from first to last batch."""
    os.environ[EVENTS_VARIABLE] = str(count)
    os.environ[MIX_VARIABLE] = "1" if mix else "0"
    trace = Trace()
    first_batch: list[float] = []
    trace.listeners.append(lambda first, n: first_batch or first_batch.append(time.perf_counter()))
    began = time.perf_counter()
    run_ = Run(_target(), trace=trace)
    await run_.start()
    result = await run_.wait()
    ended = time.perf_counter()
    if not result.ok:
        raise SystemExit(f"bench_stream: the child failed: {result.error}\n{result.stderr}")
    return trace, ended - began, ended - first_batch[0]


async def _raw_pipe(total_bytes: int) -> float:
    """Seconds for a child to push `total_bytes` through a pipe to this process's loop."""
    loop = asyncio.get_running_loop()
    read_end, write_end = os.pipe()
    received = 0
    done = loop.create_future()

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            nonlocal received
            received += len(data)

        def connection_lost(self, exc: Exception | None) -> None:
            done.set_result(None)

    began = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _RAW_CHILD, str(write_end), str(total_bytes), pass_fds=(write_end,)
    )
    os.close(write_end)
    await loop.connect_read_pipe(Sink, open(read_end, "rb", buffering=0))  # noqa: SIM115
    await done
    await process.wait()
    elapsed = time.perf_counter() - began
    assert received == total_bytes, (received, total_bytes)
    return elapsed


def trace_size(trace: Trace) -> int:
    """The bytes a Trace holds: its columns' buffers plus its tables, counted deeply."""
    columns = (trace.ts, trace.lane, trace.code, trace.other, trace.detail, trace.source)
    size = sum(sys.getsizeof(column) for column in columns)
    size += _deep_size(trace.details) + _deep_size(trace.sources) + _deep_size(trace.lanes)
    return size


def _deep_size(value: Any, seen: set[int] | None = None) -> int:
    seen = set() if seen is None else seen
    if id(value) in seen:
        return 0
    seen.add(id(value))
    size = sys.getsizeof(value)
    if isinstance(value, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in value.items())
    elif isinstance(value, list | tuple | set):
        size += sum(_deep_size(item, seen) for item in value)
    elif hasattr(value, "__dict__") and not isinstance(value, type | array):
        size += _deep_size(vars(value), seen)
    return size


def throughput(count: int) -> None:
    print(f"1. stream throughput: {count:,} events from a child, real pipe, into a Trace")
    trace, wall, streaming = asyncio.run(_stream(count, mix=False))
    assert len(trace) == count, (len(trace), count)
    raw = asyncio.run(_raw_pipe(count * EVENT_SIZE))
    events_per_s = count / wall
    raw_bytes_per_s = count * EVENT_SIZE / raw
    stream_bytes_per_s = count * EVENT_SIZE / wall
    print(f"   stream:   {wall:6.3f} s wall ({streaming:6.3f} s first batch to last)"
          f"  {events_per_s:12,.0f} events/s  ({stream_bytes_per_s / 1e6:7.1f} MB/s of columns)")
    print(f"   raw pipe: {raw:6.3f} s wall, same {count * EVENT_SIZE / 1e6:.1f} MB"
          f"                  {raw_bytes_per_s / 1e6:7.1f} MB/s")
    print(f"   ratio stream/raw pipe (bytes/s): {stream_bytes_per_s / raw_bytes_per_s:.3f}")
    print(f"   goal >= {GOAL_EVENTS_PER_S:,} events/s: ratio {events_per_s / GOAL_EVENTS_PER_S:.2f}"
          f" -> {'met' if events_per_s >= GOAL_EVENTS_PER_S else 'NOT met'}")


def memory(count: int) -> None:
    print(f"2. parent memory: {count:,} events of a realistic mix, received from a child")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    trace, _, _ = asyncio.run(_stream(count, mix=True))
    gc.collect()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    events = len(trace)
    held = trace_size(trace)
    columns_only = EVENT_SIZE * events
    print(f"   events {events:,}; lanes {len(trace.lanes)}; details {len(trace.details):,};"
          f" sources {len(trace.sources)}")
    print(f"   Trace size:      {held / events:6.1f} bytes/event"
          f"  (columns alone {columns_only / events:.0f}; ratio to them {held / columns_only:.2f})")
    print(f"   tracemalloc:     {(after - before) / events:6.1f} bytes/event still allocated"
          f" (peak while receiving {(peak - before) / events:.1f})")
    worst = max(held, after - before) / events
    print(f"   goal <= {GOAL_BYTES_PER_EVENT} bytes/event: ratio {worst / GOAL_BYTES_PER_EVENT:.2f}"
          f" -> {'met' if worst <= GOAL_BYTES_PER_EVENT else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--memory-events", type=int, default=1_000_000)
    options = parser.parse_args()
    if options.events < 1 or options.memory_events < 1:
        parser.error("event counts must be positive")
    throughput(options.events)
    memory(options.memory_events)


if __name__ == "__main__":
    main()
