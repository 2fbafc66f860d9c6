"""loopscope.tracer._handoffs against the Python hooks it accelerates: the same events, no leaks.

Which hooks run is decided by tracer._handoffs being built and LOOPSCOPE_PURE_PYTHON, so each
side runs in a child interpreter of its own and prints the trace it recorded with a FakeClock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from loopscope.tracer.events import Batch
from loopscope.tracer.recorder import SPEEDUPS

try:
    from loopscope.tracer import _handoffs
except ImportError:
    _handoffs = None  # type: ignore[assignment,unused-ignore]

needs_extension = pytest.mark.skipif(
    SPEEDUPS is None or _handoffs is None, reason="loopscope.tracer._handoffs is not built")

# Records `body` (which defines main()) with the given model's tracer and prints the trace.
HARNESS = """
import json, sys
from loopscope.tracer.events import FakeClock
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace
from loopscope.tracer.models.generator_model import c_handoffs

trace = Trace()
recorder = Recorder(trace, clock=FakeClock(tick_ns=3), batch_size=64)
{install}
try:
    main()
finally:
    {uninstall}
recorder.close()
print(json.dumps({{
    "accelerated": c_handoffs(recorder) is not None,
    "columns": [list(trace.ts), list(trace.lane), list(trace.code), list(trace.other),
                list(trace.detail), list(trace.source)],
    # every event's detail as it reads, value rows included
    "details": [trace.details[index] for index in trace.detail],
    "sources": [list(s) for s in trace.sources],
}}))
"""

GENERATOR_INSTALL = """
from loopscope.tracer.models.generator_model import GeneratorTracer, ProgramCode, make_backend
tracer = GeneratorTracer(recorder, ProgramCode())
backend = make_backend(tracer)
backend.install()
"""

# Sends of every kind of plain argument (local, cell, global, constant, unbound), values with
# stable and unstable reprs and a long one, next() and for-loops, yield from, throw (caught
# and not), close (of a started and a suspended generator), a generator that raises, a
# return value, a generator driving another, a round-robin of two, sends from a method
# called afresh for each send, from main and from a generator lane, and hand-offs down
# `yield from` and `await` chains (sends with values, an early return, a throw caught and not
# by the innermost generator, a close through the chain).
GENERATOR_PROGRAM = """
import asyncio
import types

LIMIT = 7

def leaf_values(n):
    for i in range(n):
        got = yield i
        if got == "stop":
            return "stopped early"
    return "leaf done"

def middle_chain(n):
    result = yield from leaf_values(n)
    yield ("middle", result)
    yield from leaf_values(1)

def outer_chain(n):
    yield from middle_chain(n)

def catching_leaf():
    while True:
        try:
            yield "waiting"
        except KeyError:
            yield "caught"

def thrower():
    yield from catching_leaf()

@types.coroutine
def suspend(value):
    got = yield value
    return got

async def awaiting_leaf(n):
    total = 0
    for i in range(n):
        total += await suspend(i) or 0
    return total

async def returns_at_once(n):
    return n

async def awaits_library_code():
    await asyncio.sleep(0)
    return await returns_at_once(1)

async def awaiting_root():
    first = await awaiting_leaf(2)
    second = await awaiting_leaf(3)
    third = await returns_at_once(4)  # never suspends: a call, not a lane
    return first + second + third + await awaits_library_code()

def echo():
    reply = None
    while True:
        try:
            item = yield reply
        except KeyError as error:
            reply = f"caught {error}"
            continue
        if item is None:
            return "stopped"
        reply = item

def counter(n):
    for i in range(n):
        yield i

def relay(inner):
    total = yield from inner
    yield ("relayed", total)

def failing():
    yield 1
    raise ValueError("bad generator")

def driver_generator(worker):
    for value in range(3):
        got = worker.send(value)
        yield got

class Stepper:
    def __init__(self, gen):
        self.gen = gen

    def step(self, value):
        return self.gen.send(value)

def feeder(stepper):
    for value in range(3):
        stepper.step(value)
        yield value

class Tree:
    def __init__(self, left, value, right):
        self.left, self.value, self.right = left, value, right

    def __iter__(self):
        if self.left:
            yield from self.left
        yield self.value
        if self.right:
            yield from self.right

def tree(values):
    if not values:
        return None
    middle = len(values) // 2
    return Tree(tree(values[:middle]), values[middle], tree(values[middle + 1:]))

def evens(n):
    for value in counter(n):  # a lane's for loop starting lanes
        if value % 2 == 0:
            yield value

def main():
    # more lanes than the per-lane tables grow by at once, each started by a lane's
    # `yield from` or for loop and ending with None
    for _ in tree(list(range(300))):
        pass
    for _ in range(3):
        for _ in evens(4):
            pass
    worker = echo()
    next(worker)
    shared = "shared"
    def closure_send():
        return worker.send(shared)
    for n in range(5):
        worker.send(n)
        worker.send(n)
        worker.send("same")
        worker.send(LIMIT)
        worker.send(3.5)
        worker.send([n, n])
        worker.send("x" * 60)
        worker.send(n + 1)
        closure_send()
        worker.throw(KeyError("k"))
    for edge in (-5, 2**63 - 1, -2**63, 2**64, -2**70, True, 10**50, 10**5000,
                 9, 10, 99, 100, 1009, -10, -99, -100, 123456, 2**30, -(2**60)):
        worker.send(edge)  # ints written in C must read as repr() writes them
    try:
        worker.send(None)
    except StopIteration as stop:
        assert stop.value == "stopped"
    for _ in counter(4):
        pass
    relayer = relay(echo())
    next(relayer)
    relayer.send(5)
    relayer.send(6)
    relayer.close()
    for source in (counter(2), [10, 11], range(2), counter(1)):
        # the same `yield from` passing up a lane's values, then a list's and a range's
        for _ in relay(source):
            pass
    boom = failing()
    next(boom)
    try:
        next(boom)
    except ValueError:
        pass
    suspended = counter(10)
    next(suspended)
    suspended.close()
    never = counter(2)
    never.close()
    inner = echo()
    next(inner)
    for got in driver_generator(inner):
        pass
    a, b = counter(3), counter(3)
    queue = [a, b]
    while queue:
        current = queue.pop(0)
        try:
            next(current)
        except StopIteration:
            continue
        queue.append(current)
    stepped = echo()
    next(stepped)
    stepper = Stepper(stepped)
    for n in range(4):
        stepper.step(n)  # a new driver frame per send, called from main
    for _ in feeder(stepper):  # the same code, called from a generator lane
        pass
    for n in range(2):
        stepper.step(n)
    left_open = echo()
    next(left_open)
    left_open.send("bye")
    chain = outer_chain(3)
    next(chain)
    ten = 10
    chain.send(ten)
    chain.send(ten)
    chain.send("x" * 50)
    for _ in chain:
        pass
    early = outer_chain(5)
    next(early)
    early.send("stop")
    early.close()
    catcher = thrower()
    next(catcher)
    catcher.throw(KeyError("k"))
    next(catcher)
    try:
        catcher.throw(ValueError("v"))
    except ValueError:
        pass
    root = awaiting_root()
    try:
        while True:
            root.send(None)
    except StopIteration:
        pass
"""

GREENLET_INSTALL = """
from loopscope.tracer.models._greenlets import GreenletTracer
tracer = GreenletTracer(recorder)
tracer.install()
"""

# Ping-pong between two greenlets from several call sites, a greenlet started and finished
# inside another, one that dies by an exception, a throw, and one left suspended.
GREENLET_PROGRAM = """
from greenlet import greenlet, GreenletExit

def main():
    def ping():
        for n in range(20):
            pong_greenlet.switch(n)
            if n % 3 == 0:
                pong_greenlet.switch("again")

    def pong(first):
        while True:
            ping_greenlet.switch()
            helper = greenlet(short_lived)
            helper.switch()

    def short_lived():
        return "done"

    def doomed():
        greenlet.getcurrent().parent.switch()
        raise RuntimeError("doomed")

    ping_greenlet = greenlet(ping)
    pong_greenlet = greenlet(pong)
    ping_greenlet.switch()
    victim = greenlet(doomed)
    victim.switch()
    try:
        victim.switch()
    except RuntimeError:
        pass
    sleeper = greenlet(lambda: greenlet.getcurrent().parent.switch())
    sleeper.switch()
    thrown = greenlet(lambda: greenlet.getcurrent().parent.switch())
    thrown.switch()
    thrown.throw(GreenletExit)
"""


def run_side(install: str, uninstall: str, program: str, pure: bool,
             generator_hook: str = "") -> Any:
    env = dict(os.environ)
    env.pop("LOOPSCOPE_PURE_PYTHON", None)
    env["LOOPSCOPE_GENERATOR_HOOK"] = generator_hook
    if pure:
        env["LOOPSCOPE_PURE_PYTHON"] = "1"
    source = textwrap.dedent(program) + HARNESS.format(
        install=textwrap.dedent(install).strip(), uninstall=uninstall)
    done = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@needs_extension
def test_c_and_python_generator_hooks_record_the_same_trace() -> None:
    c_side = run_side(GENERATOR_INSTALL, "backend.uninstall(); tracer.finish()",
                      GENERATOR_PROGRAM, pure=False)
    pure_side = run_side(GENERATOR_INSTALL, "backend.uninstall(); tracer.finish()",
                         GENERATOR_PROGRAM, pure=True)

    assert c_side["accelerated"] and not pure_side["accelerated"]
    assert c_side["columns"] == pure_side["columns"]
    assert c_side["details"] == pure_side["details"]
    assert c_side["sources"] == pure_side["sources"]
    # and what they agree on carries the values handed over, read from every kind of site
    values = {detail.get("value") for detail in c_side["details"] if "value" in detail}
    assert {"0", "'same'", "7", "3.5", "[4, 4]", "'shared'"} <= values
    assert {"-5", str(2**63 - 1), str(-2**63), str(2**64), str(-2**70), "True"} <= values
    assert {"9", "10", "99", "100", "1009", "-10", "-99", "-100", "123456", str(2**30),
            str(-(2**60))} <= values
    assert any(value.startswith("1000") and value.endswith("…") for value in values)
    assert any(value.startswith("<unrepresentable int") for value in values)  # 5,001 digits
    assert any(value.endswith("…") for value in values)
    assert {"via": "throw"} in c_side["details"]
    # coroutines awaited that never suspend are calls; one suspending in library code a lane
    lanes = {detail.get("name") for detail in c_side["details"] if "name" in detail}
    assert "awaits_library_code" in lanes and "returns_at_once" not in lanes
    assert {"error": "ValueError: bad generator"} in c_side["details"]


@needs_extension
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11's two C hooks")
def test_the_c_trace_function_fallback_records_the_same_trace_too() -> None:
    # 3.11 follows generators from the frame evaluation hook, or from a C trace function where
    # another tool holds that hook (or the stack runs low); both must agree with pure Python.
    args = (GENERATOR_INSTALL, "backend.uninstall(); tracer.finish()", GENERATOR_PROGRAM)
    trace_side = run_side(*args, pure=False, generator_hook="trace")
    pure_side = run_side(*args, pure=True)
    assert trace_side["columns"] == pure_side["columns"]
    assert trace_side["details"] == pure_side["details"]


# Recurses far deeper than the C stack would allow with a C frame per Python call (as 3.11
# evaluates with any evaluation hook installed), between two rounds of hand-offs.
DEEP_PROGRAM = """
import sys

def echo():
    item = None
    while True:
        item = yield item

def depth(n):
    return 0 if n == 0 else 1 + depth(n - 1)

def main():
    sys.setrecursionlimit(400_000)
    worker = echo()
    next(worker)
    worker.send("before")
    assert depth(300_000) == 300_000
    worker.send("after")
"""


@needs_extension
def test_a_recursion_deeper_than_the_c_stack_neither_crashes_nor_loses_hand_offs() -> None:
    side = run_side(GENERATOR_INSTALL, "backend.uninstall(); tracer.finish()", DEEP_PROGRAM,
                    pure=False)
    values = [detail.get("value") for detail in side["details"] if "value" in detail]
    assert values == ["None", "'before'", "'before'", "'after'", "'after'"]


# A __repr__ that raises KeyboardInterrupt while a hand-off is recorded: the program must see
# it (as Ctrl-C, or a stop request raised in the recorder), not have it swallowed.
INTERRUPT_PROGRAM = """
class Touchy:
    def __repr__(self):
        raise KeyboardInterrupt

def echo():
    while True:
        yield Touchy()

outcome = []

def main():
    worker = echo()
    try:
        next(worker)
        outcome.append("not interrupted")
    except KeyboardInterrupt:
        outcome.append("interrupted")
    assert outcome == ["interrupted"], outcome
"""


@needs_extension
@pytest.mark.parametrize(("pure", "generator_hook"), [(False, ""), (False, "trace"),
                                                      (True, "")])
def test_an_interrupt_raised_while_recording_reaches_the_program(
    pure: bool, generator_hook: str
) -> None:
    run_side(GENERATOR_INSTALL, "backend.uninstall(); tracer.finish()", INTERRUPT_PROGRAM,
             pure=pure, generator_hook=generator_hook)


# The program's own trace function: it still sees its generators' lines, and none of ours.
OWN_TRACE_PROGRAM = """
import sys

def counter():
    for n in range(3):
        yield n

seen = []

def own_trace(frame, event, arg):
    seen.append((frame.f_code.co_filename, frame.f_code.co_name, event))
    return own_trace

def main():
    sys.settrace(own_trace)
    try:
        assert sum(counter()) == 3
    finally:
        sys.settrace(None)
    assert not [s for s in seen if "/tracer/" in s[0]], [s for s in seen if "/tracer/" in s[0]]
    lines = [s for s in seen if s[1] == "counter" and s[2] == "line"]
    assert len(lines) >= 6, seen
"""


@needs_extension
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11's evaluation hook")
def test_the_programs_own_trace_function_sees_its_lines_and_none_of_ours() -> None:
    side = run_side(GENERATOR_INSTALL, "backend.uninstall(); tracer.finish()",
                    OWN_TRACE_PROGRAM, pure=False)
    switches = [detail for detail in side["details"] if detail.get("via") == "yield"]
    assert len(switches) == 3  # and the generator was followed all along, each yield once


@needs_extension
def test_c_and_python_greenlet_hooks_record_the_same_trace() -> None:
    c_side = run_side(GREENLET_INSTALL, "tracer.uninstall()", GREENLET_PROGRAM, pure=False)
    pure_side = run_side(GREENLET_INSTALL, "tracer.uninstall()", GREENLET_PROGRAM, pure=True)

    assert c_side["accelerated"] and not pure_side["accelerated"]
    assert c_side["columns"] == pure_side["columns"]
    assert c_side["details"] == pure_side["details"]
    assert c_side["sources"] == pure_side["sources"]
    switch_code = 18
    assert c_side["columns"][2].count(switch_code) > 60


def test_the_environment_variable_selects_the_python_hooks() -> None:
    probe = """
    import json
    from loopscope.tracer.models.generator_model import c_handoffs
    from loopscope.tracer.recorder import Recorder
    class Sink:
        def write_batch(self, batch): pass
    print(json.dumps(c_handoffs(Recorder(Sink())) is None))
    """
    pure = run_side("", "pass", "def main(): pass\n", pure=True)
    assert not pure["accelerated"]
    env = dict(os.environ, LOOPSCOPE_PURE_PYTHON="1")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(probe)], capture_output=True,
                          text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) is True


@needs_extension
def test_the_hooks_refuse_a_recorder_without_c_columns() -> None:
    from loopscope.tracer.events import FakeClock
    from loopscope.tracer.models._greenlets import GreenletTracer
    from loopscope.tracer.recorder import PurePendingBuffer

    class PureRecorder(PurePendingBuffer):
        pass

    tracer = GreenletTracer.__new__(GreenletTracer)
    with pytest.raises(TypeError, match="RecorderCore"):
        _handoffs.SwitchTrace(tracer, PureRecorder(), print)
    with pytest.raises(TypeError, match="RecorderCore"):
        _handoffs.GeneratorHooks(tracer, FakeClock(), print, print, repr, object())


def resident_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@needs_extension
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_generator_and_greenlet_handoffs_do_not_leak() -> None:
    from collections.abc import Generator

    from greenlet import greenlet

    from loopscope.tracer.models._greenlets import GreenletTracer
    from loopscope.tracer.models.generator_model import GeneratorTracer, ProgramCode, make_backend
    from loopscope.tracer.recorder import Recorder

    class CountingSink:
        events = 0

        def write_batch(self, batch: Batch) -> None:
            self.events += len(batch.columns[0])

    def consumer() -> Generator[str, object, None]:
        reply = ""
        while True:
            item = yield reply
            reply = "200 OK" if item else ""

    def produce(sends: int) -> None:
        worker = consumer()
        next(worker)
        for n in range(sends):
            worker.send(n % 7)  # a few values over and over: the table stays small
        worker.close()

    def ping_pong(switches: int) -> None:
        def ping() -> None:
            for _ in range(switches // 2):
                pong_greenlet.switch()

        def pong() -> None:
            while True:
                ping_greenlet.switch()

        ping_greenlet, pong_greenlet = greenlet(ping), greenlet(pong)
        ping_greenlet.switch()

    def one_round() -> int:
        sink = CountingSink()
        recorder = Recorder(sink)
        backend = make_backend(GeneratorTracer(recorder, ProgramCode()))
        backend.install()
        try:
            produce(50_000)
        finally:
            backend.uninstall()
        glets = GreenletTracer(recorder)
        glets.install()
        try:
            ping_pong(50_000)
        finally:
            glets.uninstall()
        recorder.close()
        return sink.events

    one_round()  # warm-up: imports, interned tables, allocator pools
    one_round()
    before = resident_kib()
    for _ in range(4):
        events = one_round()
    grown = resident_kib() - before

    assert events > 400_000
    # a leaked object per hand-off would be tens of megabytes by now
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 4 rounds"


def _hooks_on_this_frame() -> tuple[Any, Any, int]:
    """GeneratorHooks whose tracer takes the calling test's frame for a lane."""
    from loopscope.tracer.events import NO_LANE, LaneKind
    from loopscope.tracer.models.generator_model import _MISSING, GeneratorTracer
    from loopscope.tracer.recorder import Recorder
    from loopscope.tracer.trace import Trace

    recorder = Recorder(Trace())
    tracer = GeneratorTracer(recorder, lambda code: True)

    def fallback(*args: Any) -> None:
        raise AssertionError("the C hooks should have raised instead")

    hooks = _handoffs.GeneratorHooks(tracer, recorder, fallback, fallback, repr, _MISSING)
    lane = tracer._new_lane("probe", LaneKind.GENERATOR, NO_LANE, 0)
    tracer.lanes[sys._getframe(1)] = lane
    return hooks, tracer, lane


@needs_extension
def test_a_value_cache_row_of_the_wrong_shape_is_a_clean_error() -> None:
    hooks, tracer, lane = _hooks_on_this_frame()
    tracer.sites[lane] = (*tracer.sites[lane][:2], lane, *tracer.sites[lane][3:])
    tracer.yielded_values[lane] = (5, "yield")  # a CachedValue has three fields
    with pytest.raises(TypeError, match="value cache is not a tuple of 3 fields"):
        hooks.on_yield(sys._getframe().f_code, 0, 5)


@needs_extension
def test_a_value_read_of_the_wrong_shape_is_a_clean_error() -> None:
    from loopscope.tracer.models._plain_loads import READ_LOCAL

    hooks, tracer, lane = _hooks_on_this_frame()
    driver = sys._getframe().f_back
    assert driver is not None
    site = list(tracer.sites[lane])
    site[:4] = [driver, driver.f_lasti, lane, (READ_LOCAL, "value")]  # no slot field
    tracer.sites[lane] = tuple(site)
    with pytest.raises(TypeError, match="ValueRead is not a tuple of 3 fields"):
        hooks.on_resume(sys._getframe().f_code, 0)


@needs_extension
def test_a_pending_hand_off_of_the_wrong_shape_is_a_clean_error() -> None:
    hooks, tracer, lane = _hooks_on_this_frame()
    tracer.pending[:] = [lane]
    with pytest.raises(TypeError, match=r"tracer\.pending is not a list of 6 fields"):
        hooks.on_yield(sys._getframe().f_code, 0, 5)


@needs_extension
def test_the_hooks_see_a_frames_lane_change_between_two_callbacks_from_it() -> None:
    # (the C hooks keep the last frame's lane while tracer.lanes is unchanged: a change to
    # the table between two callbacks from one frame must be seen at the second)
    from loopscope.tracer.events import NO_LANE, Code, LaneKind

    hooks, tracer, lane = _hooks_on_this_frame()
    here = sys._getframe()
    recorder = tracer.recorder

    def switches() -> list[int]:
        """The origin lane of each hand-off recorded since the last call."""
        _, lanes, codes, _, _, _ = recorder._take(0)
        return [origin for origin, code in zip(lanes, codes, strict=True)
                if code == Code.SWITCH]

    hooks.on_yield(here.f_code, 0, 5)
    assert switches() == [lane]
    other = tracer._new_lane("other", LaneKind.GENERATOR, NO_LANE, 0)
    tracer.lanes[here] = other
    hooks.on_yield(here.f_code, 0, 6)
    assert switches() == [other]
    del tracer.lanes[here]
    # no longer a lane: the Python twin's turn (the fallback here raises)
    with pytest.raises(AssertionError, match="should have raised"):
        hooks.on_yield(here.f_code, 0, 7)
    assert switches() == []
