"""Tracing must not change when the program's objects die.

Each lifetime_*.py program drops objects (tasks waiting on futures nobody completes, parked
greenlets, generators stopped half-way) whose finalizers print, and prints a marker after
each drop: each finalizer's line must come before the same marker untraced, traced with
the C tracer and traced with its pure-Python twin. A table of the tracer's that held one of
those objects would move its finalizer after the marker, or to the end of the run.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.programs.test_programs import PROGRAMS, Seen, assert_ok, trace_program

pytestmark = pytest.mark.timeout(120)

EXPECTED = {
    "lifetime_asyncio_waiters": [
        "one waiter: future finalized", "one waiter: waiter finalized", "one waiter: collected",
        "three waiters: future finalized", "three waiters: waiter finalized",
        "three waiters: collected",
        "gather: future finalized", "gather: waiter finalized", "gather: collected",
        "done",
    ],
    "lifetime_generators": [
        "counter closed", "token finalized", "counter dropped",
        "cycle finalized", "counter closed", "collected",
    ],
    "lifetime_greenlets": [
        "parked", "worker unwound", "token finalized", "dropped",
        "ping", "pinger finalized", "collected",
    ],
    "lifetime_sent_values": ["sent value dropped", "sent value finalized", "generator dropped"],
    "lifetime_at_exit": ["main done", "thread done", "exit hook sees Farewell",
                         "module global finalized"],
}
# The lines each program prints itself after it drops objects: the finalizers that print
# between two of them may come in any order (one collection frees a cycle's objects in an
# order of its own), but never after the next.
MARKERS = {"one waiter: collected", "three waiters: collected", "gather: collected", "done",
           "counter dropped", "collected", "parked", "dropped", "ping", "sent value dropped",
           "generator dropped", "main done", "thread done", "exit hook sees Farewell",
           "module global finalized"}
# what asyncio says on stderr of each pending task the collector frees
DESTROYED_PENDING = "Task was destroyed but it is pending!"


def between_markers(lines: list[str]) -> list[list[str]]:
    """The lines in runs that each end at a marker, sorted within a run."""
    runs: list[list[str]] = [[]]
    for line in lines:
        if line in MARKERS:
            runs[-1] = [*sorted(runs[-1]), line]
            runs.append([])
        else:
            runs[-1].append(line)
    return [*runs[:-1], sorted(runs[-1])]


def untraced(name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(PROGRAMS / f"{name}.py")], capture_output=True,
                          text=True, timeout=60, check=True)


def traced(name: str, pure: bool) -> Seen:
    seen = trace_program(name, env={"LOOPSCOPE_PURE_PYTHON": "1" if pure else "0"})
    assert_ok(seen)
    return seen


IMPLEMENTATIONS = pytest.mark.parametrize("pure", [False, True], ids=["c", "pure"])


@IMPLEMENTATIONS
@pytest.mark.parametrize("name", ["lifetime_asyncio_waiters", "lifetime_generators",
                                  "lifetime_greenlets", "lifetime_at_exit"])
def test_dropped_objects_die_where_they_die_untraced(name: str, pure: bool) -> None:
    expected = between_markers(EXPECTED[name])
    assert between_markers(untraced(name).stdout.splitlines()) == expected
    assert between_markers(traced(name, pure).result.stdout.splitlines()) == expected


@IMPLEMENTATIONS
def test_asyncio_says_each_dropped_pending_task_was_destroyed(pure: bool) -> None:
    name = "lifetime_asyncio_waiters"
    assert untraced(name).stderr.count(DESTROYED_PENDING) == 5
    assert traced(name, pure).result.stderr.count(DESTROYED_PENDING) == 5


@IMPLEMENTATIONS
@pytest.mark.xfail(sys.version_info < (3, 13), strict=True,
                   reason="before 3.13 a frame whose locals are read (f_locals, 3.12's "
                          "PyFrame_GetVar, 3.11's trampoline for a Python sys.settrace "
                          "function) keeps a snapshot of them: the sending frame's snapshot "
                          "holds the value sent until it is taken again")
def test_a_value_sent_into_a_generator_dies_with_the_generator(pure: bool) -> None:
    name = "lifetime_sent_values"
    expected = between_markers(EXPECTED[name])
    assert between_markers(untraced(name).stdout.splitlines()) == expected
    assert between_markers(traced(name, pure).result.stdout.splitlines()) == expected
