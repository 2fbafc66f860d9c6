"""The trio instrumentation, in-process: exact event sequences for tiny programs.

Each program runs under `traced_runs` with a Recorder writing straight into a Trace and a
FakeClock; trio itself runs on a MockClock that jumps to the next deadline at once, so the
sequences and the sleeps' lengths are deterministic.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
import trio
import trio.testing

from loopscope.tracer.events import Code, FakeClock
from loopscope.tracer.models import guess_model
from loopscope.tracer.models.trio_model import TrioInstrument, traced_runs
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

LOOP = "trio run"
Row = tuple[str, str, str, dict[str, Any]]


def record(main: Callable[[], Awaitable[Any]],
           clock: trio.abc.Clock | None = None) -> tuple[Trace, Any]:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with traced_runs(recorder):
        result = trio.run(main, clock=clock or trio.testing.MockClock(autojump_threshold=0))
    recorder.close()
    return trace, result


def lane_label(trace: Trace, lane: int) -> str:
    return trace.lane_name(lane) if lane >= 0 else ""


def task_rows(trace: Trace) -> list[Row]:
    """Every event on a task lane: (lane, kind, other lane, detail); fds become "FD"."""
    rows = []
    for e in trace.events():
        if trace.lane_name(e.lane) == LOOP:
            continue
        detail = {k: "FD" if k == "fd" else v for k, v in e.detail.items()}
        rows.append((lane_label(trace, e.lane), e.kind, lane_label(trace, e.other), detail))
    return rows


def loop_kinds(trace: Trace) -> list[str]:
    return [e.kind for e in trace.events() if trace.lane_name(e.lane) == LOOP]


SPAWNED_BY_RUN = [
    ("main", "spawn", LOOP, {"name": "main", "kind": "task", "coro": "main"}),
    ("main", "ready", LOOP, {"cause": "spawn"}),
]


def test_two_tasks_in_a_nursery_sleep_side_by_side_and_the_last_one_wakes_main() -> None:
    async def hello(seconds: float) -> None:
        await trio.sleep(seconds)

    async def main() -> str:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hello, 1, name="one")
            nursery.start_soon(hello, 2, name="two")
        return "done"

    trace, result = record(main)

    assert result == "done"
    rows = task_rows(trace)
    # the order trio runs a batch in is random: compare each lane's own sequence
    by_lane: dict[str, list[Row]] = {}
    for row in rows:
        by_lane.setdefault(row[0], []).append(row)
    assert by_lane["main"] == [
        *SPAWNED_BY_RUN,
        ("main", "running", "", {}),
        ("main", "blocked", "", {"on": "nursery"}),
        ("main", "wake", "two", {"cause": "task"}),
        ("main", "ready", "two", {"cause": "task"}),
        ("main", "running", "", {}),
        ("main", "end", "", {"result": "dead"}),
    ]
    for name, seconds in (("one", 1.0), ("two", 2.0)):
        deadline = _deadline_of(by_lane[name])
        assert by_lane[name] == [
            (name, "spawn", "main", {"name": name, "kind": "task", "coro": "hello"}),
            (name, "ready", "main", {"cause": "spawn"}),
            (name, "running", "", {}),
            (name, "sleeping", "", {"delay_s": seconds, "deadline_ns": deadline}),
            (name, "wake", LOOP, {"cause": "timer", "deadline_ns": deadline}),
            (name, "ready", LOOP, {"cause": "timer", "deadline_ns": deadline}),
            (name, "running", "", {}),
            (name, "end", "", {"result": "dead"}),
        ]
    # both sleep before either wakes; "one" wakes and ends first
    kinds = [(row[0], row[1]) for row in rows]
    assert kinds.index(("two", "sleeping")) < kinds.index(("one", "wake"))
    assert kinds.index(("one", "end")) < kinds.index(("two", "wake"))


def _deadline_of(rows: list[Row]) -> int:
    deadline = next(row[3]["deadline_ns"] for row in rows if row[1] == "sleeping")
    assert isinstance(deadline, int)
    return deadline


class TickingClock(trio.abc.Clock):
    """trio's clock moving on a millisecond every time it is read, as a real one moves while
    the tracer's hooks run: the deadline trio.sleep computes is behind the step's end."""

    def __init__(self) -> None:
        self.now = 100.0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        self.now += 0.001
        return self.now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        self.now = max(self.now, deadline)  # sleeping is free: the deadline has come
        return 0.0


def test_a_sleep_reads_as_the_seconds_the_program_asked_for_not_what_was_left_of_them() -> None:
    async def main() -> None:
        await trio.sleep(0.05)
        await trio.sleep_until(trio.current_time() + 0.05)  # no "seconds" to read: what is left

    trace, _ = record(main, TickingClock())

    delays = [row[3]["delay_s"] for row in task_rows(trace) if row[1] == "sleeping"]
    assert delays[0] == 0.05
    assert 0.0 < delays[1] < 0.05


def sleeper_cancelled_after_a_second(
        sleep: Callable[[], Awaitable[Any]]) -> tuple[Trace, list[Row]]:
    """The trace, and the rows of a task "sleeper" that awaits `sleep()` until main cancels
    it a second on."""
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleep, name="sleeper")
            await trio.sleep(1)
            nursery.cancel_scope.cancel()

    trace, _ = record(main)
    return trace, [row for row in task_rows(trace) if row[0] == "sleeper"]


def test_a_sleep_of_infinity_is_blocked_until_cancelled_and_tracing_goes_on() -> None:
    async def sleeper() -> None:
        await trio.sleep(math.inf)

    trace, rows = sleeper_cancelled_after_a_second(sleeper)
    states = [(row[1], row[3]) for row in rows]
    assert ("blocked", {"on": "sleep"}) in states
    assert states[-1] == ("end", {"result": "dead"})
    assert not trace.meta.get("notes")  # the instrumentation did not fail


def test_each_step_runs_at_the_line_it_resumes_at_and_a_checkpoint_is_ready_by_itself() -> None:
    async def main() -> None:
        await trio.lowlevel.checkpoint()
        await trio.sleep(0)

    trace, _ = record(main)

    assert task_rows(trace) == [
        *SPAWNED_BY_RUN,
        ("main", "running", "", {}),
        ("main", "ready", "main", {"cause": "self"}),
        ("main", "running", "", {}),
        ("main", "ready", "main", {"cause": "self"}),
        ("main", "running", "", {}),
        ("main", "end", "", {"result": "dead"}),
    ]
    running_lines = [
        e.source[1] for e in trace.events() if e.code == Code.RUNNING and e.source is not None
    ]
    first_line = main.__code__.co_firstlineno
    assert running_lines == [first_line, first_line + 1, first_line + 2]


def test_an_event_wait_is_blocked_and_the_setter_wakes_it() -> None:
    async def waiter(event: trio.Event) -> None:
        await event.wait()

    async def main() -> None:
        event = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter, event, name="waiter")
            await trio.sleep(1)
            event.set()

    trace, _ = record(main)

    rows = task_rows(trace)
    waiter_rows = [row for row in rows if row[0] == "waiter"]
    assert waiter_rows == [
        ("waiter", "spawn", "main", {"name": "waiter", "kind": "task", "coro": "waiter"}),
        ("waiter", "ready", "main", {"cause": "spawn"}),
        ("waiter", "running", "", {}),
        ("waiter", "blocked", "", {"on": "Event.wait"}),
        ("waiter", "wake", "main", {"cause": "blocked", "on": "Event.wait"}),
        ("waiter", "ready", "main", {"cause": "blocked", "on": "Event.wait"}),
        ("waiter", "running", "", {}),
        ("waiter", "end", "", {"result": "dead"}),
    ]


def test_a_socket_receive_is_an_io_wait_on_its_fd_woken_by_the_poll() -> None:
    fds: dict[str, int] = {}

    async def reader(sock: trio.socket.SocketType) -> bytes:
        return await sock.recv(10)

    async def main() -> None:
        left, right = trio.socket.socketpair()
        fds["right"] = right.fileno()
        with left, right:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(reader, right, name="reader")
                await trio.sleep(1)
                await left.send(b"ping")

    trace, _ = record(main)

    reader_events = [e for e in trace.events() if trace.lane_name(e.lane) == "reader"]
    assert [(e.kind, lane_label(trace, e.other), e.detail) for e in reader_events] == [
        ("spawn", "main", {"name": "reader", "kind": "task", "coro": "reader"}),
        ("ready", "main", {"cause": "spawn"}),
        ("running", "", {}),
        ("io-wait", "", {"fd": fds["right"], "mode": "read"}),
        ("wake", LOOP, {"cause": "fd", "fd": fds["right"], "mode": "read"}),
        ("ready", LOOP, {"cause": "fd", "fd": fds["right"], "mode": "read"}),
        ("running", "", {}),
        ("end", "", {"result": "dead"}),
    ]
    # the wake comes right after the poll that found the fd ready
    wake = next(e for e in reader_events if e.kind == "wake")
    before = [e.kind for e in trace.events(0, wake.seq) if trace.lane_name(e.lane) == LOOP]
    assert before[-2:] == ["poll", "dispatch"]


def test_a_cancelled_sleep_is_woken_by_the_task_that_cancelled_it() -> None:
    async def sleeper() -> None:
        await trio.sleep_forever()

    _, rows = sleeper_cancelled_after_a_second(sleeper)
    assert rows[3] == ("sleeper", "blocked", "", {"on": "sleep_forever"})
    assert rows[4:6] == [
        ("sleeper", "wake", "main", {"cause": "blocked", "on": "sleep_forever"}),
        ("sleeper", "ready", "main", {"cause": "blocked", "on": "sleep_forever"}),
    ]


def test_a_timed_wait_cancelled_by_another_task_is_woken_by_a_cancel() -> None:
    async def sleeper() -> None:
        await trio.sleep(100)

    _, rows = sleeper_cancelled_after_a_second(sleeper)
    assert [row[1] for row in rows] == [
        "spawn", "ready", "running", "sleeping", "wake", "ready", "running", "end"]
    assert rows[4] == ("sleeper", "wake", "main", {"cause": "cancel"})


def test_the_run_lane_polls_between_dispatches_and_ends_with_the_run() -> None:
    async def main() -> None:
        await trio.sleep(1)

    trace, _ = record(main)

    kinds = loop_kinds(trace)
    assert kinds[:2] == ["spawn", "dispatch"]
    assert kinds[-1] == "end"
    middle = kinds[2:-1]
    assert middle and all(
        (a, b) in {("poll", "dispatch"), ("dispatch", "poll")}
        for a, b in itertools.pairwise(middle)
    ), middle
    assert trace.lane_info(0).kind == "loop"
    polls = [e for e in trace.events() if e.code == Code.POLL]
    # the poll that waits for main's one-second sleep says so (the MockClock jumps it)
    assert any(e.detail["timeout_s"] == 0.0 for e in polls)


def test_trios_own_tasks_get_no_lanes_and_every_run_gets_its_own_lane() -> None:
    async def main() -> None:
        await trio.sleep(0)

    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    untraced_run = trio.run
    with traced_runs(recorder):
        assert trio.run is not untraced_run
        trio.run(main)
        trio.run(main)
    recorder.close()

    assert [(info.name, info.kind) for info in trace.lanes] == [
        ("trio run", "loop"), ("main", "task"), ("trio run-2", "loop"), ("main-2", "task")]
    assert trio.run is untraced_run


def test_anyio_on_trio_is_traced_by_the_trio_model() -> None:
    async def hello(event: anyio.Event) -> None:
        await anyio.sleep(0.001)
        event.set()

    async def main() -> None:
        event = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(hello, event)
            await event.wait()

    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with traced_runs(recorder):
        anyio.run(main, backend="trio")
    recorder.close()

    names = [(info.name, info.kind) for info in trace.lanes]
    assert names == [("trio run", "loop"), ("main", "task"), ("hello", "task")]
    hello_kinds = [row[1] for row in task_rows(trace) if row[0] == "hello"]
    assert hello_kinds[:4] == ["spawn", "ready", "running", "sleeping"]
    wakes = [row for row in task_rows(trace) if row[1] == "wake" and row[0] == "main"]
    assert ("main", "wake", "hello", {"cause": "blocked", "on": "Event.wait"}) in wakes


def test_a_program_clock_is_kept_and_held_time_is_not_program_time() -> None:
    seen: list[float] = []

    async def main() -> None:
        seen.append(trio.current_time())

    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with traced_runs(recorder):
        recorder.paused_s = 0.0
        trio.run(main)
        recorder.paused_s = 1000.0  # as if the step gate had held the program that long
        trio.run(main)
        trio.run(main, clock=trio.testing.MockClock())  # the program's own clock stays
    recorder.close()

    assert seen[1] < seen[0] - 900
    assert seen[2] == 0.0


def test_a_broken_hook_is_reported_once_and_trio_never_sees_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("hook fell over")

    monkeypatch.setattr(TrioInstrument, "_after_task_step", broken)

    async def worker(n: int) -> int:
        await trio.sleep(0.001)
        return n * 2

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(worker, n)

    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with traced_runs(recorder) as guard:
        trio.run(main)
        trio.run(main)  # after the failure: untraced
    recorder.close()

    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert errors == [
        "loopscope: the trio instrumentation failed (RuntimeError: hook fell over); "
        "tracing stopped, the program goes on"
    ]
    assert guard.detached
    marks = [e for e in trace.events() if e.kind == "mark"]
    assert len(marks) == 1 and marks[0].detail["text"] == errors[0]
    assert marks[0].seq == len(trace) - 1, "events were recorded after tracing detached"


@pytest.mark.parametrize(
    ("source", "model"),
    [
        ("import trio\ntrio.run(main)\n", "trio"),
        ("import anyio\nanyio.run(main, backend='trio')\n", "trio"),
        ("import anyio\nanyio.run(main)\n", "asyncio"),
        ("import asyncio\n", "asyncio"),
    ],
)
def test_a_script_is_guessed_trio_by_its_import_or_its_anyio_backend(source: str,
                                                                     model: str) -> None:
    assert guess_model(source) == model


def test_lane_names_drop_the_module_trio_puts_in_front() -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0)

    trace, _ = record(main)

    names = [info.name for info in trace.lanes]
    assert names == ["trio run", "main", "sleep"]
    assert not any(re.search(r"<locals>|\.", name) for name in names[1:])
