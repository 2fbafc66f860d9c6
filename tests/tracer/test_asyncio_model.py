"""The asyncio instrumentation, in-process: exact event sequences for tiny programs.

Each program runs under `traced_loops` with a Recorder writing straight into a Trace and a
FakeClock, so the sequences (and the deadlines) are deterministic.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import socket
import warnings
import weakref
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from loopscope.tracer.events import Batch, Code, FakeClock
from loopscope.tracer.models import _asyncio_tracer
from loopscope.tracer.models._asyncio_loop import TracingEventLoop
from loopscope.tracer.models.asyncio_model import traced_loops
from loopscope.tracer.notes import take_notes
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace
from tests.tracer import blocked_calls

LOOP = "asyncio loop"
Row = tuple[str, str, str, dict[str, Any]]


@contextlib.contextmanager
def warnings_as_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def record(main: Callable[[], Awaitable[Any]], **recorder_options: Any) -> tuple[Trace, Any]:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1), **recorder_options)
    with traced_loops(recorder):
        result = asyncio.run(main())  # type: ignore[arg-type]
    recorder.close()
    return trace, result


def plain(text: str) -> str:
    """Names as a reader would write them: "test_x.<locals>.main (Task-57)" -> "main (Task-N)".

    Task-N counts every task the process ever made, and the programs are local functions.
    """
    return re.sub(r"Task-\d+", "Task-N", re.sub(r"[\w.]*<locals>\.", "", text))


def lane_label(trace: Trace, lane: int) -> str:
    return plain(trace.lane_name(lane)) if lane >= 0 else ""


def task_rows(trace: Trace) -> list[Row]:
    """Every event on a task lane: (lane, kind, other lane, detail)."""
    return [
        (
            lane_label(trace, e.lane),
            e.kind,
            lane_label(trace, e.other),
            {k: plain(v) if isinstance(v, str) else v for k, v in e.detail.items()},
        )
        for e in trace.events()
        if trace.lane_name(e.lane) != LOOP
    ]


def loop_kinds(trace: Trace) -> list[str]:
    return [e.kind for e in trace.events() if trace.lane_name(e.lane) == LOOP]


MAIN = "main (Task-N)"
SPAWNED_BY_LOOP = [
    (MAIN, "spawn", LOOP, {"name": MAIN, "kind": "task", "coro": "main"}),
    (MAIN, "ready", LOOP, {"cause": "spawn"}),
]


def test_a_task_sleeping_zero_twice_goes_ready_by_itself() -> None:
    async def main() -> str:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "done"

    trace, result = record(main)

    assert result == "done"
    assert task_rows(trace) == [
        *SPAWNED_BY_LOOP,
        (MAIN, "running", "", {}),
        (MAIN, "ready", MAIN, {"cause": "self"}),
        (MAIN, "running", "", {}),
        (MAIN, "ready", MAIN, {"cause": "self"}),
        (MAIN, "running", "", {}),
        (MAIN, "end", "", {"result": "'done'"}),
    ]
    # each step's source is the line the coroutine resumes at: def, first await, second await
    running_lines = [
        e.source[1] for e in trace.events() if e.code == Code.RUNNING and e.source is not None
    ]
    first_line = main.__code__.co_firstlineno
    assert running_lines == [first_line, first_line + 1, first_line + 2]


def test_a_task_awaiting_another_is_blocked_on_it_and_woken_by_its_end() -> None:
    async def child() -> int:
        await asyncio.sleep(0)
        return 7

    async def main() -> int:
        return await asyncio.create_task(child(), name="child")

    trace, result = record(main)

    assert result == 7
    assert task_rows(trace) == [
        *SPAWNED_BY_LOOP,
        (MAIN, "running", "", {}),
        ("child", "spawn", MAIN, {"name": "child", "kind": "task", "coro": "child"}),
        ("child", "ready", MAIN, {"cause": "spawn"}),
        (MAIN, "blocked", "child", {"on": "task child"}),
        ("child", "running", "", {}),
        ("child", "ready", "child", {"cause": "self"}),
        ("child", "running", "", {}),
        ("child", "end", "", {"result": "7"}),
        (MAIN, "wake", "child", {"cause": "task"}),
        (MAIN, "ready", "child", {"cause": "task"}),
        (MAIN, "running", "", {}),
        (MAIN, "end", "", {"result": "7"}),
    ]


def test_a_queue_hand_off_wakes_the_consumer_from_the_producer() -> None:
    async def consumer(queue: asyncio.Queue[str]) -> str:
        return await queue.get()

    async def main() -> str:
        queue: asyncio.Queue[str] = asyncio.Queue()
        receiving = asyncio.create_task(consumer(queue), name="consumer")
        await asyncio.sleep(0)  # let the consumer reach queue.get()
        queue.put_nowait("parcel")
        return await receiving

    trace, result = record(main)

    assert result == "parcel"
    consumer_rows = [row for row in task_rows(trace) if row[0] == "consumer"]
    assert consumer_rows == [
        ("consumer", "spawn", MAIN, {"name": "consumer", "kind": "task",
                                     "coro": "consumer"}),
        ("consumer", "ready", MAIN, {"cause": "spawn"}),
        ("consumer", "running", "", {}),
        ("consumer", "blocked", "", {"on": "Queue.get"}),
        ("consumer", "wake", MAIN, {"cause": "future"}),
        ("consumer", "ready", MAIN, {"cause": "future"}),
        ("consumer", "running", "", {}),
        ("consumer", "end", "", {"result": "'parcel'"}),
    ]
    # the wake happens inside the producer's step, before it blocks on the consumer
    rows = task_rows(trace)
    wake = rows.index(("consumer", "wake", MAIN, {"cause": "future"}))
    assert rows[wake - 1] == (MAIN, "running", "", {})
    assert rows[wake + 2] == (MAIN, "blocked", "consumer", {"on": "task consumer"})


def test_sock_recv_is_an_io_wait_on_the_fd_woken_by_fd_readiness() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server_side, _ = listener.accept()
    server_side.setblocking(False)
    fd = server_side.fileno()
    client_address = "{}:{}".format(*client.getsockname())

    async def receive() -> bytes:
        return await asyncio.get_running_loop().sock_recv(server_side, 100)

    async def main() -> bytes:
        receiving = asyncio.create_task(receive(), name="receiver")
        await asyncio.sleep(0)  # the receiver finds nothing to read and waits
        client.sendall(b"ping")
        return await receiving

    try:
        trace, result = record(main)
    finally:
        for sock in (client, server_side, listener):
            sock.close()

    assert result == b"ping"
    receiver = [row for row in task_rows(trace) if row[0] == "receiver"]
    assert receiver[2:] == [
        ("receiver", "running", "", {}),
        ("receiver", "io-wait", "", {"fd": fd, "mode": "read", "peer": client_address}),
        ("receiver", "wake", LOOP, {"cause": "fd", "fd": fd, "mode": "read"}),
        ("receiver", "ready", LOOP, {"cause": "fd", "fd": fd, "mode": "read"}),
        ("receiver", "running", "", {}),
        ("receiver", "end", "", {"result": "b'ping'"}),
    ]
    # the poll that returned the fd readable is the one right before the wake
    events = list(trace.events())
    wake_seq = next(e.seq for e in events if e.kind == "wake" and e.detail.get("cause") == "fd")
    annotations = [e for e in events[:wake_seq] if e.kind == "annotate"]
    assert annotations[-1].detail == {"readable": [fd], "writable": []}


def test_a_timer_sleep_is_sleeping_with_its_deadline_and_woken_by_the_timer() -> None:
    async def main() -> None:
        await asyncio.sleep(0.01)

    trace, _ = record(main)

    rows = task_rows(trace)
    sleeping = [row for row in rows if row[1] == "sleeping"]
    assert len(sleeping) == 1
    detail = sleeping[0][3]
    assert detail["delay_s"] == 0.01
    deadline = detail["deadline_ns"]
    # the timer was set during the step, so the deadline is 10 ms after a moment inside it
    events = list(trace.events())
    running_ts = next(e.ts for e in events if e.kind == "running")
    sleeping_ts = next(e.ts for e in events if e.kind == "sleeping")
    assert running_ts < deadline - 10_000_000 < sleeping_ts
    assert [row[1:] for row in rows if row[1] in ("wake", "ready")][1:] == [
        ("wake", LOOP, {"cause": "timer", "deadline_ns": deadline}),
        ("ready", LOOP, {"cause": "timer", "deadline_ns": deadline}),
    ]


def test_gather_blocks_on_gather_and_the_last_finished_child_wakes_it() -> None:
    async def quick() -> str:
        return "quick"

    async def slow() -> str:
        await asyncio.sleep(0)
        return "slow"

    async def main() -> list[str]:
        return await asyncio.gather(
            asyncio.create_task(quick(), name="quick"), asyncio.create_task(slow(), name="slow")
        )

    trace, result = record(main)

    assert result == ["quick", "slow"]
    main_rows = [row[1:] for row in task_rows(trace) if row[0] == MAIN]
    assert main_rows[2:] == [
        ("running", "", {}),
        ("blocked", "", {"on": "gather"}),
        ("wake", "slow", {"cause": "task"}),
        ("ready", "slow", {"cause": "task"}),
        ("running", "", {}),
        ("end", "", {"result": "['quick', 'slow']"}),
    ]


def test_the_loop_lane_alternates_poll_and_dispatch_and_ends_when_closed() -> None:
    async def main() -> None:
        # long enough that even a loaded machine reaches the poll before the timer is due
        await asyncio.sleep(0.1)

    trace, _ = record(main)

    kinds = loop_kinds(trace)
    assert kinds[:2] == ["spawn", "dispatch"]
    assert kinds[-1] == "end"
    loop_end = [e.detail for e in trace.events() if e.kind == "end"][-1]
    assert loop_end == {"result": "closed"}  # what became of it, not a value's quoted repr
    polls = kinds[2:-1]
    assert polls, "the loop never polled"
    assert polls == ["poll", "annotate", "dispatch"] * (len(polls) // 3)
    timeouts = [e.detail["timeout_s"] for e in trace.events() if e.kind == "poll"]
    assert 0 < max(t for t in timeouts if t is not None) <= 0.1


class BatchLog:
    """A sink that keeps each batch's kinds and details, to see where flushes fell."""

    def __init__(self) -> None:
        self.trace = Trace()
        self.batch_ends: list[int] = []

    def write_batch(self, batch: Batch) -> None:
        self.trace.write_batch(batch)
        self.batch_ends.append(len(self.trace) - 1)


def test_events_are_flushed_before_the_loop_blocks_in_a_poll() -> None:
    async def main() -> None:
        for _ in range(3):
            await asyncio.sleep(0.005)

    log = BatchLog()
    recorder = Recorder(log, clock=FakeClock(tick_ns=1), batch_size=1_000_000)
    with traced_loops(recorder):
        asyncio.run(main())
    recorder.close()

    trace = log.trace
    blocking_polls = [
        e.seq for e in trace.events() if e.kind == "poll" and e.detail["timeout_s"] != 0
    ]
    assert len(blocking_polls) >= 3
    # every batch but the last (closing) one ends with the poll the loop then blocked in
    for end in log.batch_ends[:-1]:
        assert end in blocking_polls
    assert len(log.batch_ends) >= 4


def test_the_proxy_keeps_results_exceptions_cancellation_and_introspection() -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    async def forever() -> None:
        await asyncio.Event().wait()

    seen: dict[str, Any] = {}

    async def main() -> None:
        failing = asyncio.create_task(fails(), name="fails")
        waiting = asyncio.create_task(forever(), name="forever")
        coro = failing.get_coro()
        seen["iscoroutine"] = asyncio.iscoroutine(coro)
        seen["qualname"] = coro.__qualname__  # type: ignore[union-attr]
        seen["frame_line"] = coro.cr_frame.f_lineno  # type: ignore[union-attr]
        seen["repr"] = repr(failing)
        with pytest.raises(ValueError, match="boom") as caught:
            await failing
        seen["same_exception"] = caught.value is failing.exception()
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        seen["cancelled"] = waiting.cancelled()

    trace, _ = record(main)

    assert seen["iscoroutine"] is True
    assert seen["qualname"].endswith("fails")
    assert seen["frame_line"] == fails.__code__.co_firstlineno
    assert "fails" in seen["repr"] and "coro=<" in seen["repr"]
    assert seen["same_exception"] is True
    assert seen["cancelled"] is True
    ends = {row[0]: row[3] for row in task_rows(trace) if row[1] == "end"}
    assert ends["fails"] == {"error": "ValueError: boom"}
    assert ends["forever"]["error"].startswith("CancelledError")
    forever_rows = [row[1:] for row in task_rows(trace) if row[0] == "forever"]
    assert ("blocked", "", {"on": "Event.wait"}) in forever_rows
    # waiting.cancel() in main's step: a wake that cancels
    assert forever_rows[-4:-1] == [
        ("wake", MAIN, {"cause": "future", "cancel": True}),
        ("ready", MAIN, {"cause": "future", "cancel": True}),
        ("running", "", {}),
    ]


def test_a_broken_hook_is_reported_once_and_tracing_detaches(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("hook fell over")

    # the END of a task that returns a value, which the C tracer asks Python to record
    monkeypatch.setattr(Recorder, "end", broken)

    async def worker(n: int) -> int:
        await asyncio.sleep(0.001)
        await asyncio.sleep(0)
        return n * 2

    async def main() -> list[int]:
        return list(await asyncio.gather(*(worker(n) for n in range(3))))

    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with traced_loops(recorder) as loops:
        first = asyncio.run(main())
        second = asyncio.run(main())  # a new loop after the failure: untraced
        loop_after = loops.new_event_loop()
        loop_after.close()
    recorder.close()

    assert first == second == [0, 2, 4]
    errors = [line for line in capsys.readouterr().err.splitlines() if "loopscope" in line]
    assert len(errors) == 1
    assert "RuntimeError: hook fell over" in errors[0]
    assert "tracing stopped" in errors[0]
    assert not isinstance(loop_after, TracingEventLoop)
    marks = [e for e in trace.events() if e.kind == "mark"]
    assert len(marks) == 1 and marks[0].detail["text"] == errors[0]
    assert marks[0].seq == len(trace) - 1, "events were recorded after tracing detached"
    assert recorder.current == -1


def test_what_the_block_replaced_comes_back_after_the_run() -> None:
    originals = (asyncio.new_event_loop, asyncio.events.new_event_loop,
                 asyncio.Runner.__init__, asyncio.events._set_running_loop, asyncio.Task)
    recorder = Recorder(Trace(), clock=FakeClock())
    with traced_loops(recorder):
        loop = asyncio.new_event_loop()
        loop.close()
        assert isinstance(loop, TracingEventLoop)
    assert (asyncio.new_event_loop, asyncio.events.new_event_loop, asyncio.Runner.__init__,
            asyncio.events._set_running_loop, asyncio.Task) == originals


def test_the_first_failure_detaches_every_loop_and_puts_the_factories_back_at_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the model's lifecycle is the toolkit's: one Guard for the run, shared by its loops
    originals = (asyncio.new_event_loop, asyncio.events.new_event_loop, asyncio.Task)
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    seen_inside: list[object] = []

    def broken(*args: Any) -> None:
        raise RuntimeError("timer hook fell over")

    async def sleeper() -> str:
        await asyncio.sleep(0.001)  # the timer's hook raises in here
        seen_inside.append((asyncio.new_event_loop, asyncio.events.new_event_loop, asyncio.Task))
        return "slept"

    with traced_loops(recorder) as loops:
        bystander = loops.new_event_loop()  # a second traced loop of the same run
        assert isinstance(bystander, TracingEventLoop) and not bystander.tracer.detached
        monkeypatch.setattr(_asyncio_tracer.LoopTracer, "with_cause", broken)
        result = asyncio.run(sleeper())
        assert loops.guard.detached and bystander.tracer.detached
        bystander.close()
    recorder.close()

    assert result == "slept"
    assert seen_inside == [originals]  # put back when it failed, not only when the run ended
    errors = [line for line in capsys.readouterr().err.splitlines() if "loopscope" in line]
    assert errors == ["loopscope: the asyncio instrumentation failed (RuntimeError: timer hook "
                      "fell over); tracing stopped, the program goes on"]
    marks = [e for e in trace.events() if e.kind == "mark"]
    assert [(trace.lane_name(m.lane), m.detail["text"]) for m in marks] == [
        ("asyncio loop #2", errors[0])]
    assert marks[0].seq == len(trace) - 1, "events were recorded after tracing detached"


def _poison_waiters(loop: TracingEventLoop, future: asyncio.Future[Any]) -> None:
    loop.tracer.waiting[id(future)] = "not a row"


def _poison_cause(loop: TracingEventLoop, future: asyncio.Future[Any]) -> None:
    loop.tracer.cause = (0,)  # a callback's cause is (waker, detail, deadline_ns)


@pytest.mark.skipif(_asyncio_tracer.SPEEDUPS is None, reason="what the C tracer reads")
@pytest.mark.parametrize(("poison", "message"), [
    (_poison_waiters, "TypeError: a row of asyncio waiters is not a tuple of 1 fields"),
    (_poison_cause, "TypeError: a row of the asyncio cause is not a tuple of 3 fields"),
])
def test_a_table_row_of_the_wrong_shape_is_a_clean_failure_not_a_wild_read(
    poison: Callable[[TracingEventLoop, asyncio.Future[Any]], None], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, TracingEventLoop)
        future: asyncio.Future[str] = loop.create_future()
        waiter = asyncio.create_task(wait_for(future))
        await asyncio.sleep(0)  # the waiter now waits on the future

        def complete() -> None:  # a loop callback, outside any task's step
            poison(loop, future)
            future.set_result("done")  # C reads the poisoned row as it wakes the waiter

        loop.call_soon(complete)
        return await waiter

    async def wait_for(future: asyncio.Future[str]) -> str:
        return await future

    trace, result = record(main)

    assert result == "done"  # the program is not disturbed
    errors = [line for line in capsys.readouterr().err.splitlines() if "loopscope" in line]
    assert len(errors) == 1 and message in errors[0], errors
    assert [e.detail["text"] for e in trace.events() if e.kind == "mark"] == errors


@pytest.mark.skipif(_asyncio_tracer.SPEEDUPS is None, reason="what the C proxy reads")
def test_a_wait_verdict_of_the_wrong_shape_is_a_clean_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def waits_twice(future: asyncio.Future[str], again: asyncio.Future[str]) -> str:
        await future  # judged in Python, then cached as (code, verdict)
        tracer = asyncio.get_running_loop().tracer  # type: ignore[attr-defined]
        code = waits_twice.__code__
        tracer._verdicts_top[id(code)] = (code,)  # one field short
        return await again  # the C proxy reads the cached verdict here

    async def main() -> str:
        loop = asyncio.get_running_loop()
        future, again = loop.create_future(), loop.create_future()
        task = asyncio.create_task(waits_twice(future, again))
        await asyncio.sleep(0)
        future.set_result("first")
        await asyncio.sleep(0)
        again.set_result("second")
        return await task

    trace, result = record(main)

    assert result == "second"
    errors = [line for line in capsys.readouterr().err.splitlines() if "loopscope" in line]
    assert len(errors) == 1, errors
    assert "TypeError: a row of asyncio wait verdicts is not a tuple of 2 fields" in errors[0]
    assert [e.detail["text"] for e in trace.events() if e.kind == "mark"] == errors


def loop_lanes(trace: Trace) -> list[str]:
    return [info.name for info in trace.lanes if info.kind == "loop"]


def test_every_loop_asyncio_makes_is_traced_and_numbered() -> None:
    """asyncio.run twice, a Runner, and a loop_factory naming asyncio's own loop: each loop
    is traced, with a lane of its own, and no deprecated policy call warns the program."""

    async def work(label: str) -> str:
        await asyncio.sleep(0)
        return label

    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with traced_loops(recorder), warnings_as_errors():
        results = [asyncio.run(work("first")), asyncio.run(work("second"))]
        with asyncio.Runner() as runner:
            results.append(runner.run(work("runner")))
        with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
            results.append(runner.run(work("factory")))
        loop = asyncio.new_event_loop()
        results.append(loop.run_until_complete(work("by hand")))
        loop.close()
    recorder.close()

    assert results == ["first", "second", "runner", "factory", "by hand"]
    assert loop_lanes(trace) == ["asyncio loop", "asyncio loop #2", "asyncio loop #3",
                                 "asyncio loop #4", "asyncio loop #5"]
    task_names = [plain(info.name) for info in trace.lanes if info.kind == "task"]
    assert [name.split(" ")[0] for name in task_names] == ["work"] * 5


def test_a_loop_the_program_chose_itself_is_named_on_the_timeline() -> None:
    class OwnLoop(asyncio.SelectorEventLoop):
        pass

    async def work() -> int:
        await asyncio.sleep(0)
        return 7

    take_notes()
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with traced_loops(recorder), asyncio.Runner(loop_factory=OwnLoop) as runner:
        result = runner.run(work())
    recorder.close()

    assert result == 7
    notes = take_notes()
    assert len(notes) == 1 and "chose its own event loop" in notes[0] and "OwnLoop" in notes[0]
    lanes = loop_lanes(trace)
    assert len(lanes) == 1 and lanes[0].endswith("OwnLoop (not traced)")
    assert [m.detail["text"] for m in trace.events() if m.kind == "mark"] == notes


def test_a_loop_in_another_thread_runs_untraced_and_is_noted() -> None:
    import threading

    async def work() -> str:
        await asyncio.sleep(0)
        return "threaded"

    take_notes()
    results: list[str] = []
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with traced_loops(recorder):
        worker = threading.Thread(target=lambda: results.append(asyncio.run(work())),
                                  name="worker")
        worker.start()
        worker.join()
    recorder.close()

    assert results == ["threaded"]
    notes = take_notes()
    assert len(notes) == 1 and "ran in another thread and was left untraced" in notes[0]
    assert not [info for info in trace.lanes if info.kind == "task"]


def test_keywords_of_this_pythons_base_loop_pass_through() -> None:
    """create_task and _add_reader take what this Python's asyncio passes (eager_start,
    context); the traced loop hands them on rather than refusing them."""
    import contextvars

    seen: dict[str, Any] = {}
    variable: contextvars.ContextVar[str] = contextvars.ContextVar("variable", default="unset")

    async def child() -> str:
        return variable.get()

    async def main() -> str:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()
        context.run(variable.set, "from the context")
        task = loop.create_task(child(), name="kw", context=context)
        seen["name"] = task.get_name()
        left, right = socket.socketpair()
        readable = loop.create_future()
        loop._add_reader(left.fileno(), readable.set_result, "ready")  # type: ignore[attr-defined]
        right.send(b"x")
        seen["reader"] = await readable
        loop._remove_reader(left.fileno())  # type: ignore[attr-defined]
        left.close()
        right.close()
        return await task

    trace, result = record(main)
    assert result == "from the context"
    assert seen == {"name": "kw", "reader": "ready"}
    assert "kw" in [info.name for info in trace.lanes]


def test_a_task_built_directly_gets_a_lane_and_still_passes_for_a_task() -> None:
    real_task_class = asyncio.Task

    async def handler() -> str:
        await asyncio.sleep(0)
        return "handled"

    checks: dict[str, bool] = {}

    async def main() -> str:
        # what aiohttp does on 3.12+: build the Task itself instead of calling create_task
        task = asyncio.Task(handler(), loop=asyncio.get_running_loop(), name="built")
        checks["isinstance"] = isinstance(task, asyncio.Task)
        checks["real"] = type(task) is real_task_class
        checks["subclass"] = issubclass(real_task_class, asyncio.Task)
        return await task

    trace, result = record(main)

    assert result == "handled"
    assert checks == {"isinstance": True, "real": True, "subclass": True}
    assert asyncio.Task is real_task_class
    assert [row[1] for row in task_rows(trace) if row[0] == "built"] == [
        "spawn", "ready", "running", "ready", "running", "end"
    ]


def test_tasks_the_program_names_alike_get_numbered_lanes_as_any_spawn_does() -> None:
    async def job() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(asyncio.create_task(job(), name="job") for _ in range(3)))
        await asyncio.create_task(job(), name="job #2 again")

    trace, _ = record(main)
    assert [plain(info.name) for info in trace.lanes] == [
        LOOP, MAIN, "job", "job #2", "job #3", "job #2 again"]
    spawns = [e.detail for e in trace.events() if e.kind == "spawn"]
    assert [plain(d["name"]) for d in spawns] == [plain(info.name) for info in trace.lanes]
    assert all(d["kind"] == "task" and plain(d["coro"]) == "job" for d in spawns[2:])


def test_a_lane_name_made_from_a_wide_qualname_is_a_name_like_any_other() -> None:
    # fetch's qualname is "外.<locals>.fetch"; its lane name drops the wide part, and must
    # then be the same str as "fetch (Task-N)" written by the program
    namespace: dict[str, Any] = {"asyncio": asyncio}
    exec("def 外():\n    async def fetch():\n        await asyncio.sleep(0)\n    return fetch\n",
         namespace)
    fetch = namespace["外"]()

    async def main() -> None:
        first = asyncio.create_task(fetch())
        await first
        await asyncio.create_task(fetch(), name=f"fetch ({first.get_name()})")

    trace, _ = record(main)
    assert [plain(info.name) for info in trace.lanes] == [
        LOOP, MAIN, "fetch (Task-N)", "fetch (Task-N) #2"]


def test_a_task_numbered_for_a_taken_name_skips_the_names_the_program_gave() -> None:
    async def job() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.create_task(job(), name="job #2")
        await asyncio.gather(*(asyncio.create_task(job(), name="job") for _ in range(3)))

    trace, _ = record(main)
    assert [plain(info.name) for info in trace.lanes] == [
        LOOP, MAIN, "job #2", "job", "job #3", "job #4"]


class _Crawler:
    async def fetch(self) -> None:
        await asyncio.sleep(0)


def test_a_task_lane_names_its_coroutine_as_written_not_by_the_function_it_is_nested_in(
) -> None:
    # (trio's lanes do the same); a method keeps its class, and the spawn's "coro" keeps the
    # whole qualname
    async def fetch() -> None:
        await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(fetch(), _Crawler().fetch())

    trace, _ = record(main)
    names = [re.sub(r"Task-\d+", "Task-N", info.name) for info in trace.lanes]
    assert names[2:] == ["fetch (Task-N)", "_Crawler.fetch (Task-N)"]
    spawns = [e.detail for e in trace.events() if e.kind == "spawn"]
    assert spawns[2]["coro"].endswith(".<locals>.fetch")


def test_a_blocked_wait_is_named_by_the_library_call_the_program_made() -> None:
    # queue.join() waits inside Event.wait, `async with lock` inside the lock's __aenter__,
    # asyncio.wait inside _wait: the wait is named by what the program called (the program
    # and its cases: tests/tracer/blocked_calls.py)
    trace, _ = record(blocked_calls.main)

    waits = [row[3]["on"] for row in task_rows(trace) if row[0] == MAIN and row[1] == "blocked"]
    assert waits == blocked_calls.BLOCKED_ON * 3


def test_a_wait_in_as_completed_is_named_as_completed_on_every_python() -> None:
    # 3.11 and 3.12 wait in as_completed's local _wait_for_one, 3.13+ in the method of the
    # _AsCompletedIterator it returns, also after __anext__ (`async for`): the program called
    # as_completed either way
    trace, finished = record(blocked_calls.as_completed_main)

    rounds = 3 * blocked_calls.AS_COMPLETED_FORMS
    assert finished == [1, 4] * rounds
    main = "as_completed_main (Task-N)"
    waits = [row[3] for row in task_rows(trace) if row[0] == main and row[1] == "blocked"]
    assert waits == [{"on": "as_completed"}] * 2 * rounds


def test_a_task_dropped_while_it_waits_dies_and_its_row_is_swept() -> None:
    # The waiting table holds the futures weakly: a task waiting on a future nobody completes
    # dies with it when the program drops both, as untraced; its row goes at the next sweep,
    # which a new row brings once the table has grown to _sweep_waiting_at rows.
    async def wait_for(future: asyncio.Future[None]) -> None:
        await future

    async def main() -> tuple[list[bool], int, int]:
        loop = asyncio.get_running_loop()
        tracer = loop.tracer  # type: ignore[attr-defined]
        tracer._sweep_waiting_at = 4
        alive = []
        for _ in range(6):
            future = loop.create_future()
            task = asyncio.create_task(wait_for(future))
            await asyncio.sleep(0)  # the task waits on the future now
            dropped = weakref.ref(task)
            del future, task
            gc.collect()
            alive.append(dropped() is not None)
        rows_left = len(tracer.waiting)
        kept = loop.create_future()
        waiter = asyncio.create_task(wait_for(kept))
        await asyncio.sleep(0)
        loop.call_soon(kept.set_result, None)  # a live wait is still woken by its future
        await waiter
        tracer.sweep_waiting()
        return alive, rows_left, len(tracer.waiting)

    trace, (alive, rows_left, rows_at_end) = record(main)

    assert alive == [False] * 6
    # the fifth row swept the four dead ones before it (a dead row whose id a new future
    # reuses is replaced, too); then only a sweep empties the table
    assert rows_left <= 2
    assert rows_at_end == 0
    last_waiter = max(lane.id for lane in trace.lanes if lane.name.startswith("wait_for"))
    wakes = [e.detail for e in trace.events() if e.kind == "wake" and e.lane == last_waiter]
    assert wakes == [{"cause": "callback"}]
