"""How much slower the asyncio reference workload runs under Loopscope's asyncio tracing.

    .venv/bin/python bench/bench_asyncio_overhead.py [--repeat N] [--quick]

The workload: 200 tasks each awaiting asyncio.sleep(0) 500 times, then 50 loopback echo
clients each making 200 round trips of 64 bytes against a local asyncio echo server. It runs
untraced, traced (the asyncio model recording into a sink that encodes every batch exactly as
the child's event pipe does) and, when viztracer is importable, under VizTracer(log_async=True),
in alternating repetitions in this one process. The table shows the median of each and the
ratios to the untraced median. Goal for Loopscope: <= 1.3x (aim 1.1x).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sinks import EncodingSink
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder

# -- the reference workload ---------------------------------------------------------------


async def yielding_tasks(tasks: int, yields: int) -> None:
    async def spin() -> None:
        for _ in range(yields):
            await asyncio.sleep(0)

    await asyncio.gather(*(spin() for _ in range(tasks)))


async def echo_round_trips(clients: int, trips: int, size: int) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    payload = b"x" * size

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(trips):
            writer.write(payload)
            await writer.drain()
            await reader.readexactly(size)
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(client() for _ in range(clients)))
    server.close()
    await server.wait_closed()


def workloads(scale: float) -> dict[str, Callable[[], object]]:
    return {
        "sleep(0) x 200 tasks": lambda: yielding_tasks(200, int(500 * scale)),
        "echo 50 clients": lambda: echo_round_trips(50, int(200 * scale), 64),
    }


# -- the three ways to run it -----------------------------------------------------------


def run_untraced(make: Callable[[], object]) -> float:
    start = time.perf_counter()
    asyncio.run(make())  # type: ignore[arg-type]
    return time.perf_counter() - start


def run_loopscope(make: Callable[[], object], counts: dict[str, int]) -> float:
    sink = EncodingSink()
    start = time.perf_counter()
    recorder = Recorder(sink)
    with traced_loops(recorder):
        asyncio.run(make())  # type: ignore[arg-type]
    recorder.close()
    elapsed = time.perf_counter() - start
    counts["events"] = sink.events
    counts["bytes"] = sink.bytes_written
    return elapsed


def run_viztracer(make: Callable[[], object]) -> float:
    from viztracer import VizTracer

    tracer = VizTracer(log_async=True, verbose=0)
    start = time.perf_counter()
    tracer.start()
    asyncio.run(make())  # type: ignore[arg-type]
    tracer.stop()
    elapsed = time.perf_counter() - start
    tracer.clear()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a fifth of the workload")
    options = parser.parse_args()
    try:
        import viztracer  # noqa: F401

        has_viztracer = True
    except ImportError:
        has_viztracer = False

    print(f"python {sys.version.split()[0]}, {options.repeat} alternating repetitions, medians")
    header = f"{'workload':<22} {'untraced':>9} {'loopscope':>10} {'ratio':>6}"
    if has_viztracer:
        header += f" {'viztracer':>10} {'ratio':>6}"
    header += f" {'events':>9} {'MB':>6}"
    print(header)
    for name, make in workloads(0.2 if options.quick else 1.0).items():
        run_untraced(make)  # warm-up: imports, first-loop set-up
        counts: dict[str, int] = {}
        plain: list[float] = []
        traced: list[float] = []
        viz: list[float] = []
        for _ in range(options.repeat):
            gc.collect()
            plain.append(run_untraced(make))
            gc.collect()
            traced.append(run_loopscope(make, counts))
            if has_viztracer:
                gc.collect()
                viz.append(run_viztracer(make))
        base = statistics.median(plain)
        ours = statistics.median(traced)
        row = f"{name:<22} {base:>8.3f}s {ours:>9.3f}s {ours / base:>5.2f}x"
        if has_viztracer:
            theirs = statistics.median(viz)
            row += f" {theirs:>9.3f}s {theirs / base:>5.2f}x"
        row += f" {counts['events']:>9} {counts['bytes'] / 1e6:>6.1f}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
