"""Generator hand-off tracing: a producer/consumer send() loop, untraced against traced.

    .venv/bin/python bench/bench_generator_switch.py [SENDS]

The loop is the seed tutorial's producer/consumer without its prints: the producer counts n
up and sends it, the consumer checks it, sets its reply to '200 OK' and yields it back. Both
runs happen in this one process, one after the other, best of a few rounds each; the traced
run records every hand-off (switch, blocked, running: six events per send, each carrying the
value handed over) into a recorder whose sink encodes each batch for the pipe, as the child
does. Each value sent is a new int, so every send makes a new value row (tracer.values).
The untraced and traced rounds alternate in pairs, so a machine that slows down mid-run slows
both sides of a pair; the headline is the median of the pairs' ratios (`--rounds N`, default
11), with each side's best time per send beside it.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Generator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pairs import alternate, arguments
from bench.sinks import EncodingSink
from loopscope.tracer.models.generator_model import (
    GeneratorTracer,
    ProgramCode,
    c_handoffs,
    make_backend,
)
from loopscope.tracer.recorder import Recorder

ROUNDS = 11




def consumer() -> Generator[str, int | None, None]:
    reply = ""
    while True:
        item = yield reply
        if not item:
            return
        reply = "200 OK"


def produce(sends: int) -> str:
    """Sends 1..sends to a consumer; returns its last reply."""
    worker = consumer()
    reply = worker.send(None)
    item = 0
    while item < sends:
        item = item + 1
        reply = worker.send(item)
    worker.close()
    return reply


def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def calls_outside_generators(rounds: int) -> float:
    """fib(22) with the generator tracer installed against without: what following generators
    costs the rest of the program (on 3.11 the evaluation hook stops call inlining)."""
    def timed(install: bool) -> float:
        recorder = Recorder(EncodingSink())
        backend = make_backend(GeneratorTracer(recorder, ProgramCode()))
        if install:
            backend.install()
        try:
            start = time.perf_counter()
            fib(22)
            return time.perf_counter() - start
        finally:
            if install:
                backend.uninstall()

    pairs = [(timed(False), timed(True)) for _ in range(rounds)]
    return statistics.median(traced / plain for plain, traced in pairs)


def hooks_in_use() -> str:
    accelerated = c_handoffs(Recorder(EncodingSink())) is not None
    return "C (tracer._handoffs)" if accelerated else "Python"


def untraced(sends: int) -> float:
    start = time.perf_counter()
    produce(sends)
    return time.perf_counter() - start


def traced(sends: int) -> tuple[float, int, int]:
    sink = EncodingSink()
    recorder = Recorder(sink)
    backend = make_backend(GeneratorTracer(recorder, ProgramCode()))
    start = time.perf_counter()
    backend.install()
    try:
        produce(sends)
    finally:
        backend.uninstall()
    recorder.close()
    elapsed = time.perf_counter() - start
    return elapsed, recorder.event_count, sink.bytes_written


def main() -> None:
    sends, rounds = arguments("generator hand-off tracing cost", "sends", ROUNDS)
    pairs = alternate(lambda: untraced(sends), lambda: traced(sends), rounds)
    added = (min(pairs.traced)[0] - min(pairs.untraced)) / sends * 1e9
    print(f"python {sys.version.split()[0]}, {sends:,} sends, {rounds} alternating pairs")
    print(f"hooks: {hooks_in_use()}  (LOOPSCOPE_PURE_PYTHON=1 for the pure-Python ones)")
    print(pairs.report(sends, "send", "goal <= 8x, aim 4x"))
    print(f"added:    {added:8.1f} ns per send  ({added / 2:.1f} ns per hand-off)")
    print(f"calls outside generators (fib), traced/untraced: "
          f"{calls_outside_generators(rounds):.2f}x")


if __name__ == "__main__":
    main()
