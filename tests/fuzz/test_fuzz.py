"""A trace file and the event pipe are data from anywhere: thousands of seeded, structure-aware
mutations of each, through every consumer, end in results or one clean error -- never a
traceback, a hang or a memory blow-up.

Each batch of cases runs in a worker process (tests/fuzz/worker.py) whose address space is
limited; a finding names its seed, so `python -m tests.fuzz.worker native BASE SEED 1`
reproduces it. Every crash found becomes a permanent case: keep SEEDS growing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loopscope.tracer.runner import RunResult
from tests.fuzz.bases import native_base, pipe_base

ROOT = Path(__file__).resolve().parents[2]
# (first seed, count): 2,400 native cases (and 400 of a real run) and 800 pipe cases; the
# app, PNG and SVG consumers take every 40th case that loads.
NATIVE_BATCHES = [(0, 1200), (1200, 1200)]
PIPE_BATCHES = [(0, 800)]
HEAVY_EVERY = 40
WORKER_TIMEOUT_S = 300


def _run_worker(mode: str, base: Path, first: int, count: int) -> tuple[list[dict[str, object]],
                                                                          dict[str, int]]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    env.pop("LOOPSCOPE_PURE_PYTHON", None)
    done = subprocess.run(
        [sys.executable, "-m", "tests.fuzz.worker", mode, str(base), str(first), str(count),
         "--heavy-every", str(HEAVY_EVERY)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines and "done" in lines[-1], (
        f"the worker died ({done.returncode}): {done.stderr[-3000:]}")
    return lines[:-1], lines[-1]


def _describe(findings: list[dict[str, object]]) -> str:
    return "\n\n".join(f"seed {f['seed']} ({f['mutation']}) in {f['consumer']}:\n{f['error']}"
                       for f in findings[:5])


@pytest.mark.slow
@pytest.mark.parametrize(("first", "count"), NATIVE_BATCHES)
def test_mutated_trace_files_load_cleanly_or_fail_in_one_line(
    tmp_path: Path, first: int, count: int
) -> None:
    base = tmp_path / "base.loopscope"
    base.write_bytes(native_base())
    findings, summary = _run_worker("native", base, first, count)
    assert not findings, _describe(findings)
    assert summary["done"] == count
    assert summary["loaded"] > count // 10  # the mutations reach the consumers, not only the loader


@pytest.mark.slow
def test_mutations_of_a_real_run_load_cleanly_or_fail_in_one_line(
    tmp_path: Path, record_scenario: object
) -> None:
    from loopscope.tracer.native import encode_trace

    assert callable(record_scenario)
    result: RunResult = record_scenario("producer-consumer")
    base = tmp_path / "real.loopscope"
    base.write_bytes(encode_trace(result.trace))
    findings, summary = _run_worker("native", base, 10_000, 400)
    assert not findings, _describe(findings)
    assert summary["loaded"] > 40


@pytest.mark.slow
@pytest.mark.parametrize(("first", "count"), PIPE_BATCHES)
def test_mutated_event_streams_decode_or_fail_as_a_stream_error(
    tmp_path: Path, first: int, count: int
) -> None:
    base = tmp_path / "base.stream"
    base.write_bytes(pipe_base())
    findings, summary = _run_worker("pipe", base, first, count)
    assert not findings, _describe(findings)
    assert summary["done"] == count
