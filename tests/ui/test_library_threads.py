"""Work a library hands to a thread pool folds with the library lanes; the program's own
work stays a lane of its own (a real gevent child)."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopscope.tracer.runner import record_sync
from loopscope.tracer.target import resolve_target
from loopscope.ui.trace_notes import trace_notes

PROGRAM = Path(__file__).parents[1] / "programs" / "gevent_resolver_threads.py"

pytestmark = pytest.mark.slow


def test_the_resolvers_threads_fold_and_the_programs_pool_work_does_not() -> None:
    result = record_sync(resolve_target(str(PROGRAM)), timeout=60)
    assert result.ok, result.error
    assert result.stdout.split() == ["hi", "45"]
    trace = result.trace
    threads = {info.name: info.id for info in trace.lanes if info.kind == "thread"}
    assert set(threads) == {"getaddrinfo", "total"}
    folded = trace_notes(trace).library_lanes(trace)
    assert threads["getaddrinfo"] in folded
    assert threads["total"] not in folded
