"""Greenlet switch tracing: a two-greenlet ping-pong, untraced against traced.

    .venv/bin/python bench/bench_greenlet_switch.py [SWITCHES]

Both runs happen in this one process, best of a few rounds each; the traced run records
every switch (switch, blocked, running: three events per switch) into a recorder whose sink
encodes each batch for the pipe, as the child does.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from greenlet import greenlet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracer.events import Detail, Source
from tracer.models._greenlets import GreenletTracer
from tracer.models.generator_model import c_handoffs
from tracer.recorder import Recorder
from tracer.stream import encode_batch

ROUNDS = 3


class EncodingSink:
    """Encodes every batch as the child would before writing it to the pipe."""

    def __init__(self) -> None:
        self.bytes_written = 0

    def write_batch(self, first_seq: int, columns: tuple[Sequence[int], ...],
                    new_details: list[Detail], new_sources: list[Source],
                    new_values: bytes) -> None:
        self.bytes_written += len(encode_batch(first_seq, columns, new_details, new_sources,
                                               new_values))


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
    switches = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    base = min(untraced(switches) for _ in range(ROUNDS))
    best, events, written = min(traced(switches) for _ in range(ROUNDS))
    print(f"python {sys.version.split()[0]}, {switches:,} switches, best of {ROUNDS}")
    print(f"hooks: {hooks_in_use()}  (LOOPSCOPE_PURE_PYTHON=1 for the pure-Python ones)")
    print(f"untraced: {base / switches * 1e9:8.1f} ns per switch")
    print(f"traced:   {best / switches * 1e9:8.1f} ns per switch  "
          f"({events:,} events, {written / 1e6:.1f} MB encoded)")
    print(f"ratio traced/untraced: {best / base:.1f}x  (goal <= 3x)")


if __name__ == "__main__":
    main()
