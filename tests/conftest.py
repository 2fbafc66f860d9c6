"""Shared fixtures: scenario traces recorded once per session in real child processes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from loopscope.tracer.child import WRITE_WAITS_NOTE
from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.runner import RunResult, record_sync
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace


def threads_only_trace(target: str = "workers.py") -> Trace:
    """A threaded script's run: two thread lanes, under the asyncio model a script with no
    model's imports runs under by default."""
    trace = Trace()
    trace.meta.update(target=target, model="asyncio")
    recorder = Recorder(trace, clock=FakeClock())
    for name in ("main thread", "worker"):
        lane = recorder.spawn(name, LaneKind.THREAD)
        recorder.state(lane, Code.RUNNING)
        recorder.end(lane)
    recorder.close()
    return trace


@pytest.fixture(scope="session")
def record_scenario() -> Callable[..., RunResult]:
    """record_scenario(id) runs a scenario in a child once per session and returns its result.

    A run that did not end well fails the test with the child's own words.
    """
    cache: dict[str, RunResult] = {}

    def record(scenario_id: str, timeout: float = 60.0) -> RunResult:
        if scenario_id not in cache:
            result = record_sync(resolve_target(scenario_id), timeout=timeout)
            if not result.ok:
                pytest.fail(f"{scenario_id}: {result.error}\n{result.stderr}")
            cache[scenario_id] = result
        return cache[scenario_id]

    return record


def about_the_program(notes: list[str]) -> list[str]:
    """A run's notes less the one on how long a busy machine held the program while its
    events were handed over: whether that comes depends on the load, not on the program."""
    return [note for note in notes if WRITE_WAITS_NOTE not in note]
