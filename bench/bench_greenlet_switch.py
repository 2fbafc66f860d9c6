"""Greenlet switch tracing: a two-greenlet ping-pong, untraced against traced.

    .venv/bin/python bench/bench_greenlet_switch.py [SWITCHES]

Both run in this one process, in alternating pairs (`--rounds N`, default 9), so a machine
that slows down mid-run slows both sides of a pair; the headline is the median of the pairs'
ratios, with each side's best time beside it. The traced run records every switch (switch,
blocked, running: three events per switch) into a recorder whose sink encodes each batch for
the pipe, as the child does.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from greenlet import greenlet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pairs import alternate, arguments
from bench.sinks import EncodingSink
from loopscope.tracer.models._greenlets import GreenletTracer
from loopscope.tracer.models.generator_model import c_handoffs
from loopscope.tracer.recorder import Recorder

ROUNDS = 9




def ping_pong(switches: int) -> None:
    """Two greenlets switching to each other until `switches` switches have happened."""
    rounds = switches // 2

    def ping() -> None:
        for _ in range(rounds):
            pong_greenlet.switch()

    def pong() -> None:
        while True:
            ping_greenlet.switch()

    ping_greenlet = greenlet(ping)
    pong_greenlet = greenlet(pong)
    ping_greenlet.switch()


def hooks_in_use() -> str:
    accelerated = c_handoffs(Recorder(EncodingSink())) is not None
    return "C (tracer._handoffs)" if accelerated else "Python"


def untraced(switches: int) -> float:
    start = time.perf_counter()
    ping_pong(switches)
    return time.perf_counter() - start


def traced(switches: int) -> tuple[float, int, int]:
    sink = EncodingSink()
    recorder = Recorder(sink)
    tracer = GreenletTracer(recorder)
    start = time.perf_counter()
    tracer.install()
    try:
        ping_pong(switches)
    finally:
        tracer.uninstall()
    recorder.close()
    elapsed = time.perf_counter() - start
    return elapsed, recorder.event_count, sink.bytes_written


def main() -> None:
    switches, rounds = arguments("greenlet switch tracing cost", "switches", ROUNDS)
    pairs = alternate(lambda: untraced(switches), lambda: traced(switches), rounds)
    print(f"python {sys.version.split()[0]}, {switches:,} switches, {rounds} alternating pairs")
    print(f"hooks: {hooks_in_use()}  (LOOPSCOPE_PURE_PYTHON=1 for the pure-Python ones)")
    print(pairs.report(switches, "switch", "goal <= 3x"))


if __name__ == "__main__":
    main()
