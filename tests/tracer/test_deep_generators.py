"""3.11: a generator recursion that plain Python survives survives tracing too. The frame
evaluation hook costs C stack per frame that plain 3.11 does not (it stops inlining calls),
so it must hand over to the trace function well before the stack runs low
(tracer/_generator_eval.c, EVAL_DEPTH_LIMIT). Each depth from 10,000 up to the program's
raised recursion limit is run plainly first; wherever that succeeds, the traced run must
succeed too.

A recursion driven by next() or send() costs more C stack under the trace function than plain
(3.11 calls C functions through its tracing path), so there the trace function stops following
after TRACED_C_CALL_LIMIT such nested calls and leaves a run note. The stack the followed part
used stays used: measured on x86-64 with an 8 MiB stack, plain 3.11 survives 20,125 levels of
next() and the traced run 19,437 (3.4 % fewer: the evaluation hook's own frames for the first
1,000 levels and the trace function's for the next 1,000). The test finds plain's deepest
level by bisection in its own subprocesses and runs the traced program from 10,000 levels up
to that depth less DRIVEN_MARGIN."""

from __future__ import annotations

import os
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

def nexting(n):
    if n:
        yield next(nexting(n - 1))
    else:
        yield "bottom"

def sending(n):
    if n:
        inner = sending(n - 1)
        yield inner.send(None)
    else:
        yield "bottom"

shapes = {{"delegating": delegating, "looping": looping, "nexting": nexting, "sending": sending}}
print(next(shapes[shape](depth)))
"""
# How far below plain 3.11's deepest surviving level a recursion driven by C calls is traced
# (3.4 % measured, see above; the rest is room for a different stack layout).
DRIVEN_MARGIN = 0.05
# The levels a run follows before the trace function stops: the hook's and the trace's.
FOLLOWED_BEFORE_STOPPING = 1_500
STOPPED_NOTE = "nested deeper than Loopscope can follow on Python 3.11"
# The pure-Python tracer (sys.settrace, no C extension) has no stack check: it still overflows
# the C stack short of plain 3.11 in a recursion through next() (19,000 levels did).
PURE_PYTHON = os.environ.get("LOOPSCOPE_PURE_PYTHON", "") not in ("", "0")


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


def _plain_survives(script: Path, depth: int, shape: str) -> bool:
    plain = subprocess.run([sys.executable, str(script), str(depth), shape],
                           capture_output=True, text=True, timeout=120,
                           preexec_fn=_no_core_dumps)
    return plain.returncode == 0


def _deepest_plain(script: Path, shape: str, low: int, high: int) -> int:
    """The deepest level plain 3.11 survives between `low` (it must) and `high` (it must not),
    to within 1 %."""
    assert _plain_survives(script, low, shape), f"plain 3.11 cannot recurse {low} deep"
    assert not _plain_survives(script, high, shape), f"plain 3.11 survives {high} levels"
    while high - low > low // 100:
        middle = (low + high) // 2
        if _plain_survives(script, middle, shape):
            low = middle
        else:
            high = middle
    return low


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11's frame evaluation hook")
@pytest.mark.skipif(PURE_PYTHON, reason="the stack check is in the C trace function")
@pytest.mark.parametrize("shape", ["nexting", "sending"])
def test_a_deep_recursion_through_next_or_send_survives_tracing_with_a_note(
    tmp_path: Path, shape: str
) -> None:
    script = tmp_path / "deep.py"
    script.write_text(PROGRAM)
    deepest = _deepest_plain(script, shape, 10_000, RECURSION_LIMIT - 100)
    top = int(deepest * (1 - DRIVEN_MARGIN))
    for depth in sorted({10_000, (10_000 + top) // 2, top}):
        result = record_sync(resolve_target(str(script), (str(depth), shape), model="generator"),
                             timeout=300)
        assert result.ok, f"depth {depth} of plain's {deepest}: {result.error}"
        assert result.stdout == "bottom\n"
        notes = [note for note in result.notes if STOPPED_NOTE in note]
        assert len(notes) == 1, result.notes
        resumes = sum(1 for code in result.trace.code if code == Code.RUNNING)
        assert FOLLOWED_BEFORE_STOPPING < resumes < depth  # followed until it stopped


@pytest.mark.slow
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11's trace function")
def test_a_shallow_recursion_through_next_is_followed_whole_without_a_note(
    tmp_path: Path
) -> None:
    script = tmp_path / "deep.py"
    script.write_text(PROGRAM)
    result = record_sync(resolve_target(str(script), ("1500", "nexting"), model="generator"),
                         timeout=120)
    assert result.ok, result.error
    assert not [note for note in result.notes if STOPPED_NOTE in note]
    resumes = sum(1 for code in result.trace.code if code == Code.RUNNING)
    assert resumes > 1500
