"""tracer._speedups against its pure-Python twins: the same events, the same clock, no leaks.

The implementation is chosen when tracer.recorder is imported (LOOPSCOPE_PURE_PYTHON=1 forces
pure Python), so each side runs in a child interpreter of its own and prints what it recorded.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from loopscope.tracer.events import Batch, Code
from loopscope.tracer.recorder import SPEEDUPS
from tests.tracer import blocked_calls

needs_extension = pytest.mark.skipif(SPEEDUPS is None, reason="tracer._speedups is not built")

# Exercises the whole Recorder API with small batches, a gate and a FakeClock; prints every
# batch and every gate call as JSON.
RECORDER_PROGRAM = """
import json
from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder

batches, gate_calls = [], []

class Sink:
    def write_batch(self, batch):
        first_seq, columns, new_details, new_sources, new_values = batch
        batches.append([first_seq, [list(c) for c in columns], new_details, new_sources,
                        new_values.hex()])

clock = FakeClock(tick_ns=7)
recorder = Recorder(Sink(), clock=clock, batch_size=5)
loop = recorder.spawn("loop", LaneKind.LOOP)
task = recorder.spawn("task", LaneKind.TASK, parent=loop, extra=("coro", "main"))
# names taken again, one the program took first, and enough of them to grow the name table
for name in ["job #2", "job", "job", "job"] + [f"t{n % 300}" for n in range(900)]:
    recorder.spawn(name, LaneKind.TASK, parent=loop)
for step in range(12):
    recorder.record(task, Code.RUNNING, source=recorder.source("a.py", step, "main"))
    recorder.record(task, Code.READY, other=task, detail=recorder.detail(("cause", "self")))
sent = recorder.detail(("via", "send"))
for text in ("1", "'caf\\u00e9'", "'\\ud800'", ""):  # ASCII, not ASCII, a lone surrogate, empty
    recorder.handoff(task, loop, recorder.value_row(sent, text), Code.BLOCKED, 0, 0)
recorder.wake(task, loop, ("cause", "timer"))
recorder.state(task, Code.IO_WAIT, ("fd", 3, "mode", "read"))
recorder.annotate(loop, ("readable", (3,)))
slept = recorder.unique_detail(("delay_s", 0.5, "deadline_ns", 7))
kept = recorder.detail_row(slept)  # a unique row reads back until it is sent
recorder.record(task, Code.SLEEPING, detail=slept)
recorder.flush()
try:
    recorder.detail_row(slept)
except LookupError:
    forgotten = True
unique = [list(kept), forgotten, recorder.detail(("delay_s", 0.5, "deadline_ns", 7)) != slept]
recorder.set_gate(lambda code, lane: gate_calls.append([code, lane, recorder.event_count]))
recorder.record(loop, Code.POLL)
recorder.handoff(loop, task, 0, Code.DISPATCH, 0, 0)
recorder.set_gate(None)
recorder.origin += 1000  # a gate's pause moves the origin; later stamps are relative to it
recorder.end(task, result=[1, 2])
recorder.end(loop, error=RuntimeError("closed"))
pending = recorder.event_count
recorder.close()
print(json.dumps({"batches": batches, "gate": gate_calls, "pending": pending,
                  "current": recorder.current, "unique": unique}))
"""

# A deterministic asyncio program: tasks that yield, await each other, a queue, an event,
# gather, a failing task, and a stream over a socket pair (an fd wait and an fd wake-up).
ASYNCIO_PROGRAM = """
import asyncio, json, socket
from loopscope.tracer.events import FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

async def spin(n):
    for _ in range(n):
        await asyncio.sleep(0)
    return n

async def fails():
    await asyncio.sleep(0)
    raise ValueError("boom")

async def consumer(queue, done):
    while (item := await queue.get()) is not None:
        await asyncio.sleep(0)
    done.set()

async def main():
    queue, done = asyncio.Queue(), asyncio.Event()
    waiting = asyncio.create_task(consumer(queue, done), name="consumer")
    for item in range(3):
        await queue.put(item)
        await asyncio.sleep(0)
    await queue.put(None)
    await done.wait()
    await waiting
    total = sum(await asyncio.gather(spin(2), spin(3)))
    failing = asyncio.create_task(fails(), name="fails")
    try:
        await failing
    except ValueError:
        pass
    left, right = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=left)
    async def answer():
        peer_reader, peer_writer = await asyncio.open_connection(sock=right)
        line = await peer_reader.readline()
        peer_writer.write(line.upper())
        await peer_writer.drain()
        peer_writer.close()
    answering = asyncio.create_task(answer(), name="answer")
    writer.write(b"ping\\n")
    await writer.drain()
    reply = await reader.readline()
    await answering
    writer.close()
    return total, reply.decode()

trace = Trace()
recorder = Recorder(trace, clock=FakeClock(tick_ns=1), batch_size=64)
with traced_loops(recorder):
    result = asyncio.run(main())
recorder.close()
print(json.dumps({
    "result": list(result),
    "columns": [list(trace.ts), list(trace.lane), list(trace.code), list(trace.other),
                list(trace.detail), list(trace.source)],
    "details": trace.details,
    "sources": [list(s) for s in trace.sources],
}))
"""


def run_side(program: str, pure: bool) -> Any:
    env = dict(os.environ)
    env.pop("LOOPSCOPE_PURE_PYTHON", None)
    if pure:
        env["LOOPSCOPE_PURE_PYTHON"] = "1"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def run_both_sides(program: str) -> Any:
    """The program's output with the C extension, checked equal to the pure-Python twins'."""
    c_side = run_side(program, pure=False)
    assert c_side == run_side(program, pure=True)
    return c_side


# record_same_instant: the time of the event just before it while that one is pending, the
# clock's next reading after a flush (and so after every event while the step gate is set).
SAME_INSTANT_PROGRAM = """
import json
from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

trace = Trace()
recorder = Recorder(trace, clock=FakeClock(tick_ns=5), batch_size=64)
lane = recorder.spawn("task", LaneKind.TASK)
recorder.record_same_instant(lane, Code.READY)
recorder.record_same_instant(lane, Code.RUNNING, source=recorder.source("a.py", 1, "f"))
recorder.record(lane, Code.BLOCKED)
recorder.flush()
recorder.record_same_instant(lane, Code.READY, other=lane)
recorder.set_gate(lambda code, lane: None)
recorder.record(lane, Code.RUNNING)
recorder.record_same_instant(lane, Code.READY, other=lane)
recorder.set_gate(None)
recorder.close()
print(json.dumps([[int(code), ts] for code, ts in zip(trace.code, trace.ts)]))
"""


@needs_extension
def test_an_event_at_the_same_instant_reads_the_clock_only_after_a_flush() -> None:
    events = run_both_sides(SAME_INSTANT_PROGRAM)
    codes = [code for code, _ts in events]
    assert codes == [Code.SPAWN, Code.READY, Code.RUNNING, Code.BLOCKED, Code.READY,
                     Code.RUNNING, Code.READY]
    stamps = [ts for _code, ts in events]
    # one reading for the first three, the next for BLOCKED; after the flush and under the
    # gate, a reading each
    assert stamps[0] == stamps[1] == stamps[2] < stamps[3] < stamps[4] < stamps[5] < stamps[6]


def test_the_environment_variable_selects_the_pure_python_twins() -> None:
    probe = """
    import json
    from loopscope.tracer.recorder import SPEEDUPS, PurePendingBuffer, Recorder
    from loopscope.tracer.models._asyncio_proxy import PureTracedCoroutine, TracedCoroutine
    from loopscope.tracer.models._asyncio_tracer import LoopTracer, PureTracerCore
    from loopscope.tracer.models._asyncio_loop import PureLoopHooks, TracingEventLoop
    print(json.dumps([SPEEDUPS is None, issubclass(Recorder, PurePendingBuffer),
                      TracedCoroutine is PureTracedCoroutine,
                      issubclass(LoopTracer, PureTracerCore),
                      issubclass(TracingEventLoop, PureLoopHooks)]))
    """
    assert run_side(probe, pure=True) == [True, True, True, True, True]
    if SPEEDUPS is not None:
        assert run_side(probe, pure=False) == [False, False, False, False, False]


@needs_extension
def test_c_and_pure_find_the_same_spawns_in_a_code_column() -> None:
    from loopscope.tracer.trace import SpawnedLanes, Trace

    codes = [Code.SPAWN, Code.READY, Code.RUNNING, Code.SPAWN, Code.SPAWN, Code.END,
             Code.WAKE, Code.SPAWN, Code.RUNNING]
    for start in range(len(codes) + 1):
        trace = Trace()
        trace.code.extend(codes)
        found = list(SpawnedLanes(trace).find_spawns(start)._seqs)  # the C pass
        pure: list[int] = []
        at = bytes(codes).find(Code.SPAWN, start)
        while at >= 0:
            pure.append(at)
            at = bytes(codes).find(Code.SPAWN, at + 1)
        assert found == pure == [
            i for i in range(start, len(codes)) if codes[i] == Code.SPAWN]
    assert SPEEDUPS is not None
    with pytest.raises(TypeError):
        SPEEDUPS.code_positions([16, 1], Code.SPAWN, 0)


@needs_extension
def test_c_and_pure_read_the_same_value_row_bases_of_spawns() -> None:
    from array import array

    from loopscope.tracer.values import VALUE_ROW

    assert SPEEDUPS is not None
    detail = array("i", [VALUE_ROW + 2, 7, VALUE_ROW, VALUE_ROW + 1, 3])
    bases = array("i", [40, 41, 42])
    found = SPEEDUPS.value_bases(detail, array("q", [0, 2, 3]), bases, VALUE_ROW)
    assert found is not None and array("i", found).tolist() == [42, 40, 41]
    assert SPEEDUPS.value_bases(detail, array("q", [0, 1]), bases, VALUE_ROW) is None
    assert SPEEDUPS.value_bases(detail, array("q", []), bases, VALUE_ROW) == b""
    with pytest.raises(IndexError):
        SPEEDUPS.value_bases(detail, array("q", [5]), bases, VALUE_ROW)
    with pytest.raises(IndexError):
        SPEEDUPS.value_bases(array("i", [VALUE_ROW + 3]), array("q", [0]), bases, VALUE_ROW)


@needs_extension
def test_c_and_pure_recorders_write_the_same_batches_and_gate_calls() -> None:
    c_side = run_side(RECORDER_PROGRAM, pure=False)
    pure_side = run_side(RECORDER_PROGRAM, pure=True)

    assert c_side == pure_side
    # and what they agree on is what was recorded: batches of at most five, in order
    firsts = [batch[0] for batch in c_side["batches"]]
    sizes = [len(batch[1][0]) for batch in c_side["batches"]]
    assert firsts == [sum(sizes[:i]) for i in range(len(sizes))]
    assert max(sizes[:4]) == 5
    assert [call[:2] for call in c_side["gate"]] == [[5, 0], [0, 1]]
    ts = [t for batch in c_side["batches"] for t in batch[1][0]]
    assert ts[-2:] == [ts[-3] + 7 - 1000, ts[-3] + 14 - 1000]
    # a unique detail is sent once, then forgotten; the same tuple interned is a new row
    assert c_side["unique"] == [["delay_s", 0.5, "deadline_ns", 7], True, True]
    sent = [row for batch in c_side["batches"] for row in batch[2]]
    assert sent.count(["delay_s", 0.5, "deadline_ns", 7]) == 2


@needs_extension
def test_c_and_pure_proxies_trace_an_asyncio_program_identically() -> None:
    c_side = run_side(ASYNCIO_PROGRAM, pure=False)
    pure_side = run_side(ASYNCIO_PROGRAM, pure=True)

    assert c_side["result"] == [5, "PING\n"]
    assert c_side["details"] == pure_side["details"]
    assert c_side["sources"] == pure_side["sources"]
    assert c_side["columns"] == pure_side["columns"]
    kinds = {d.get("cause") for d in c_side["details"]} | {d.get("mode") for d in c_side["details"]}
    assert {"self", "spawn", "task", "future", "fd", "read"} <= kinds


# The traced loop's create_task and call_soon on their less common paths: names given every
# way, a context, a task factory, debug mode, a closed loop, a call the base method refuses.
LOOP_HOOKS_PROGRAM = """
import asyncio, contextvars, json
from loopscope.tracer.events import FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

seen = contextvars.ContextVar("seen", default="outer")
said = []

async def child(n):
    await asyncio.sleep(0)
    return n, seen.get()

async def main():
    loop = asyncio.get_running_loop()
    results = [await loop.create_task(child(1), name=7)]
    results.append(await asyncio.create_task(child(2), name="by asyncio"))
    inner = contextvars.copy_context()
    inner.run(seen.set, "inner")
    results.append(await loop.create_task(child(3), context=inner))
    async with asyncio.TaskGroup() as group:
        grouped = group.create_task(child(4), name="in a group")
    results.append(grouped.result())
    results.extend(await asyncio.gather(child(5), child(6)))
    try:
        loop.call_soon(print, "never", colour="red")
    except TypeError as error:
        said.append(type(error).__name__)
    loop.call_soon(said.append, "soon", context=inner)
    loop.set_task_factory(lambda loop, coro, **kw: asyncio.Task(coro, loop=loop, **kw))
    results.append(await loop.create_task(child(7), name="by the factory"))
    loop.set_task_factory(None)
    loop.set_debug(True)
    results.append(await loop.create_task(child(8)))
    loop.set_debug(False)
    return results

trace = Trace()
recorder = Recorder(trace, clock=FakeClock(tick_ns=1), batch_size=64)
with traced_loops(recorder):
    loop = asyncio.new_event_loop()
    result = loop.run_until_complete(main())
    loop.close()
    for call in (lambda: loop.call_soon(said.append, "late"),
                 lambda: loop.create_task(child(9))):
        try:
            call()
        except RuntimeError as error:
            said.append(str(error))
recorder.close()
events = [list(column) for column in (trace.ts, trace.lane, trace.code, trace.other,
                                      trace.detail, trace.source)]
names = [info.name for info in trace.lanes]
print(json.dumps(dict(result=result, said=said, names=names, events=events,
                      details=trace.details)))
"""


@needs_extension
def test_c_and_pure_loop_hooks_make_and_schedule_alike() -> None:
    c_side = run_both_sides(LOOP_HOOKS_PROGRAM)

    assert c_side["result"] == [[1, "outer"], [2, "outer"], [3, "inner"], [4, "outer"],
                                [5, "outer"], [6, "outer"], [7, "outer"], [8, "outer"]]
    assert c_side["said"] == ["TypeError", "soon", "Event loop is closed",
                              "Event loop is closed"]
    names = c_side["names"]
    assert names[:4] == ["asyncio loop", "main (Task-1)", "7", "by asyncio"]
    # (the task number depends on whether this Python's asyncio.create_task names the task
    # as it makes it, from 3.13, or after)
    assert names[4].startswith("child (Task-") and names[5] == "in a group"
    assert "by the factory" in c_side["names"]


# How the programs below end: their main() run on a traced loop, the events as lists.
RUN_TRACED_MAIN = """
trace = Trace()
recorder = Recorder(trace, clock=FakeClock(tick_ns=1), batch_size=64)
with traced_loops(recorder):
    result = asyncio.run(main())
recorder.close()
events = [list(column) for column in (trace.ts, trace.lane, trace.code, trace.other,
                                      trace.detail, trace.source)]
"""


# Timed sleeps, due at once so that the loop's polls do not wait (their timeouts would differ
# between runs): the SLEEPING detail the timer's scheduling interned, the timer's wake.
SLEEPS_PROGRAM = """
import asyncio, json
from loopscope.tracer.events import FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

async def nap(n):
    await asyncio.sleep(1e-9)
    await asyncio.sleep(1e-9)
    return n

async def naps():
    # delays whose shown value and whose ns round (half-way cases to even): 2.5e-9 s is 2 ns
    for delay in (2.5e-9, 3.5e-9, 1.25e-7, 1.5e-6, 1.5e-6, 2.5e-9):
        await asyncio.sleep(delay)
    loop = asyncio.get_running_loop()
    fired = loop.create_future()
    loop.call_later(0, fired.set_result, 3)  # an int delay, a timer that is not a sleep
    timed = loop.create_future()
    loop.call_at(loop.time(), timed.set_result, 4)
    try:  # a timeout's timer cancels a sleep
        await asyncio.wait_for(asyncio.sleep(10), timeout=1e-6)
    except TimeoutError:
        pass
    return await fired + await timed

async def main():
    return [*await asyncio.gather(nap(1), nap(2)), await naps()]

""" + RUN_TRACED_MAIN + """
print(json.dumps(dict(result=result, events=events, details=trace.details,
                      read=[trace.details[detail] for detail in trace.detail])))
"""


@needs_extension
def test_c_and_pure_record_timed_sleeps_alike() -> None:
    c_side = run_both_sides(SLEEPS_PROGRAM)

    assert c_side["result"] == [1, 2, 7]
    details = dict(zip(c_side["events"][4], c_side["read"], strict=True))
    codes, detail_column = c_side["events"][2], c_side["events"][4]
    slept = [details[detail] for code, detail in zip(codes, detail_column, strict=True)
             if code == Code.SLEEPING]
    assert [detail["delay_s"] for detail in slept] == [
        0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2e-06, 2e-06, 0.0, 10]
    assert all(detail["deadline_ns"] > 0 for detail in slept)
    causes = [details[detail] for code, detail in zip(codes, detail_column, strict=True)
              if code == Code.WAKE]
    timers = [cause for cause in causes if cause.get("cause") == "timer"]
    # each sleep is woken by its own timer, but the last, which the timeout cancels (3.11's
    # wait_for runs it in a task of its own, with a timer of its own)
    assert [cause["deadline_ns"] for cause in timers][: len(slept) - 1] == [
        detail["deadline_ns"] for detail in slept[:-1]]
    assert sum(1 for cause in causes if cause.get("cancel")) == 1


# Sleeps ended otherwise than by their own timers: cancelled from a step, from a plain
# callback and by a timeout's timer, beside one that runs out (each sleep's timer runs
# unwrapped; its wake-up finds the deadline in the SLEEPING detail). The polls' timeouts and
# the timeout's deadline come from the loop's real clock: only the wakes are printed, the
# timeout's deadline as whether it is one.
CANCELLED_SLEEPS_PROGRAM = """
import asyncio, json
from loopscope.tracer.events import Code, FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

async def sleeper(delay):
    try:
        await asyncio.sleep(delay)
    except asyncio.CancelledError:
        return "cancelled"
    return "slept"

async def main():
    loop = asyncio.get_running_loop()
    by_step = asyncio.create_task(sleeper(10), name="by a step")
    by_callback = asyncio.create_task(sleeper(10), name="by a callback")
    runs_out = asyncio.create_task(sleeper(1e-9), name="runs out")
    await asyncio.sleep(0)
    by_step.cancel()
    loop.call_soon(by_callback.cancel)
    results = [await by_step, await by_callback, await runs_out]
    try:
        async with asyncio.timeout(1e-6):
            await asyncio.sleep(10)
    except TimeoutError:
        results.append("timed out")
    return results

""" + RUN_TRACED_MAIN + """
names = {lane: trace.lane_name(lane) for lane in set(trace.lane)}
wakes = []
for lane, code, detail in zip(trace.lane, trace.code, trace.detail):
    if code in (Code.WAKE, Code.SLEEPING):
        shown = dict(trace.details[detail])
        if shown.get("cancel") and "deadline_ns" in shown:
            shown["deadline_ns"] = isinstance(shown["deadline_ns"], int)
        wakes.append([names[lane], Code(code).name, shown])
print(json.dumps(dict(result=result, wakes=wakes)))
"""


@needs_extension
def test_c_and_pure_say_what_ended_a_sleep_alike() -> None:
    c_side = run_both_sides(CANCELLED_SLEEPS_PROGRAM)

    assert c_side["result"] == ["cancelled", "cancelled", "slept", "timed out"]
    wakes = [(name, detail) for name, code, detail in c_side["wakes"] if code == "WAKE"
             and detail.get("cause") not in ("task", None)]
    slept = {name: detail for name, code, detail in c_side["wakes"] if code == "SLEEPING"}
    assert wakes[:3] == [
        ("by a step", {"cause": "future", "cancel": True}),
        ("by a callback", {"cause": "callback", "cancel": True}),
        ("runs out", {"cause": "timer", "deadline_ns": slept["runs out"]["deadline_ns"]}),
    ]
    # the timeout cancels the main task's sleep: not that sleep's own timer
    assert len(wakes) == 4 and wakes[3][0] == "main (Task-1)" and wakes[3][1]["cancel"]
    assert "deadline_ns" not in wakes[3][1] or wakes[3][1]["deadline_ns"] is True


# Eager tasks (3.12+): the first step runs inside the Task constructor, before create_task has
# the task, so the lane is spawned by that step; it is named as any other task's lane is.
EAGER_PROGRAM = """
import asyncio, json
from loopscope.tracer.events import FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

async def done_at_once(n):
    return n

async def suspends(n):
    await asyncio.sleep(0)
    return n

async def main():
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)
    results = [await loop.create_task(done_at_once(1)),
               await loop.create_task(suspends(2)),
               await loop.create_task(done_at_once(3), name="given to the loop"),
               await asyncio.create_task(suspends(4), name="given to asyncio")]
    async with asyncio.TaskGroup() as group:
        grouped = group.create_task(suspends(5), name="in a group")
    results.append(grouped.result())
    loop.set_task_factory(None)
    results.append(await asyncio.Task(suspends(6), loop=loop, eager_start=True,
                                      name="built directly"))
    return results

""" + RUN_TRACED_MAIN + """
names = [info.name for info in trace.lanes]
print(json.dumps(dict(result=result, names=names, events=events, details=trace.details)))
"""


@needs_extension
@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks came with 3.12")
def test_c_and_pure_name_eager_tasks_as_create_task_would() -> None:
    c_side = run_both_sides(EAGER_PROGRAM)

    assert c_side["result"] == [1, 2, 3, 4, 5, 6]
    names = c_side["names"]
    assert names[:3] == ["asyncio loop", "main (Task-1)", "done_at_once (Task-2)"]
    assert names[3] == "suspends (Task-3)"
    assert names[4:] == ["given to the loop", "given to asyncio", "in a group",
                         "built directly"]
    # an eager task is made ready and runs as it is made: its SPAWN, READY and first RUNNING
    # share one clock reading (the FakeClock ticks at every reading)
    events = list(zip(*c_side["events"][:3], strict=True))  # (ts, lane, code) each
    for lane in range(2, len(names)):
        first = [(code, stamp) for stamp, at, code in events if at == lane][:3]
        assert [code for code, _stamp in first] == [Code.SPAWN, Code.READY, Code.RUNNING]
        assert len({stamp for _code, stamp in first}) == 1, (names[lane], first)
    # a task made the usual way (main's) is ready as it is made, and runs later
    first = [(code, stamp) for stamp, at, code in events if at == 1][:3]
    assert [code for code, _stamp in first] == [Code.SPAWN, Code.READY, Code.RUNNING]
    assert first[0][1] == first[1][1] < first[2][1]


# A task's own name is read where the C Task keeps it (learned from the first task get_name
# answered; a number there is "Task-<number>"): every lane's name is still what get_name says,
# for plain and eager tasks, tasks the program named, and a Task subclass with its own get_name.
TASK_NAMES_PROGRAM = """
import asyncio, json, sys
from loopscope.tracer.events import FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

class OwnNameTask(asyncio.Task):
    def get_name(self):
        return "own " + super().get_name()

async def leaf(n):
    return n

async def sleeper(n):
    await asyncio.sleep(0)
    return n

async def main():
    loop = asyncio.get_running_loop()
    made = [("main", asyncio.current_task())]
    made += [("sleeper", asyncio.create_task(sleeper(n))) for n in range(3)]
    made.append((None, asyncio.create_task(sleeper(3), name="named")))
    made.append((None, asyncio.create_task(sleeper(4), name=1234)))
    if sys.version_info >= (3, 12):
        loop.set_task_factory(asyncio.eager_task_factory)
        # (3.13.0's create_task renames a factory's task "None" once the factory returned
        # it, after the eager first step spawned its lane: get_name is asked below no more)
        made += [("", loop.create_task(leaf(n))) for n in range(5, 8)]
        made.append(("", loop.create_task(sleeper(8))))
    loop.set_task_factory(lambda loop, coro, **options: OwnNameTask(coro, loop=loop, **options))
    made += [("", loop.create_task(sleeper(n))) for n in range(9, 11)]
    loop.set_task_factory(None)
    made.append(("leaf", asyncio.create_task(leaf(11))))
    await asyncio.gather(*[task for _, task in made[1:]])
    return [task.get_name() if coro is None else coro + " (" + task.get_name() + ")"
            if coro else None for coro, task in made]

""" + RUN_TRACED_MAIN + """
names = [info.name for info in trace.lanes]
print(json.dumps(dict(result=result, names=names, events=events, details=trace.details)))
"""


@needs_extension
def test_c_and_pure_name_task_lanes_as_get_name_does() -> None:
    c_side = run_both_sides(TASK_NAMES_PROGRAM)

    # a fresh interpreter: asyncio.run's main is Task-1 (3.11 and 3.12 count named tasks too)
    names, asked = c_side["names"], c_side["result"]
    assert names[0] == "asyncio loop"
    assert names[1:7] == ["main (Task-1)", "sleeper (Task-2)", "sleeper (Task-3)",
                          "sleeper (Task-4)", "named", "1234"]
    eager = names[7:-3]
    if sys.version_info >= (3, 12):  # numbered on from the tasks before them, in turn
        first = int(eager[0].removeprefix("leaf (Task-").removesuffix(")"))
        assert first > 4
        assert eager == [f"leaf (Task-{first})", f"leaf (Task-{first + 1})",
                         f"leaf (Task-{first + 2})", f"sleeper (Task-{first + 3})"]
    else:
        assert eager == []
    # the subclass's own get_name (a task factory's task is named once create_task has it,
    # and 3.13.0's create_task renames it "None" there first)
    assert all(name.startswith("sleeper (own ") for name in names[-3:-1])
    assert names[-1].startswith("leaf (Task-")
    # what get_name says once the program is done, where it says the same as at the start
    assert [name for name, said in zip(names[1:], asked, strict=True) if said is not None] \
        == [said for said in asked if said is not None]


# What the C spawn keeps from one task to the next (the last qualname's lane-name stem, the
# first step's source of the last code a proxy was made for) met with what must not reuse it:
# two functions' tasks in turn, one defined in a function ("<locals>."), a __qualname__
# changed between tasks, a coroutine stepped before it became a task (its first step through
# the proxy is not at the code's start), eager tasks of one code, one the program named.
TASK_STEMS_PROGRAM = """
import asyncio, json, sys
from loopscope.tracer.events import FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

async def leaf(n):
    return n

def make_inner():
    async def inner(n):
        await asyncio.sleep(0)
        return n
    return inner

inner = make_inner()

async def main():
    loop = asyncio.get_running_loop()
    tasks = []
    for n in range(3):
        tasks.append(asyncio.create_task(leaf(n)))
        tasks.append(asyncio.create_task(inner(n)))
    inner.__qualname__ = "renamed"
    tasks.append(asyncio.create_task(inner(3)))
    inner.__qualname__ = "make_inner.<locals>.inner"
    tasks.append(asyncio.create_task(inner(4)))
    started = inner(5)
    started.send(None)  # at its await now: the task's first step resumes it there
    tasks.append(asyncio.create_task(started))
    tasks.append(asyncio.create_task(inner(6)))
    if sys.version_info >= (3, 12):
        loop.set_task_factory(asyncio.eager_task_factory)
        tasks += [loop.create_task(leaf(n)) for n in range(7, 10)]
        tasks.append(loop.create_task(leaf(10), name="ten"))
        tasks += [loop.create_task(inner(n)) for n in range(11, 13)]
        loop.set_task_factory(None)
    return await asyncio.gather(*tasks)

""" + RUN_TRACED_MAIN + """
names = [info.name for info in trace.lanes]
running = [[trace.lane[seq], list(trace.sources[trace.source[seq]])]
           for seq in range(len(trace)) if trace.code[seq] == 0]
print(json.dumps(dict(result=result, names=names, running=running, events=events,
                      details=trace.details)))
"""


@needs_extension
def test_c_and_pure_name_and_place_tasks_of_shared_and_changed_qualnames_alike() -> None:
    c_side = run_both_sides(TASK_STEMS_PROGRAM)

    names = c_side["names"]
    numbered = [name.rsplit(" (Task-", 1)[0] for name in names[2:]]
    plain = ["leaf", "inner"] * 3 + ["renamed", "inner", "inner", "inner"]
    eager = ["leaf"] * 3 + ["ten", "inner", "inner"] if sys.version_info >= (3, 12) else []
    assert numbered == plain + eager
    eager_results = list(range(7, 13)) if eager else []
    assert c_side["result"] == [0, 0, 1, 1, 2, 2, 3, 4, 5, 6, *eager_results]
    by_lane = {lane: name for lane, name in enumerate(names)}
    first_steps: dict[str, list[int]] = {}
    for lane, (_file, line, _text) in c_side["running"]:
        first_steps.setdefault(by_lane[lane], []).append(line)
    inner_lines = {name: lines for name, lines in first_steps.items() if "inner" in name}
    started_line = inner_lines[names[10]][0]  # the task of the coroutine stepped before
    assert started_line == inner_lines[names[9]][1]  # where inner(4) resumed: its await
    assert started_line != inner_lines[names[9]][0]  # not where it began
    assert inner_lines[names[11]][0] == inner_lines[names[9]][0]


# A task whose own coroutine is library code (compiled under a file name in the standard
# library, as aiohttp's RequestHandler is in site-packages) awaiting the program's handler,
# which awaits a helper of its own: the task steps at the handler's or helper's line.
LIBRARY_TASK_PROGRAM = """
import asyncio, json, sysconfig
from pathlib import Path
from loopscope.tracer.events import FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

LIBRARY = '''
async def serve(handler):
    await asyncio.sleep(0)
    result = await handler()
    await asyncio.sleep(0)
    return result
'''
library_file = str(Path(sysconfig.get_paths()["stdlib"]) / "loopscope_test_server.py")
space = {"asyncio": asyncio}
exec(compile(LIBRARY, library_file, "exec"), space)

async def helper():
    await asyncio.sleep(0)

async def handler():
    await asyncio.sleep(0)
    await helper()
    return 7

async def main():
    return await asyncio.create_task(space["serve"](handler), name="served")

trace = Trace()
recorder = Recorder(trace, clock=FakeClock(tick_ns=1), batch_size=64)
with traced_loops(recorder):
    result = asyncio.run(main())
recorder.close()
served = next(info.id for info in trace.lanes if info.name == "served")
steps = [[Path(trace.sources[trace.source[seq]][0]).name, trace.sources[trace.source[seq]][1]]
         for seq in range(len(trace)) if trace.lane[seq] == served and trace.code[seq] == 0]
print(json.dumps({
    "result": result,
    "steps": steps,
    "columns": [list(trace.ts), list(trace.lane), list(trace.code), list(trace.other),
                list(trace.detail), list(trace.source)],
    "sources": [list(s) for s in trace.sources],
}))
"""


@needs_extension
def test_a_library_task_steps_at_the_programs_innermost_line_in_c_and_pure() -> None:
    c_side = run_side(LIBRARY_TASK_PROGRAM, pure=False)
    pure_side = run_side(LIBRARY_TASK_PROGRAM, pure=True)

    program = "<string>"  # the test program's own lines, run with python -c
    assert c_side["result"] == 7
    # serve's first step and its line before it calls the handler are its own (no program
    # coroutine is in its await chain yet); then the handler's await (line 24), the helper's
    # inside it (21, the innermost), and serve's own again once the handler has returned
    assert c_side["steps"] == [
        ["loopscope_test_server.py", 2], ["loopscope_test_server.py", 3],
        [program, 24], [program, 21], ["loopscope_test_server.py", 5]]
    assert c_side["columns"] == pure_side["columns"]
    assert c_side["sources"] == pure_side["sources"]


# A program of tests/tracer/blocked_calls.py (the function {main}): a task blocked in library
# calls, named by the call the program made
BLOCKED_CALLS_PROGRAM = """
import asyncio, json, sys
sys.path.insert(0, {root!r})
from loopscope.tracer.events import Code, FakeClock
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace
from tests.tracer.blocked_calls import {main} as main
""" + RUN_TRACED_MAIN + """
main_lane = next(info.id for info in trace.lanes if info.name.startswith("{main} "))
waits = [trace.details[detail].get("on") for lane, code, detail
         in zip(trace.lane, trace.code, trace.detail) if lane == main_lane and code == Code.BLOCKED]
print(json.dumps(dict(waits=waits, events=events, details=trace.details)))
"""


@needs_extension
@pytest.mark.parametrize(("main", "blocked_on"), [
    ("main", blocked_calls.BLOCKED_ON * 3),
    ("as_completed_main", ["as_completed"] * 2 * 3 * blocked_calls.AS_COMPLETED_FORMS),
])
def test_c_and_pure_name_a_blocked_wait_by_the_call_the_program_made_alike(
    main: str, blocked_on: list[str]
) -> None:
    root = str(Path(__file__).resolve().parents[2])
    c_side = run_both_sides(BLOCKED_CALLS_PROGRAM.format(root=root, main=main))

    assert c_side["waits"] == blocked_on


# The loop lane's polls, driven directly: timeouts a timer loop passes (floats, repeated and
# alternating with None and 0) and select() results with read, write and both.
POLL_PROGRAM = """
import json, selectors, socket
from loopscope.tracer.events import FakeClock
from loopscope.tracer.models._asyncio_tracer import LoopTracer
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

trace = Trace()
recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
tracer = LoopTracer(recorder)
selector = selectors.DefaultSelector()
left, right = socket.socketpair()
read_key = selector.register(left, selectors.EVENT_READ)
both_key = selector.register(right, selectors.EVENT_READ | selectors.EVENT_WRITE)
both = selectors.EVENT_READ | selectors.EVENT_WRITE
results = [[], [(read_key, selectors.EVENT_READ)], [(both_key, both)],
           [(read_key, selectors.EVENT_READ), (both_key, selectors.EVENT_WRITE)], []]
for timeout in (None, 0, None, 0.25, 0.25, 0, 0.123456, None, 0):
    tracer.poll_started(timeout)
    tracer.poll_returned(results[0])
    results.append(results.pop(0))
recorder.close()
print(json.dumps({
    "fds": [left.fileno(), right.fileno()],
    "columns": [list(trace.lane), list(trace.code), list(trace.detail)],
    "details": trace.details,
}))
"""


@needs_extension
def test_c_and_pure_loop_tracers_record_the_same_polls() -> None:
    c_side = run_both_sides(POLL_PROGRAM)

    left, right = c_side["fds"]
    lanes, codes, details = c_side["columns"]
    rows = c_side["details"]
    polls = [(Code(code), rows[detail]) for code, detail in zip(codes, details, strict=True)
             if code in (Code.POLL, Code.ANNOTATE)]
    timeouts = [row["timeout_s"] for code, row in polls if code == Code.POLL]
    assert timeouts == [None, 0, None, 0.25, 0.25, 0, 0.1235, None, 0]
    found = [(row["readable"], row["writable"]) for code, row in polls if code == Code.ANNOTATE]
    assert found[:5] == [([], []), ([left], []), ([right], [right]), ([left], [right]), ([], [])]
    assert found[5:] == found[:4]
    # each poll is POLL, ANNOTATE, DISPATCH on the loop lane
    assert codes[-27:] == [Code.POLL, Code.ANNOTATE, Code.DISPATCH] * 9
    assert set(lanes[-27:]) == {lanes[-1]}


@needs_extension
def test_the_native_clock_is_the_one_perf_counter_ns_reads() -> None:
    assert SPEEDUPS is not None
    if not SPEEDUPS.HAVE_NATIVE_CLOCK:
        pytest.skip("no native clock on this platform")
    for _ in range(1000):
        before = time.perf_counter_ns()
        native = SPEEDUPS.monotonic_ns()
        after = time.perf_counter_ns()
        assert before <= native <= after


@needs_extension
def test_the_c_recorder_refuses_fields_the_wire_cannot_carry() -> None:
    from loopscope.tracer.events import FakeClock
    from loopscope.tracer.recorder import Recorder
    from loopscope.tracer.trace import Trace

    recorder = Recorder(Trace(), clock=FakeClock())
    with pytest.raises(OverflowError):
        recorder.record(2**31, 0)
    with pytest.raises(OverflowError):
        recorder.record(0, 128)
    with pytest.raises(TypeError):
        recorder.record(0, 0, colour=1)  # type: ignore[call-arg]
    assert recorder.event_count == 0


def resident_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@needs_extension
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_records_and_proxy_steps_do_not_leak() -> None:
    import asyncio

    from loopscope.tracer.events import Code
    from loopscope.tracer.models.asyncio_model import traced_loops
    from loopscope.tracer.recorder import Recorder

    class CountingSink:
        events = 0

        def write_batch(self, batch: Batch) -> None:
            self.events += len(batch.columns[0])

    async def spinners() -> None:
        async def spin() -> None:
            for _ in range(500):
                await asyncio.sleep(0)

        await asyncio.gather(*(spin() for _ in range(100)))

    def one_round() -> int:
        sink = CountingSink()
        recorder = Recorder(sink)
        for lane in range(100_000):
            recorder.record(lane, Code.RUNNING, -1, 0, 0)
            recorder.handoff(lane, lane + 1, 0, Code.BLOCKED, 0, 0)
        with traced_loops(recorder):
            asyncio.run(spinners())  # 50,000 proxied steps
        recorder.close()
        return sink.events

    one_round()  # warm-up: imports, interned tables, allocator pools
    one_round()
    before = resident_kib()
    for _ in range(4):
        events = one_round()
    grown = resident_kib() - before

    assert events > 500_000
    # a leaked object per event or per step would be tens of megabytes by now
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 4 rounds"


# Scripts as users write them: what the C compile of a script must make of them exactly what
# the builtin makes (the code, or the SyntaxError).
SCRIPTS = (
    b'"""A docstring."""\nimport sys\nx = 1\nprint(x, file=sys.stderr)\n',
    "# -*- coding: latin-1 -*-\nname = 'caf\u00e9'\n".encode("latin-1"),
    "\ufeffname = 'caf\u00e9 \u2615'\n".encode("utf-8"),
    b"from __future__ import annotations\ndef f(a: int) -> Missing:\n    return a\n",
    b"import asyncio\nasync def main():\n    await asyncio.sleep(0)\n"
    b"    return [i async for i in agen()]\nasync def agen():\n    yield 1\n",
    b"def outer():\n    k = 2\n    return lambda v: [v * k for _ in range(3)]\n",
    b"x = (\n",
    b"def f(:\n    pass\n",
    b"if True:\n  a = 1\n    b = 2\n",
    b"return 5\n",
    b"# -*- coding: no-such-codec -*-\nx = 1\n",
)


def _compiled(compile_source: Any, source: bytes) -> object:
    try:
        return compile_source(source, "/scripts/prog.py")
    except SyntaxError as error:
        return (type(error).__name__, error.msg, error.filename, error.lineno, error.offset,
                error.text, error.end_lineno, error.end_offset)


@needs_extension
def test_c_compiles_a_script_as_the_builtin_does() -> None:
    assert SPEEDUPS is not None
    for source in SCRIPTS:
        by_c = _compiled(SPEEDUPS.compile_script, source)
        by_builtin = _compiled(
            lambda text, name: compile(text, name, "exec", dont_inherit=True), source)
        assert by_c == by_builtin, source
    # what the builtin refuses differently on each version is left to it (tracer.program)
    with pytest.raises(ValueError, match="NUL"):
        SPEEDUPS.compile_script(b"x = 1\0\n", "/scripts/prog.py")


def test_a_script_runs_in_the_world_runpy_gives_it_without_building_the_ast_types(
        tmp_path: Any) -> None:
    """Program.run_script compiles a plain script in C (tracer.program.compile_script), or
    with the builtin compile() on the pure path, and runs it as runpy.run_path does: the
    script sees the same module, argv and traceback either way, and in C no compile() runs,
    the one call that builds the ast module's types."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        \"\"\"The script's docstring.\"\"\"
        import json, sys, traceback
        try:
            raise ValueError("from the script")
        except ValueError:
            where = traceback.extract_tb(sys.exc_info()[2])[-1]
        main = sys.modules["__main__"]
        seen = [__name__, __file__, __package__, __spec__, __loader__,
                globals().get("__cached__", "none on 3.15"), __doc__,
                sys.argv, main.__dict__ is globals(), where.filename, where.lineno,
                where.line, sorted(name for name in globals() if name.startswith("__"))]
        print(json.dumps([repr(value) for value in seen]))
        """), encoding="utf-8")
    probe = f"""
    import json, sys
    from loopscope.tracer.program import Program
    compiled = []
    main_before = sys.modules["__main__"]
    # (the import system's compiles, of a module whose cached bytecode is stale, not counted)
    sys.setprofile(lambda frame, event, arg: compiled.append(1)
                   if event == "c_call" and arg is compile
                   and "importlib" not in frame.f_code.co_filename else None)
    Program(model="asyncio", script={str(script)!r}, argv=["one"]).run_script()
    sys.setprofile(None)
    main_after = sys.modules["__main__"]
    print(json.dumps([main_after is not main_before and main_after.seen is not None,
                      len(compiled)]))
    """
    sides = []
    for pure in (False, True):
        env = {key: value for key, value in os.environ.items()
               if key != "LOOPSCOPE_PURE_PYTHON"}
        if pure:
            env["LOOPSCOPE_PURE_PYTHON"] = "1"
        done = subprocess.run([sys.executable, "-c", textwrap.dedent(probe)], env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        seen, (main_kept, compiles) = map(json.loads, done.stdout.splitlines())
        assert main_kept  # the script's module stays __main__, as the interpreter leaves it
        sides.append((seen, compiles))
    (c_seen, c_compiles), (pure_seen, pure_compiles) = sides
    assert c_seen == pure_seen
    assert c_seen[0] == "'__main__'" and c_seen[7] == repr([str(script), "one"])
    assert pure_compiles == 1  # the builtin compile(), as runpy.run_path's
    # the first probe runs with the C extension wherever it is built, whichever tracer this
    # process uses (the pure-Python run of the suite sets LOOPSCOPE_PURE_PYTHON for it)
    built = importlib.util.find_spec("loopscope.tracer._speedups") is not None
    assert c_compiles == (0 if built else 1)


def test_c_and_pure_make_the_process_adopt_its_orphans_alike() -> None:
    """tracer.descendants.become_subreaper: prctl in C (no ctypes for the command line to
    load), through ctypes in the pure twin; the kernel says the same after either."""
    probe = """
    import json, sys
    from loopscope.tracer.descendants import become_subreaper
    made = become_subreaper()
    loaded_ctypes = "ctypes" in sys.modules
    import ctypes
    answer = ctypes.c_int(0)
    ctypes.CDLL(None, use_errno=True).prctl(37, ctypes.byref(answer), 0, 0, 0)  # GET_...
    print(json.dumps([made, answer.value, loaded_ctypes]))
    """
    if not sys.platform.startswith("linux"):
        pytest.skip("a subreaper is Linux's")
    assert run_side(probe, pure=True) == [True, 1, True]
    if SPEEDUPS is not None:
        assert run_side(probe, pure=False) == [True, 1, False]
