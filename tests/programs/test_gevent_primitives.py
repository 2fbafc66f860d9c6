"""Waits on gevent's locks and events are recorded as waits on that primitive, named by its
variable and line, and ended by the greenlet that released it; a queue's wait says get or
put: a real child run."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopscope.tracer.events import Code
from loopscope.tracer.runner import record_sync
from loopscope.tracer.target import resolve_target

PROGRAM = Path(__file__).parent / "gevent_primitives.py"

pytestmark = pytest.mark.slow


def _line(text: str) -> int:
    return next(number for number, line in enumerate(PROGRAM.read_text().splitlines(), 1)
                if line.startswith(text))


def test_each_wait_names_its_primitive_and_the_greenlet_that_let_it_go() -> None:
    result = record_sync(resolve_target(str(PROGRAM)), timeout=60)
    assert result.status == "ok", result.stderr
    trace = result.trace
    # lane -> (method, primitive, the lane it was ready from) for every wait on a primitive,
    # in the order of its events: BLOCKED, then READY drawn from the releaser, WAKE, RUNNING
    waits: dict[str, list[tuple[str, str, str]]] = {}
    events = list(trace.events())
    for position, event in enumerate(events):
        if event.code != Code.BLOCKED or "." not in str(event.detail.get("on", "")):
            continue
        after = [later for later in events[position + 1:] if later.lane == event.lane][:3]
        if "primitive" in event.detail:
            assert [later.code for later in after] == [Code.READY, Code.WAKE, Code.RUNNING]
            released_by = trace.lane_name(after[0].other)
        else:  # a queue's wait: the hub resumes it, nobody is known to have let it go
            assert [later.code for later in after[:2]] == [Code.WAKE, Code.RUNNING]
            released_by = None
        waits.setdefault(trace.lane_name(event.lane), []).append(
            (event.detail["on"], event.detail.get("primitive"), released_by))
    name = PROGRAM.name
    assert waits == {
        "waiter": [("Semaphore.acquire", f"lock ({name}:{_line('lock =')})", "holder")],
        "second_waiter": [("Semaphore.acquire", f"pair #2 ({name}:{_line('pair =')})",
                           "second_holder")],
        "rlock_waiter": [("RLock.acquire", f"guard ({name}:{_line('guard =')})",
                          "rlock_holder")],
        "listener": [("Event.wait", f"started ({name}:{_line('started =')})", "signaller")],
        "consumer": [("Queue.get", None, None)],
        "producer": [("Queue.put", None, None)],
    }
    # the program sees gevent's classes, as without Loopscope
    assert result.stdout.splitlines()[-1] == "Semaphore True Queue"
