"""3.11: a generator recursion that plain Python survives survives tracing too. The frame
evaluation hook costs C stack per frame that plain 3.11 does not (it stops inlining calls),
so it must hand over to the trace function well before the stack runs low (tracer/_handoffs.c,
EVAL_DEPTH_LIMIT). Each depth from 10,000 up to the program's raised recursion limit is run
plainly first; wherever that succeeds, the traced run must succeed too."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from loopscope.tracer.events import Code
from loopscope.tracer.runner import record_sync
from loopscope.tracer.target import resolve_target

RECURSION_LIMIT = 60_000
DEPTHS = [10_000, 12_500, 15_000, 17_500, 20_000, 25_000, 30_000, 40_000, RECURSION_LIMIT - 100]

PROGRAM = f"""
import sys
depth, shape = int(sys.argv[1]), sys.argv[2]
sys.setrecursionlimit({RECURSION_LIMIT})

def delegating(n):
    if n:
        yield from delegating(n - 1)
    else:
        yield "bottom"

def looping(n):
    if n:
        for item in looping(n - 1):
            yield item
    else:
        yield "bottom"

print(next({{"delegating": delegating, "looping": looping}}[shape](depth)))
"""


def _no_core_dumps() -> None:
    """In a plain run that may overflow the C stack: no core file for the crash."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11's frame evaluation hook")
@pytest.mark.parametrize("shape", ["delegating", "looping"])
def test_a_deep_generator_recursion_that_plain_python_survives_survives_tracing(
    tmp_path: Path, shape: str
) -> None:
    script = tmp_path / "deep.py"
    script.write_text(PROGRAM)
    survived = []
    for depth in DEPTHS:
        plain = subprocess.run([sys.executable, str(script), str(depth), shape],
                               capture_output=True, text=True, timeout=120,
                               preexec_fn=_no_core_dumps)
        if plain.returncode != 0:
            continue  # beyond what this machine's C stack holds even untraced
        survived.append(depth)
        result = record_sync(resolve_target(str(script), (str(depth), shape)), timeout=300)
        assert result.ok, f"depth {depth}: {result.error}"
        assert result.stdout == "bottom\n"
        resumes = sum(1 for code in result.trace.code if code == Code.RUNNING)
        assert resumes > depth  # every generator of the chain was followed
    assert survived[:2] == DEPTHS[:2], "plain Python should manage 12,500 generators"
