"""The generator instrumentation in-process: exact hand-off sequences on small programs."""

from __future__ import annotations

import gc
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from loopscope.tracer.events import FakeClock
from loopscope.tracer.models import generator_model
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

Row = tuple[str, str, str | None, dict[str, Any]]


def record(module: str) -> Trace:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1000))
    generator_model.run(recorder, Program(model="generator", scenario_module=module))
    recorder.close()
    return trace


def rows(trace: Trace, kinds: tuple[str, ...] | None = None) -> list[Row]:
    """(kind, lane, other lane, detail) of each event, without printed output."""
    return [
        (event.kind, trace.lane_name(event.lane),
         trace.lane_name(event.other) if event.other >= 0 else None, event.detail)
        for event in trace.events()
        if event.kind != "output" and (kinds is None or event.kind in kinds)
    ]


@pytest.fixture
def program_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """write(name, source) puts a module of the 'traced program' on the path."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        monkeypatch.delitem(sys.modules, name, raising=False)
        return name

    return write


def test_producer_consumer_first_hand_offs() -> None:
    trace = record("loopscope.scenarios.producer_consumer")
    produce: dict[str, Any] = {"name": "produce", "kind": "main"}
    assert rows(trace)[:15] == [
        ("spawn", "produce", None, produce),
        ("running", "produce", None, {}),
        ("spawn", "consumer", "produce", {"name": "consumer", "kind": "generator"}),
        ("switch", "produce", "consumer", {"via": "send", "value": "None"}),
        ("blocked", "produce", "consumer", {"on": "consumer"}),
        ("running", "consumer", None, {}),
        ("switch", "consumer", "produce", {"via": "yield", "value": "''"}),
        ("blocked", "consumer", "produce", {"on": "produce"}),
        ("running", "produce", None, {}),
        ("switch", "produce", "consumer", {"via": "send", "value": "1"}),
        ("blocked", "produce", "consumer", {"on": "consumer"}),
        ("running", "consumer", None, {}),
        ("switch", "consumer", "produce", {"via": "yield", "value": "'200 OK'"}),
        ("blocked", "consumer", "produce", {"on": "produce"}),
        ("running", "produce", None, {}),
    ]


def test_close_ends_the_consumer_and_output_goes_to_the_running_lane() -> None:
    trace = record("loopscope.scenarios.producer_consumer")
    switches = rows(trace, ("switch", "end"))
    assert switches[-3:] == [
        ("switch", "produce", "consumer", {"via": "close"}),
        ("end", "consumer", None, {"result": "closed"}),
        ("end", "produce", None, {"result": "None"}),
    ]
    # Resumed lanes carry the line they resumed at: the consumer at its yield.
    consumer_lines = {
        trace.sources[trace.source[seq]][1]
        for seq in range(len(trace))
        if trace.code[seq] == 0 and trace.lane_name(trace.lane[seq]) == "consumer"
    }
    source = Path("scenarios/producer_consumer.py").read_text().splitlines()
    assert any("yield reply" in source[line - 1] for line in consumer_lines)


def test_throw_return_value_and_numbered_lanes(program_module: Any) -> None:
    module = program_module("throwing", """
        def worker():
            try:
                yield "ready"
            except ValueError:
                yield "recovered"
            return 42

        def main():
            first, second = worker(), worker()
            next(first)
            error = ValueError("stop")
            first.throw(error)
            try:
                next(first)
            except StopIteration:
                pass
            for _ in second:
                pass
    """)
    trace = record(module)
    assert [lane.name for lane in trace.lanes] == ["main", "worker", "worker-2"]
    assert rows(trace, ("switch", "end")) == [
        ("switch", "main", "worker", {"via": "next"}),
        ("switch", "worker", "main", {"via": "yield", "value": "'ready'"}),
        ("switch", "main", "worker", {"via": "throw", "value": "ValueError('stop')"}),
        ("switch", "worker", "main", {"via": "yield", "value": "'recovered'"}),
        ("switch", "main", "worker", {"via": "next"}),
        ("end", "worker", None, {"result": "42"}),
        ("switch", "main", "worker-2", {"via": "next"}),
        ("switch", "worker-2", "main", {"via": "yield", "value": "'ready'"}),
        ("switch", "main", "worker-2", {"via": "next"}),
        ("end", "worker-2", None, {"result": "42"}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_a_generator_driving_another_is_its_driver_lane(program_module: Any) -> None:
    module = program_module("delegating", """
        def inner():
            yield 1
            yield 2

        def outer():
            for value in inner():
                yield value * 10

        def main():
            return list(outer())
    """)
    trace = record(module)
    assert rows(trace, ("switch",))[:4] == [
        ("switch", "main", "outer", {"via": "next"}),
        ("switch", "outer", "inner", {"via": "next"}),
        ("switch", "inner", "outer", {"via": "yield", "value": "1"}),
        ("switch", "outer", "main", {"via": "yield", "value": "10"}),
    ]
    assert next(lane for lane in trace.lanes if lane.name == "inner").parent == next(
        lane.id for lane in trace.lanes if lane.name == "outer")


def test_a_hand_off_down_a_yield_from_chain_is_recorded_once(program_module: Any) -> None:
    module = program_module("chained", """
        def leaf(n):
            for i in range(n):
                yield i
            return "leaf done"

        def middle():
            yield from leaf(2)
            yield "middle"

        def outer():
            yield from middle()

        def main():
            for value in outer():
                pass
    """)
    trace = record(module)
    # The first hand-offs go down one level at a time (each generator starts there); after
    # that, a resume of the outermost goes straight to the innermost and its yields straight
    # back, while the generators in between stay blocked on their delegate.
    assert rows(trace)[2:] == [
        ("spawn", "outer", "main", {"name": "outer", "kind": "generator"}),
        ("switch", "main", "outer", {"via": "next"}),
        ("blocked", "main", "outer", {"on": "outer"}),
        ("running", "outer", None, {}),
        ("spawn", "middle", "outer", {"name": "middle", "kind": "generator"}),
        ("switch", "outer", "middle", {"via": "send"}),
        ("blocked", "outer", "middle", {"on": "middle"}),
        ("running", "middle", None, {}),
        ("spawn", "leaf", "middle", {"name": "leaf", "kind": "generator"}),
        ("switch", "middle", "leaf", {"via": "send"}),
        ("blocked", "middle", "leaf", {"on": "leaf"}),
        ("running", "leaf", None, {}),
        ("switch", "leaf", "main", {"via": "yield", "value": "0"}),
        ("blocked", "leaf", "main", {"on": "main"}),
        ("running", "main", None, {}),
        ("switch", "main", "leaf", {"via": "next"}),
        ("blocked", "main", "leaf", {"on": "outer"}),
        ("running", "leaf", None, {}),
        ("switch", "leaf", "main", {"via": "yield", "value": "1"}),
        ("blocked", "leaf", "main", {"on": "main"}),
        ("running", "main", None, {}),
        ("switch", "main", "leaf", {"via": "next"}),
        ("blocked", "main", "leaf", {"on": "outer"}),
        ("running", "leaf", None, {}),
        # the delegate returns: its delegator runs again, and yields straight to main
        ("end", "leaf", None, {"result": "'leaf done'"}),
        ("running", "middle", None, {}),
        ("switch", "middle", "main", {"via": "yield", "value": "'middle'"}),
        ("blocked", "middle", "main", {"on": "main"}),
        ("running", "main", None, {}),
        ("switch", "main", "middle", {"via": "next"}),
        ("blocked", "main", "middle", {"on": "outer"}),
        ("running", "middle", None, {}),
        ("end", "middle", None, {"result": "None"}),
        ("running", "outer", None, {}),
        ("end", "outer", None, {"result": "None"}),
        ("running", "main", None, {}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_a_yield_from_location_passing_up_a_list_after_a_lane_records_every_hand_off(
        program_module: Any) -> None:
    """On 3.12+ a delegator's resume that only passes a send on down to a delegate lane is
    switched off where it happens; the same `yield from` delegating later to something that is
    not a lane (a list) must report its resumes again, so every hand-off is still there."""
    module = program_module("relaying", """
        def leaf(n):
            for i in range(n):
                yield i

        def relay(source):
            yield from source

        def main():
            for value in relay(leaf(2)):
                pass
            for value in relay([10, 11]):
                pass
    """)
    trace = record(module)
    hand_offs = [row for row in rows(trace, ("switch", "end")) if row[1] != "main"
                 or row[2] is not None]
    assert hand_offs == [
        ("switch", "main", "relay", {"via": "next"}),
        ("switch", "relay", "leaf", {"via": "send"}),
        ("switch", "leaf", "main", {"via": "yield", "value": "0"}),
        ("switch", "main", "leaf", {"via": "next"}),  # down the chain: relay records nothing
        ("switch", "leaf", "main", {"via": "yield", "value": "1"}),
        ("switch", "main", "leaf", {"via": "next"}),
        ("end", "leaf", None, {"result": "None"}),
        ("end", "relay", None, {"result": "None"}),
        ("switch", "main", "relay-2", {"via": "next"}),
        ("switch", "relay-2", "main", {"via": "yield", "value": "10"}),
        ("switch", "main", "relay-2", {"via": "next"}),
        ("switch", "relay-2", "main", {"via": "yield", "value": "11"}),
        ("switch", "main", "relay-2", {"via": "next"}),
        ("end", "relay-2", None, {"result": "None"}),
    ]


def test_a_chain_mixing_kept_and_switched_off_delegators_records_each_hand_off_once(
        program_module: Any) -> None:
    """A delegator whose resumes stay reported (its `yield from` once passed up a list) sits
    between delegators whose resumes are switched off: each value still goes from main to the
    innermost generator and back, once."""
    module = program_module("mixing", """
        def leaf(n):
            for i in range(n):
                yield i

        def relay(source):
            yield from source

        def other_relay(source):
            yield from source

        def main():
            for _ in relay([10]):
                pass
            for _ in other_relay(leaf(1)):
                pass
            for _ in other_relay(relay(other_relay(leaf(2)))):
                pass
    """)
    trace = record(module)
    last_chain = rows(trace, ("switch", "end"))[-14:]
    assert last_chain == [
        ("end", "other_relay", None, {"result": "None"}),
        ("switch", "main", "other_relay-2", {"via": "next"}),
        ("switch", "other_relay-2", "relay-2", {"via": "send"}),
        ("switch", "relay-2", "other_relay-3", {"via": "send"}),
        ("switch", "other_relay-3", "leaf-2", {"via": "send"}),
        ("switch", "leaf-2", "main", {"via": "yield", "value": "0"}),
        ("switch", "main", "leaf-2", {"via": "next"}),
        ("switch", "leaf-2", "main", {"via": "yield", "value": "1"}),
        ("switch", "main", "leaf-2", {"via": "next"}),
        ("end", "leaf-2", None, {"result": "None"}),
        ("end", "other_relay-3", None, {"result": "None"}),
        ("end", "relay-2", None, {"result": "None"}),
        ("end", "other_relay-2", None, {"result": "None"}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_an_awaited_coroutine_is_a_call_until_it_first_suspends(program_module: Any) -> None:
    module = program_module("awaits", """
        import types

        @types.coroutine
        def pause():
            yield "paused"

        async def quick(n):
            return n + 1

        async def slow():
            await pause()
            return "slow done"

        async def middle():
            value = await quick(1)
            return await slow()

        async def root():
            await quick(0)
            return await middle()

        def main():
            coro = root()
            try:
                while True:
                    coro.send(None)
            except StopIteration:
                pass
    """)
    trace = record(module)
    # quick() returns without suspending: a call in its awaiter, no lane. middle() and slow()
    # run as calls until pause() starts under them; from then on both are lanes, started
    # from their awaiters outermost first, and the hand-offs go as down any delegation chain.
    assert rows(trace)[2:] == [
        ("spawn", "root", "main", {"name": "root", "kind": "generator"}),
        ("switch", "main", "root", {"via": "send", "value": "None"}),
        ("blocked", "main", "root", {"on": "root"}),
        ("running", "root", None, {}),
        ("spawn", "middle", "root", {"name": "middle", "kind": "generator"}),
        ("switch", "root", "middle", {"via": "send"}),
        ("blocked", "root", "middle", {"on": "middle"}),
        ("running", "middle", None, {}),
        ("spawn", "slow", "middle", {"name": "slow", "kind": "generator"}),
        ("switch", "middle", "slow", {"via": "send"}),
        ("blocked", "middle", "slow", {"on": "slow"}),
        ("running", "slow", None, {}),
        ("spawn", "pause", "slow", {"name": "pause", "kind": "generator"}),
        ("switch", "slow", "pause", {"via": "send"}),
        ("blocked", "slow", "pause", {"on": "pause"}),
        ("running", "pause", None, {}),
        ("switch", "pause", "main", {"via": "yield", "value": "'paused'"}),
        ("blocked", "pause", "main", {"on": "main"}),
        ("running", "main", None, {}),
        ("switch", "main", "pause", {"via": "send", "value": "None"}),
        ("blocked", "main", "pause", {"on": "root"}),
        ("running", "pause", None, {}),
        ("end", "pause", None, {"result": "None"}),
        ("running", "slow", None, {}),
        ("end", "slow", None, {"result": "'slow done'"}),
        ("running", "middle", None, {}),
        ("end", "middle", None, {"result": "'slow done'"}),
        ("running", "root", None, {}),
        ("end", "root", None, {"result": "'slow done'"}),
        ("running", "main", None, {}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_an_awaited_coroutine_that_suspends_in_library_code_becomes_a_lane(
        program_module: Any) -> None:
    module = program_module("self_suspending", """
        import asyncio

        async def waits():
            await asyncio.sleep(0)  # yields from the standard library: not followed
            return "woken"

        async def root():
            return await waits()

        def main():
            coro = root()
            coro.send(None)
            try:
                coro.send(None)
            except StopIteration:
                pass
    """)
    trace = record(module)
    # waits() itself is the first followed frame to yield: it becomes a lane there, and its
    # yield goes to root's driver once (root passes it up as a delegator)
    assert rows(trace)[2:] == [
        ("spawn", "root", "main", {"name": "root", "kind": "generator"}),
        ("switch", "main", "root", {"via": "send", "value": "None"}),
        ("blocked", "main", "root", {"on": "root"}),
        ("running", "root", None, {}),
        ("spawn", "waits", "root", {"name": "waits", "kind": "generator"}),
        ("switch", "root", "waits", {"via": "send"}),
        ("blocked", "root", "waits", {"on": "waits"}),
        ("running", "waits", None, {}),
        ("switch", "waits", "main", {"via": "yield", "value": "None"}),
        ("blocked", "waits", "main", {"on": "main"}),
        ("running", "main", None, {}),
        ("switch", "main", "waits", {"via": "send", "value": "None"}),
        ("blocked", "main", "waits", {"on": "root"}),
        ("running", "waits", None, {}),
        ("end", "waits", None, {"result": "'woken'"}),
        ("running", "root", None, {}),
        ("end", "root", None, {"result": "'woken'"}),
        ("running", "main", None, {}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_a_throw_passed_down_a_yield_from_chain_comes_from_the_thrower(
        program_module: Any) -> None:
    module = program_module("thrown_down", """
        def catching():
            while True:
                try:
                    yield "waiting"
                except KeyError:
                    yield "caught"

        def delegating():
            yield from catching()

        def main():
            chain = delegating()
            next(chain)
            chain.throw(KeyError("k"))
            next(chain)
    """)
    trace = record(module)
    assert rows(trace, ("switch",)) == [
        ("switch", "main", "delegating", {"via": "next"}),
        ("switch", "delegating", "catching", {"via": "send"}),
        ("switch", "catching", "main", {"via": "yield", "value": "'waiting'"}),
        ("switch", "main", "catching", {"via": "throw"}),
        ("switch", "catching", "main", {"via": "yield", "value": "'caught'"}),
        ("switch", "main", "catching", {"via": "next"}),
        ("switch", "catching", "main", {"via": "yield", "value": "'waiting'"}),
    ]


def test_library_generators_are_not_traced(program_module: Any) -> None:
    module = program_module("uses_stdlib", """
        import json
        import textwrap

        def main():
            # both run generators inside the standard library
            json.dumps({"a": [1, 2, 3]}, indent=2)
            textwrap.wrap("several words to wrap " * 5, width=20)
            squares = sum(n * n for n in range(3))
            assert squares == 5
    """)
    trace = record(module)
    assert [(lane.name, lane.kind) for lane in trace.lanes] == [
        ("main", "main"), ("<genexpr>", "generator")]


def test_instrumentation_is_removed_after_the_run(program_module: Any) -> None:
    module = program_module("raising", """
        def numbers():
            yield 1
            raise RuntimeError("broken generator")

        def main():
            list(numbers())
    """)
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock())
    before = sys.gettrace()
    with pytest.raises(RuntimeError, match="broken generator"):
        generator_model.run(recorder, Program(model="generator", scenario_module=module))
    recorder.close()
    assert sys.gettrace() is before
    handoffs = generator_model.c_handoffs(recorder)
    if handoffs is not None:
        assert not handoffs.eval_hook_installed()  # 3.11's frame evaluation hook is gone too
    if sys.version_info >= (3, 12):
        assert all(sys.monitoring.get_tool(tool) is None for tool in (2, 3, 4, 5))
    assert rows(trace, ("end",))[0] == (
        "end", "numbers", None, {"error": "RuntimeError: broken generator"})


def test_repeated_hand_offs_keep_their_own_values_and_call_sites(program_module: Any) -> None:
    # The hot path reuses what it learnt at a call site and the last value handed over; these
    # change between hand-offs here: the same object mutated, a different call site in the
    # same frame, two instances of one generator driven in turn.
    module = program_module("repeating", """
        def echo():
            seen = []
            while True:
                item = yield seen
                seen.append(item)

        def main():
            first, second = echo(), echo()
            next(first)
            next(second)
            for n in (1, 1, 2):
                first.send(n)
                tenfold = n * 10
                second.send(tenfold)
            next(first)
    """)
    trace = record(module)
    assert [(origin, target, detail) for _, origin, target, detail in rows(trace, ("switch",))
            ] == [
        ("main", "echo", {"via": "next"}),
        ("echo", "main", {"via": "yield", "value": "[]"}),
        ("main", "echo-2", {"via": "next"}),
        ("echo-2", "main", {"via": "yield", "value": "[]"}),
        ("main", "echo", {"via": "send", "value": "1"}),
        ("echo", "main", {"via": "yield", "value": "[1]"}),
        ("main", "echo-2", {"via": "send", "value": "10"}),
        ("echo-2", "main", {"via": "yield", "value": "[10]"}),
        ("main", "echo", {"via": "send", "value": "1"}),
        ("echo", "main", {"via": "yield", "value": "[1, 1]"}),
        ("main", "echo-2", {"via": "send", "value": "10"}),
        ("echo-2", "main", {"via": "yield", "value": "[10, 10]"}),
        ("main", "echo", {"via": "send", "value": "2"}),
        ("echo", "main", {"via": "yield", "value": "[1, 1, 2]"}),
        ("main", "echo-2", {"via": "send", "value": "20"}),
        ("echo-2", "main", {"via": "yield", "value": "[10, 10, 20]"}),
        ("main", "echo", {"via": "next"}),
        ("echo", "main", {"via": "yield", "value": "[1, 1, 2, None]"}),
    ]


def test_a_long_send_loop_records_every_hand_off(program_module: Any) -> None:
    module = program_module("long_loop", """
        def doubler():
            reply = None
            while True:
                item = yield reply
                reply = item * 2

        def main():
            worker = doubler()
            next(worker)
            for item in range(500):
                worker.send(item)
    """)
    trace = record(module)
    switches = rows(trace, ("switch",))[2:]
    assert switches == [
        row
        for item in range(500)
        for row in (
            ("switch", "main", "doubler", {"via": "send", "value": str(item)}),
            ("switch", "doubler", "main", {"via": "yield", "value": str(item * 2)}),
        )
    ]
    states = [(kind, lane, other) for kind, lane, other, _ in rows(trace, ("blocked", "running"))]
    assert states[-4:] == [
        ("blocked", "main", "doubler"), ("running", "doubler", None),
        ("blocked", "doubler", "main"), ("running", "main", None),
    ]


def test_a_generator_suspended_before_the_run_is_not_a_lane(program_module: Any) -> None:
    # In one process an earlier run can leave program generators suspended in reference
    # cycles; the collector then closes them whenever it happens to run -- in the middle of a
    # later run, from whatever frame is executing (an importlib one, say). Those throws are
    # not hand-offs of the program being traced, and must not become its lanes (nor name its
    # main lane after the frame the collection interrupted).
    leftovers = program_module("leftovers", """
        def echo():
            try:
                while True:
                    yield "ready"
            finally:
                pass

        def leave_suspended():
            generator = echo()
            next(generator)
            cycle = [generator]
            cycle.append(cycle)
    """)
    module = program_module("collects_leftovers", """
        import gc

        def numbers():
            yield 1

        gc.collect()  # the collector running while the module is imported under tracing

        def main():
            for _ in numbers():
                pass
    """)
    gc.disable()  # the leftover must still be there when the traced program collects
    try:
        __import__(leftovers).leave_suspended()
        trace = record(module)
    finally:
        gc.enable()
    assert [(lane.name, lane.kind) for lane in trace.lanes] == [
        ("main", "main"), ("numbers", "generator")]
    assert rows(trace, ("switch", "end")) == [
        ("switch", "main", "numbers", {"via": "next"}),
        ("switch", "numbers", "main", {"via": "yield", "value": "1"}),
        ("switch", "main", "numbers", {"via": "next"}),
        ("end", "numbers", None, {"result": "None"}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_a_throw_caught_by_looping_back_to_the_same_yield_keeps_the_lane(
        program_module: Any) -> None:
    # The generator yields again at the very instruction it was thrown into; on 3.11 that
    # must not read as the exception leaving the frame (which would end the lane).
    module = program_module("catching", """
        def echo():
            reply = None
            while True:
                try:
                    item = yield reply
                except KeyError as error:
                    reply = f"caught {error}"
                    continue
                reply = item

        def main():
            worker = echo()
            next(worker)
            worker.throw(KeyError("k"))
            worker.send(1)
    """)
    trace = record(module)
    assert rows(trace, ("switch", "end")) == [
        ("switch", "main", "echo", {"via": "next"}),
        ("switch", "echo", "main", {"via": "yield", "value": "None"}),
        ("switch", "main", "echo", {"via": "throw"}),
        ("switch", "echo", "main", {"via": "yield", "value": "\"caught 'k'\""}),
        ("switch", "main", "echo", {"via": "send", "value": "1"}),
        ("switch", "echo", "main", {"via": "yield", "value": "1"}),
        ("end", "echo", None, {"result": "never finished"}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_only_the_traced_thread_is_followed_and_nothing_after_the_run(
    program_module: Any,
) -> None:
    module = program_module("threaded", """
        import threading

        def counter(n):
            yield from range(n)

        def in_thread(results):
            results.append(sum(counter(50)))  # a generator driven by another thread

        def main():
            results = []
            worker = threading.Thread(target=in_thread, args=(results,))
            worker.start()
            worker.join()
            results.append(sum(counter(3)))
            assert results == [1225, 3]
    """)
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock())
    generator_model.run(recorder, Program(model="generator", scenario_module=module))
    recorder.flush()
    recorded = recorder.event_count
    assert [lane.name for lane in trace.lanes][1:] == ["counter"]  # the main thread's one
    # sum() resumes it four times, it yields three times: the thread's 50 are not here
    assert sum(1 for event in trace.events() if event.kind == "switch") == 4 + 3

    counter = sys.modules[module].counter
    assert list(counter(5)) == [0, 1, 2, 3, 4]  # after the run: runs, records nothing
    assert recorder.event_count == recorded
    recorder.close()


def test_every_kind_of_plain_argument_is_read_on_this_python(program_module: Any) -> None:
    """The value handed over is read whatever instruction this Python's compiler picks for
    the argument (3.14's LOAD_FAST_BORROW and LOAD_SMALL_INT, 3.15's LOAD_COMMON_CONSTANT):
    constants, a method's local, a cell, a free variable and a global; an expression is not
    a plain load and records no value rather than a wrong one."""
    module = program_module("plain_arguments", """
        GREETING = "hello"

        def sink():
            while True:
                yield (yield)

        class Driver:
            def __init__(self):
                self.gen = sink()
                next(self.gen)

            def send_local(self, item):
                self.gen.send(item)
                next(self.gen)

        def main():
            driver = Driver()
            gen = driver.gen
            gen.send(None); next(gen)
            gen.send(1); next(gen)
            gen.send(-1); next(gen)
            gen.send(300); next(gen)
            gen.send("text"); next(gen)
            gen.send(b"raw"); next(gen)
            gen.send(1.5); next(gen)
            gen.send((1, 2)); next(gen)
            gen.send(GREETING); next(gen)
            driver.send_local([1, 2])
            captured = "cell"

            def inner():
                gen.send(captured)
                next(gen)
            inner()
            gen.send(captured); next(gen)
            gen.send(len("four")); next(gen)
    """)
    trace = record(module)
    sends = [detail.get("value", "<none>") for _, _, _, detail in rows(trace, ("switch",))
             if detail["via"] == "send"]
    assert sends == ["None", "1", "-1", "300", "'text'", "b'raw'", "1.5", "(1, 2)", "'hello'",
                     "[1, 2]", "'cell'", "'cell'", "<none>"]


def test_sends_from_a_method_called_per_send_keep_their_driver(program_module: Any) -> None:
    """A scheduler's `step()` method makes a new frame for every send; each send still comes
    from the lane that called the method, whether main or a generator driving the method."""
    module = program_module("method_driver", """
        def echo():
            reply = None
            while True:
                reply = yield reply

        class Stepper:
            def __init__(self):
                self.gen = echo()

            def step(self, value):
                return self.gen.send(value)

        def feeder(stepper):
            for value in ("a", "b"):
                stepper.step(value)
                yield value

        def main():
            stepper = Stepper()
            next(stepper.gen)
            for n in range(3):
                stepper.step(n)
            for _ in feeder(stepper):
                pass
            stepper.step(9)
    """)
    trace = record(module)
    sends = [(origin, target, detail["value"]) for _, origin, target, detail
             in rows(trace, ("switch",)) if detail["via"] == "send"]
    assert sends == [("main", "echo", "0"), ("main", "echo", "1"), ("main", "echo", "2"),
                     ("feeder", "echo", "'a'"), ("feeder", "echo", "'b'"),
                     ("main", "echo", "9")]


def test_a_method_driver_takes_the_cached_path_after_its_first_send(
    program_module: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The general (slow) resume path runs once for the call site, not once per send, even
    though each send comes from a new frame of the driving method."""
    general: list[str] = []
    resumed = generator_model.GeneratorTracer.resumed

    def counting(self: generator_model.GeneratorTracer, frame: Any, via: str | None = None
                 ) -> bool:
        # (this program's frames only: an earlier test's leftover `echo` generator may be
        # finalised by the collector while this one runs, and come here too)
        if frame.f_code.co_filename.endswith("method_loop.py"):
            general.append(frame.f_code.co_name)
        return resumed(self, frame, via)

    monkeypatch.setattr(generator_model.GeneratorTracer, "resumed", counting)
    module = program_module("method_loop", """
        def echo():
            while True:
                yield

        class Scheduler:
            def __init__(self, task):
                self.task = task

            def step(self, value):
                self.task.send(value)

        def main():
            scheduler = Scheduler(echo())
            next(scheduler.task)
            for n in range(50):
                scheduler.step(n)
    """)
    # Earlier tests' suspended generators (some called echo) are closed by the collector
    # whenever it runs; that close is not this program's resume, so it happens before the run.
    gc.collect()
    trace = record(module)
    assert len([1 for _, _, _, detail in rows(trace, ("switch",)) if detail["via"] == "send"]
               ) == 50
    assert general.count("echo") <= 2  # the first next() and the first send()
