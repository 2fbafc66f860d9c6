"""The stall analysis on a trace of many lanes that each take one long step.

    .venv/bin/python bench/bench_stalls.py [LANES ...]

For each size (default 500 and 2,000 lanes; bench/stalled_trace.py builds them), times in
one process, alternating, medians of 3: the victims found for every stall as defined (for
each stall, a pass over every span's columns: the code before round 7, kept in
tests/tracer/test_stall_victims.py as the reference) against `find_stalls`, which finds them
from the spans that overlap each stall; and the spans a picture marks (`stall_indices`, what
`loopscope export` needs). Both sides' findings are compared and must be equal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.stalled_trace import stalled_trace  # noqa: E402
from loopscope.tracer.spans import Spans, derive_spans  # noqa: E402
from loopscope.tracer.stalls import DEFAULT_THRESHOLD_NS, find_stalls, stall_indices  # noqa: E402
from loopscope.tracer.trace import Trace  # noqa: E402
from tests.tracer.test_stall_victims import reference_stalls  # noqa: E402

RUNS = 3


def timed(action: Callable[[Trace, Spans], object], trace: Trace, spans: Spans
          ) -> tuple[float, object]:
    began = time.perf_counter()
    result = action(trace, spans)
    return time.perf_counter() - began, result


def as_defined(trace: Trace, spans: Spans) -> object:
    return reference_stalls(trace, spans, DEFAULT_THRESHOLD_NS)


def main() -> None:
    sizes = [int(arg) for arg in sys.argv[1:]] or [500, 2000]
    print(f"{'lanes':>6}{'spans':>10}{'stalls':>8}{'victims':>9}{'as defined':>12}"
          f"{'find_stalls':>13}{'ratio':>8}{'marks only':>12}")
    for lanes in sizes:
        trace = stalled_trace(lanes)
        spans = derive_spans(trace)
        old: list[float] = []
        new: list[float] = []
        marks: list[float] = []
        for _ in range(RUNS):
            took, expected = timed(as_defined, trace, spans)
            old.append(took)
            took, found = timed(find_stalls, trace, spans)
            new.append(took)
            took, _ = timed(stall_indices, trace, spans)
            marks.append(took)
            if found != expected:
                raise SystemExit("find_stalls disagrees with the definition")
        median = [sorted(times)[len(times) // 2] for times in (old, new, marks)]
        findings = find_stalls(trace, spans)
        victims = sum(len(finding.delayed) for finding in findings)
        print(f"{lanes:>6}{len(spans):>10,}{len(findings):>8}{victims:>9,}"
              f"{median[0]:>11.3f}s{median[1]:>12.3f}s{median[1] / median[0]:>7.2f}x"
              f"{median[2]:>11.3f}s")


if __name__ == "__main__":
    main()
