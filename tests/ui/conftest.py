"""Shared GUI fixtures: Qt runs offscreen, and a small hand-built trace with known geometry.

QT_QPA_PLATFORM is set here, before any test module imports Qt, so GUI tests need no display.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

MS = 1_000_000


def build_sample_trace() -> Trace:
    """An asyncio-like run: a loop lane and three tasks, with I/O, a timer, a join and output.

    Times (ms) are chosen so every span is many pixels wide at 1600 px for the 100 ms run:
      loop   dispatch 0-20, poll 20-60, dispatch 60-100
      fetch  running 0-10 (prints), io-wait 10-60 (fd 7), ready 60-62, running 62-70, end
      nap    running 10-15, sleeping 15-70, ready 70-75, running 75-85, end
      join   running 15-20, blocked 20-70 (on fetch), ready 70-85, running 85-95, end
    """
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    trace.meta["target"] = "sample-scenario"
    trace.meta["model"] = "asyncio"

    def at(ms: float) -> None:
        clock.now_ns = int(ms * MS)

    at(0)
    loop = recorder.spawn("event loop", LaneKind.LOOP)
    recorder.state(loop, Code.DISPATCH)
    fetch = recorder.spawn("fetch", LaneKind.TASK, parent=loop)
    nap = recorder.spawn("nap", LaneKind.TASK, parent=loop)
    join = recorder.spawn("join", LaneKind.TASK, parent=loop)
    source = recorder.source("sample.py", 12, "fetch")
    recorder.state(fetch, Code.RUNNING, source=source)
    at(5)
    recorder.record(fetch, Code.OUTPUT, detail=recorder.detail(("text", "fetching")))
    at(10)
    recorder.state(fetch, Code.IO_WAIT, ("fd", 7, "mode", "read", "peer", "127.0.0.1:40123"))
    recorder.switch(fetch, nap, ("via", "yield"))
    recorder.state(nap, Code.RUNNING)
    at(15)
    recorder.state(nap, Code.SLEEPING, ("delay_s", 0.055, "deadline_ns", 70 * MS))
    recorder.state(join, Code.RUNNING)
    at(20)
    recorder.state(join, Code.BLOCKED, ("on", "task fetch"), other=fetch)
    recorder.state(loop, Code.POLL, ("timeout_s", 0.05))
    at(60)
    recorder.annotate(loop, ("readable", (7,), "writable", ()))
    recorder.state(loop, Code.DISPATCH)
    recorder.wake(fetch, loop, ("cause", "fd", "fd", 7, "mode", "read"))
    at(62)
    recorder.state(fetch, Code.RUNNING)
    at(70)
    recorder.end(fetch, result="page")
    recorder.wake(join, fetch, ("cause", "task"))
    recorder.wake(nap, loop, ("cause", "timer", "deadline_ns", 70 * MS))
    at(75)
    recorder.state(nap, Code.RUNNING)
    at(85)
    recorder.end(nap, result=None)
    recorder.state(join, Code.RUNNING)
    at(95)
    recorder.record(join, Code.OUTPUT, detail=recorder.detail(("text", "done")))
    recorder.end(join, result=2)
    at(100)
    recorder.end(loop)
    recorder.close()
    return trace


@pytest.fixture
def sample_trace() -> Trace:
    return build_sample_trace()
