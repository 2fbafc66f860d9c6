"""The traces the fuzz cases are made from: one of every event kind and detail key, written
as a saved trace and as the frames a child sends on its event pipe."""

from __future__ import annotations

import io
from pathlib import Path

from loopscope.tracer.events import NO_DETAIL, Code, FakeClock, LaneKind
from loopscope.tracer.native import encode_trace
from loopscope.tracer.recorder import BatchSink, Recorder
from loopscope.tracer.source_files import record_identities
from loopscope.tracer.stream import FrameWriter
from loopscope.tracer.trace import Trace

PROGRAM = str(Path(__file__).resolve())  # a real source file, so narration reads lines


def _record(sink: BatchSink) -> None:
    clock = FakeClock(tick_ns=1_500)
    rec = Recorder(sink, clock=clock, batch_size=5)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    task = rec.spawn("fetch-1 (Task-2)", LaneKind.TASK, parent=loop, extra=("coro", "fetch()"))
    gen = rec.spawn("consumer", LaneKind.GENERATOR, parent=task)
    rec.wake(task, loop, ("cause", "spawn"))
    rec.state(task, Code.RUNNING, source=rec.source(PROGRAM, 12, "fetch"))
    rec.state(task, Code.IO_WAIT, ("fd", 7, "mode", "read", "peer", "127.0.0.1:40123"))
    rec.state(loop, Code.POLL, ("timeout_s", None))
    clock.advance(123_456_789)
    rec.annotate(loop, ("readable", (7,), "writable", ()))
    rec.state(loop, Code.DISPATCH, ("callback", "Task.__step"))
    rec.wake(task, loop, ("cause", "fd", "fd", 7, "mode", "read"))
    rec.state(task, Code.SLEEPING, ("delay_s", 0.1, "deadline_ns", 223_456_789))
    rec.wake(task, loop, ("cause", "timer", "deadline_ns", 223_456_789))
    rec.state(task, Code.BLOCKED, ("on", "task consumer"), )
    rec.record(task, Code.OUTPUT, detail=rec.detail(("text", "naïve “quotes” \\ and \t tabs")))
    rec.record(gen, Code.MARK, detail=rec.detail(("text", "paused 0.1 s", "paused_ns", 100)))
    sent = rec.detail(("via", "send"))
    for text in ("1", "'ünï'", "b'\\x00'"):
        rec.handoff(task, gen, rec.value_row(sent, text), Code.BLOCKED, NO_DETAIL,
                    rec.source(PROGRAM, 30, "consumer"))
    rec.switch(gen, task, ("via", "yield", "value", "2"))
    rec.wake(task, gen, ("cause", "future"))
    rec.end(gen, result="None")
    rec.end(task, error=ValueError("bad value"))
    rec.state(loop, Code.POLL, ("timeout_s", 0.5))
    rec.close()


def native_base() -> bytes:
    trace = Trace()
    _record(trace)
    trace.meta.update(target=PROGRAM, kind="script", model="asyncio", status="ok",
                      exit_code=0, dropped=0, python="3.x")
    record_identities(trace.meta, [PROGRAM])
    return encode_trace(trace)


def pipe_base() -> bytes:
    out = io.BytesIO()
    writer = FrameWriter(out)
    writer.hello({"pid": 1, "target": "fuzz", "model": "asyncio", "python": "3.x"})
    _record(writer)
    writer.end({"status": "ok", "error": None, "traceback": None, "dropped": 0, "events": 27})
    return out.getvalue()
