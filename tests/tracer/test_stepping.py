"""Stepping: the child's gate in-process with a fake clock, then real children driven by a Stepper.

A run that is stepped must record exactly what an unpaused run records, in the same order;
only program time (and, where the clock cannot stop, a pause mark) tells the pause happened.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from loopscope.tracer.events import NO_LANE, Code, FakeClock, LaneKind
from loopscope.tracer.narrate import describe, narration_line
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.runner import Run, RunResult
from loopscope.tracer.step_gate import PAUSE_MARK_MIN_NS, RUN_CODES, ClockPolicy, StepGate
from loopscope.tracer.stepping import (
    StepKind,
    Stepper,
    is_io_step,
    is_pause_mark,
    step_lines,
)
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace

WAIT_S = 10.0  # how long a test waits for a thread that should answer at once

# -- the gate, in-process -------------------------------------------------------------------------


class GatedProgram:
    """A recorder writing into a Trace, a gate on it, and a thread playing the traced program.

    `holds` gets the event count each time the gate holds the thread (its empty batch).
    """

    def __init__(self, policy: ClockPolicy = ClockPolicy.STOP) -> None:
        self.clock = FakeClock()
        self.trace = Trace()
        self.recorder = Recorder(self.trace, clock=self.clock)
        self.stops: list[str] = []
        self.gate = StepGate(self.recorder, policy, clock=self.clock,
                             on_stop=lambda: self.stops.append("stop"))
        self.holds: list[int] = []
        self._held = threading.Semaphore(0)
        self.trace.listeners.append(self._on_batch)

    def _on_batch(self, first_seq: int, count: int) -> None:
        if count == 0:
            self.holds.append(first_seq)
            self._held.release()

    def wait_held(self) -> int:
        assert self._held.acquire(timeout=WAIT_S), "the gate never held the program"
        return self.holds[-1]

    @contextmanager
    def running(self, program: Callable[[Recorder], None]) -> Iterator[threading.Thread]:
        def body() -> None:
            program(self.recorder)
            self.recorder.close()

        thread = threading.Thread(target=body, daemon=True)
        thread.start()
        try:
            yield thread
        finally:
            self.gate.cancel()
            thread.join(WAIT_S)
            assert not thread.is_alive(), "the traced thread is still blocked"


def two_lanes(recorder: Recorder, rounds: int = 3) -> None:
    """a and b take turns: RUNNING a, OUTPUT a, RUNNING b, OUTPUT b, ..."""
    a = recorder.spawn("a", LaneKind.TASK)
    b = recorder.spawn("b", LaneKind.TASK)
    for turn in range(rounds):
        for lane in (a, b):
            recorder.current = lane
            recorder.state(lane, Code.RUNNING)
            recorder.record(lane, Code.OUTPUT, NO_LANE, recorder.detail(("text", str(turn))))


def test_a_paused_gate_holds_after_each_event_it_is_asked_to_run() -> None:
    program = GatedProgram()
    program.gate.pause()  # as --paused does, before the program starts
    with program.running(two_lanes) as thread:
        assert program.wait_held() == 1  # held right after the first event
        assert len(program.trace) == 1
        program.gate.step("event")
        assert program.wait_held() == 2
        program.gate.step("event 3")
        assert program.wait_held() == 5
        assert len(program.trace) == 5
        program.gate.resume()
        thread.join(WAIT_S)
    assert program.holds == [1, 2, 5]
    # Nothing recorded twice or out of order: the two spawns, then three rounds of four.
    assert [program.trace.code[s] for s in range(len(program.trace))] == (
        [Code.SPAWN] * 2 + [Code.RUNNING, Code.OUTPUT] * 6)


def test_step_switch_and_io_hold_at_the_next_event_of_their_codes() -> None:
    def waits(recorder: Recorder) -> None:
        loop = recorder.spawn("loop", LaneKind.LOOP)
        task = recorder.spawn("task", LaneKind.TASK)
        recorder.state(task, Code.RUNNING)
        recorder.record(task, Code.OUTPUT, NO_LANE, recorder.detail(("text", "x")))
        recorder.state(task, Code.IO_WAIT, ("fd", 5, "mode", "read"))
        recorder.state(loop, Code.POLL, ("timeout_s", 1.0))
        recorder.annotate(loop, ("readable", (5,)))
        recorder.wake(task, loop, ("cause", "fd", "fd", 5, "mode", "read"))
        recorder.state(task, Code.RUNNING)

    program = GatedProgram()
    program.gate.pause()
    with program.running(waits):
        assert program.wait_held() == 1
        program.gate.step("switch")
        assert program.wait_held() == 3  # the task's RUNNING
        program.gate.step("io")
        assert program.wait_held() == 5  # its IO_WAIT, not the OUTPUT before it
        program.gate.step("switch")
        assert program.wait_held() == 6  # the loop's POLL
        program.gate.step("io")
        assert program.wait_held() == 7  # the poll's result
        program.gate.step("no-such-kind")  # ignored: still held
        program.gate.step("io")
        assert program.wait_held() == 8  # the WAKE
        program.gate.resume()
    assert len(program.trace) == 10


def test_where_the_clock_stops_a_pause_is_not_program_time() -> None:
    program = GatedProgram(ClockPolicy.STOP)
    program.clock.tick_ns = 1_000  # every reading is 1 us later than the one before
    program.gate.pause()
    with program.running(two_lanes):
        program.wait_held()
        program.clock.advance(5_000_000_000)  # five seconds of thought
        program.gate.step("event")
        program.wait_held()
        program.clock.advance(2_000_000_000)
        program.gate.resume()
    ts = program.trace.ts
    gaps = [ts[i + 1] - ts[i] for i in range(len(ts) - 1)]
    assert max(gaps) < 1_000_000  # no event is seconds after the one before it
    assert program.recorder.paused_s == pytest.approx(7.0, abs=0.001)
    assert program.gate.pauses == 2
    assert not any(is_pause_mark(program.trace, s) for s in range(len(program.trace)))


def test_where_the_clock_runs_on_a_long_pause_is_marked_and_a_short_one_is_not() -> None:
    program = GatedProgram(ClockPolicy.MARK)
    program.gate.pause()
    with program.running(two_lanes):
        assert program.wait_held() == 1
        program.clock.advance(PAUSE_MARK_MIN_NS // 2)
        program.gate.step("event")
        assert program.wait_held() == 2
        program.clock.advance(3_200_000_000)
        program.gate.resume()
    trace = program.trace
    marks = [s for s in range(len(trace)) if is_pause_mark(trace, s)]
    assert marks == [2]  # right after the event it was held at, before the program goes on
    assert trace.details[trace.detail[2]] == {"text": "paused 3.2 s", "paused_ns": 3_200_000_000}
    assert trace.lane[2] == trace.lane[1]  # the lane held there (b was not yet running)
    assert trace.ts[2] - trace.ts[1] >= 3_200_000_000  # real time: the pause stays visible
    assert program.recorder.paused_s == 0.0


def test_a_stop_lets_a_held_program_go_and_raises_the_stop_in_it() -> None:
    program = GatedProgram()
    program.gate.pause()
    with program.running(two_lanes) as thread:
        program.wait_held()
        program.gate.cancel()
        thread.join(WAIT_S)
        assert not thread.is_alive()
    assert program.stops == ["stop"]
    assert program.recorder.gate is None  # the rest of the run is not held again
    assert program.holds == [1]


# -- real children ------------------------------------------------------------------------------

TIME = re.compile(r"\d+\.\d+ s")
PORT = re.compile(r":\d{2,5}\b")


def sentence(line: str) -> str:
    """A narration line without what differs from run to run: times and ports."""
    return PORT.sub(":PORT", TIME.sub("T s", line.split("  ", 2)[-1]))


async def step_through(
    scenario: str,
    count: int,
    kind: StepKind = "step",
    hold_after: Callable[[Trace, int], float] | None = None,
) -> tuple[RunResult, list[int]]:
    """Steps `count` times, holding as `hold_after(trace, seq)` says, then lets it finish."""
    run = Run(resolve_target(scenario), paused=True)
    stepper = Stepper(run)
    await run.start()
    stepped: list[int] = []
    try:
        for _ in range(count):
            seq = await stepper.step(kind)
            if seq is None:
                break
            stepped.append(seq)
            assert stepper.state in ("held", "ended")
            if hold_after is not None:
                await asyncio.sleep(hold_after(run.trace, seq))
        await stepper.resume()
        result = await run.wait(60)
    finally:
        run.kill()
    return result, stepped


def lines_of(trace: Trace, seqs: list[int]) -> list[str]:
    return [narration_line(trace, seq) or "" for seq in seqs]


@pytest.mark.parametrize("scenario", ["producer-consumer", "asyncio-hello"])
def test_stepping_yields_the_first_steps_of_an_unpaused_run_in_order(
    scenario: str, record_scenario: Callable[..., RunResult]
) -> None:
    unpaused = [sentence(line) for _seq, line in step_lines(record_scenario(scenario).trace)]
    count = 24
    result, stepped = asyncio.run(step_through(scenario, count))
    assert result.ok, result.error
    assert len(stepped) == count
    assert [sentence(line) for line in lines_of(result.trace, stepped)] == unpaused[:count]
    # The stepped run as a whole narrates exactly like the unpaused one.
    assert [sentence(line) for _seq, line in step_lines(result.trace)] == unpaused


def test_asyncio_sleeps_in_program_time_however_long_the_pause() -> None:
    hold_s = 1.5

    def hold_while_asleep(trace: Trace, seq: int) -> float:
        asleep = trace.code[seq] == Code.SLEEPING and trace.lane_name(trace.lane[seq]) == "hello-2"
        return hold_s if asleep else 0.0

    result, stepped = asyncio.run(step_through("asyncio-hello", 40, "step", hold_while_asleep))
    assert result.ok, result.error
    trace = result.trace
    held_at = next(s for s in stepped if trace.code[s] == Code.SLEEPING
                   and trace.lane_name(trace.lane[s]) == "hello-2")
    # After the pause the loop still had a whole second to wait: its clock did not run on.
    poll = next(s for s in range(held_at, len(trace)) if trace.code[s] == Code.POLL
                and (trace.details[trace.detail[s]].get("timeout_s") or 0) > 0)
    assert trace.details[trace.detail[poll]]["timeout_s"] > 0.9
    sleeps = [s for s in range(len(trace)) if trace.code[s] == Code.SLEEPING]
    wakes = [s for s in range(len(trace)) if trace.code[s] == Code.WAKE
             and trace.details[trace.detail[s]].get("cause") == "timer"]
    assert len(sleeps) == len(wakes) == 2
    # The sleep took its one second of program time, and the pause is not in it.
    assert 1_000_000_000 <= trace.ts[wakes[-1]] - trace.ts[sleeps[-1]] < hold_s * 1e9
    assert trace.duration_ns < 1e9 + hold_s * 1e9
    assert not any(is_pause_mark(trace, s) for s in range(len(trace)))


@pytest.mark.parametrize("scenario", ["gevent-switching", "select-server"])
def test_stepping_where_the_clock_runs_on_marks_the_pause(scenario: str) -> None:
    hold_s = 0.3
    result, stepped = asyncio.run(
        step_through(scenario, 12, "step", lambda trace, seq: hold_s if len(trace) > 5 else 0.0))
    assert result.ok, result.error
    trace = result.trace
    assert len(stepped) == 12
    # What was shown step by step is what the finished run narrates, in the same order.
    assert lines_of(trace, stepped) == [line for _seq, line in step_lines(trace)][:12]
    marks = [s for s in range(len(trace)) if is_pause_mark(trace, s)]
    assert marks, "no pause was marked"
    assert all(trace.details[trace.detail[s]]["paused_ns"] >= hold_s * 1e9 for s in marks)
    assert all(trace.lane[s] != NO_LANE for s in marks)


def test_gevent_stepping_narrates_like_an_unpaused_run(
    record_scenario: Callable[..., RunResult]
) -> None:
    unpaused = [sentence(line) for _seq, line in step_lines(record_scenario("gevent-switching")
                                                              .trace)]
    result, stepped = asyncio.run(step_through("gevent-switching", 20))
    assert result.ok, result.error
    assert [sentence(line) for line in lines_of(result.trace, stepped)] == unpaused[:20]


def test_step_switch_stops_where_another_lane_starts_running() -> None:
    result, stepped = asyncio.run(step_through("asyncio-hello", 100, "switch"))
    assert result.ok, result.error
    trace = result.trace
    expected, last = [], NO_LANE
    for seq in range(len(trace)):
        code = trace.code[seq]
        if code in RUN_CODES:
            if trace.lane[seq] != last and describe(trace, seq) is not None:
                expected.append(seq)
            last = trace.lane[seq]
    assert stepped == expected
    assert [trace.lane_name(trace.lane[s]) for s in stepped][:4] == [
        "main (Task-1)", "hello-1", "hello-2", "asyncio loop"]


def test_step_io_stops_at_each_io_wait_poll_and_wake() -> None:
    result, stepped = asyncio.run(step_through("select-server", 30, "io"))
    assert result.ok, result.error
    trace = result.trace
    expected = [s for s in range(len(trace))
                if describe(trace, s) is not None and is_io_step(trace, s)][:30]
    assert stepped == expected
    assert {trace.code[s] for s in stepped} >= {Code.IO_WAIT, Code.POLL, Code.WAKE}


def test_stop_ends_a_held_run_by_itself_before_it_goes_on() -> None:
    async def scenario() -> RunResult:
        run = Run(resolve_target("gevent-switching"), paused=True)
        stepper = Stepper(run)
        await run.start()
        try:
            for _ in range(3):
                await stepper.step()
            await stepper.stop()
            return await run.wait(10)
        finally:
            run.kill()

    result = asyncio.run(scenario())
    assert result.status == "stopped"
    assert result.exit_code == 0  # it stopped by itself, it was not killed
    assert "bar: awake again" not in result.stdout


def test_a_running_run_can_be_paused_and_resumed() -> None:
    async def scenario() -> tuple[RunResult, int, int, int]:
        run = Run(resolve_target("asyncio-hello"))
        stepper = Stepper(run)
        await run.start()
        try:
            while not any(trace_code == Code.SLEEPING for trace_code in run.trace.code):
                await asyncio.sleep(0.01)
            position = await stepper.pause()
            held = len(run.trace)
            await asyncio.sleep(1.5)  # past the program's own sleep: held, nothing happens
            still = len(run.trace)
            await stepper.resume()
            return await run.wait(30), position, held, still
        finally:
            run.kill()

    result, position, held, still = asyncio.run(scenario())
    assert result.ok, result.error
    assert held == still == position + 1
    trace = result.trace
    assert not any(trace.code[s] == Code.WAKE for s in range(held))
    assert trace.duration_ns < 2.5e9  # the 1.5 s hold is not program time


def test_trio_steps_are_what_the_run_narrates_and_sleeps_stay_in_program_time() -> None:
    hold_s = 1.5

    def hold_while_asleep(trace: Trace, seq: int) -> float:
        asleep = trace.code[seq] == Code.SLEEPING and trace.lane_name(trace.lane[seq]) == "hello-2"
        return hold_s if asleep else 0.0

    result, stepped = asyncio.run(step_through("trio-hello", 40, "step", hold_while_asleep))
    assert result.ok, result.error
    trace = result.trace
    # What was shown step by step is what the finished run narrates, in the same order.
    assert lines_of(trace, stepped) == [line for _seq, line in step_lines(trace)][:len(stepped)]
    held_at = next(s for s in stepped if trace.code[s] == Code.SLEEPING
                   and trace.lane_name(trace.lane[s]) == "hello-2")
    # After the pause trio still had most of a second to wait: its clock did not run on.
    poll = next(s for s in range(held_at, len(trace)) if trace.code[s] == Code.POLL
                and (trace.details[trace.detail[s]].get("timeout_s") or 0) > 0)
    assert trace.details[trace.detail[poll]]["timeout_s"] > 0.9
    sleeps = [s for s in range(len(trace)) if trace.code[s] == Code.SLEEPING]
    wakes = [s for s in range(len(trace)) if trace.code[s] == Code.WAKE
             and trace.details[trace.detail[s]].get("cause") == "timer"]
    assert len(sleeps) == len(wakes) == 2
    # The sleep took its one second of program time, and the pause is not in it.
    assert 1_000_000_000 <= trace.ts[wakes[-1]] - trace.ts[sleeps[-1]] < hold_s * 1e9
    assert not any(is_pause_mark(trace, s) for s in range(len(trace)))
