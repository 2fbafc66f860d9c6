"""Stepping latency, tracer side: a step command sent -> the step's events in the parent.

    .venv/bin/python bench/bench_step_latency.py [--loaded N] [--steps K]

A real child runs a generator program that never ends (a producer handing items to a
consumer with send()). It first runs freely until the parent's trace holds N events
(default 100,000), then a Stepper holds it and takes K steps (default 300) of two kinds:

- "event": one event, the least a step can be: one command, one event, one held mark back;
- "step":  the next narrated step (tracer.stepping's search and tracer.narrate included),
           counting only the steps that needed the child to run (a generator hand-off sends
           three events at once, so the step after it is often already in the trace).

Baseline: the plain pipe round trip. A real child reads a line from a pipe and answers with
one byte on another; the parent sends and awaits the answer on the same kind of asyncio
loop. The ratio says what stepping costs on top of the two pipes it cannot do without. The
app's budget for a step key press to the repainted view is 50 ms; this is the part of it
that the tracer spends.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loopscope.tracer.runner import Run
from loopscope.tracer.stepping import StepKind, Stepper
from loopscope.tracer.target import Target

ENDLESS_PRODUCER = """
def consumer():
    reply = None
    while True:
        item = yield reply
        reply = item * 2

worker = consumer()
worker.send(None)
item = 0
while True:
    item += 1
    worker.send(item)
"""

ECHO_CHILD = textwrap.dedent("""
    import os, sys
    read = sys.stdin.buffer.raw
    while read.readline():
        os.write(1, b"!")
""")


async def pipe_round_trips(count: int) -> list[float]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", ECHO_CHILD,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    times = []
    for _ in range(count):
        started = time.perf_counter()
        child.stdin.write(b"go\n")
        await child.stdin.drain()
        await child.stdout.readexactly(1)
        times.append(time.perf_counter() - started)
    child.stdin.close()
    await child.wait()
    return times


async def step_latencies(loaded: int, count: int, script: Path) -> dict[str, list[float]]:
    run = Run(Target("script", str(script), (), "generator", str(script)))
    stepper = Stepper(run)
    await run.start()
    try:
        while len(run.trace) < loaded:
            await asyncio.sleep(0.01)
        await stepper.pause()
        print(f"held with {len(run.trace):,} events in the trace")
        times: dict[str, list[float]] = {"event": [], "step": [], "step-known": []}
        kinds: tuple[StepKind, ...] = ("event", "step")
        for kind in kinds:
            while len(times[kind]) < count:
                received = len(run.trace)
                started = time.perf_counter()
                seq = await stepper.step(kind)
                elapsed = time.perf_counter() - started
                assert seq is not None and seq < len(run.trace)
                # A hand-off arrives as three events at once, so some steps are already in
                # the trace: those cost no round trip and are reported apart.
                times[kind if len(run.trace) > received else "step-known"].append(elapsed)
        return times
    finally:
        await stepper.stop()
        await run.wait(10)


def describe(name: str, times: list[float]) -> float:
    ordered = sorted(times)
    median = statistics.median(ordered)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    print(f"  {name:<34} median {median * 1e3:7.3f} ms   p95 {p95 * 1e3:7.3f} ms"
          f"   max {ordered[-1] * 1e3:7.3f} ms")
    return median


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loaded", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=300)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "endless_producer.py"
        script.write_text(ENDLESS_PRODUCER, encoding="utf-8")
        baseline = await pipe_round_trips(options.steps)
        steps = await step_latencies(options.loaded, options.steps, script)
    print(f"{options.steps} round trips each, with the machine as it is now:")
    base = describe("baseline: plain pipe round trip", baseline)
    event = describe("step to the next event", steps["event"])
    step = describe("step to the next narrated step", steps["step"])
    if steps["step-known"]:
        describe("  (step already received)", steps["step-known"])
    print(f"ratio (median / baseline): event {event / base:.1f}x, narrated step "
          f"{step / base:.1f}x; narrated step median {step * 1e3:.2f} ms of the 50 ms budget")


if __name__ == "__main__":
    asyncio.run(main())
