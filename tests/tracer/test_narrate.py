"""Narration of hand-built traces: the exact lines a learner reads, one per step."""

from __future__ import annotations

import pytest

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.narrate import (
    delay_text,
    describe,
    narrate,
    narration_line,
    step_indices,
)
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

MS = 1_000_000
SECOND = 1_000_000_000


def _recording() -> tuple[Trace, Recorder, FakeClock]:
    trace = Trace()
    clock = FakeClock()
    return trace, Recorder(trace, clock=clock), clock


def _output(recorder: Recorder, lane: int, text: str) -> None:
    recorder.record(lane, Code.OUTPUT, detail=recorder.detail(("text", text)))


def test_asyncio_like_run_narrates_sleeps_polls_timers_and_prints() -> None:
    trace, rec, clock = _recording()
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    task = rec.spawn("hello (Task-2)", LaneKind.TASK, parent=loop, extra=("coro", "hello()"))
    other = rec.spawn("Task-3", LaneKind.TASK, parent=loop, extra=("coro", "hello()"))
    rec.wake(task, loop, ("cause", "spawn"))
    rec.state(loop, Code.POLL, ("timeout_s", 0))  # checking in passing, finds nothing
    rec.annotate(loop, ("readable", (), "writable", ()))
    rec.state(loop, Code.DISPATCH)
    rec.state(task, Code.RUNNING, source=rec.source("/home/me/hello.py", 7, "hello"))
    _output(rec, task, "Hello world!")
    rec.state(task, Code.SLEEPING, ("delay_s", 1.0, "deadline_ns", SECOND))
    rec.state(loop, Code.POLL, ("timeout_s", 1.0))
    clock.advance(SECOND)
    rec.annotate(loop, ("readable", (), "writable", ()))
    rec.state(loop, Code.DISPATCH)
    rec.wake(task, loop, ("cause", "timer", "deadline_ns", SECOND))
    rec.state(task, Code.RUNNING, source=rec.source("/home/me/hello.py", 9, "hello"))
    clock.advance(2 * MS)
    rec.end(task, result="done")
    rec.end(other, error=ValueError("no more"))
    rec.state(loop, Code.POLL, ("timeout_s", None))
    rec.close()

    assert list(narrate(trace)) == [
        "  0.000 s  asyncio loop starts",
        "  0.000 s  asyncio loop spawns task hello (Task-2)",
        "  0.000 s  asyncio loop spawns task Task-3 running hello()",
        "  0.000 s  hello (Task-2) is scheduled to start by asyncio loop",
        "  0.000 s  hello (Task-2) runs at hello.py:7",
        "  0.000 s  hello (Task-2) prints 'Hello world!'",
        "  0.000 s  hello (Task-2) sleeps until 1.000 s",
        "  0.000 s  asyncio loop polls (timeout 1.00 s)",
        "  1.000 s  asyncio loop's poll returns with nothing ready",
        "  1.000 s  timer due at 1.000 s fires: wakes hello (Task-2)",
        "  1.000 s  hello (Task-2) runs at hello.py:9",
        "  1.002 s  hello (Task-2) ends with result 'done'",
        "  1.002 s  Task-3 fails with ValueError: no more",
        "  1.002 s  asyncio loop polls (no timeout: it waits until something is ready)",
    ]


def test_select_like_run_narrates_fds_peers_and_poll_results() -> None:
    trace, rec, clock = _recording()
    loop = rec.spawn("select loop", LaneKind.LOOP)
    client = rec.spawn("client-2", LaneKind.CONNECTION, parent=loop)
    rec.state(client, Code.IO_WAIT, ("fd", 9, "mode", "read", "peer", "127.0.0.1:40123"))
    rec.state(loop, Code.POLL, ("timeout_s", 0.5))
    clock.advance(250 * MS)
    rec.annotate(loop, ("readable", (5, 7, 9), "writable", (11,)))
    rec.state(loop, Code.DISPATCH, ("callback", "accept"))
    rec.wake(client, loop, ("cause", "fd", "fd", 9, "mode", "read"))
    rec.state(client, Code.RUNNING)
    rec.state(client, Code.IO_WAIT, ("fd", 9, "mode", "write"))
    rec.state(loop, Code.POLL, ("timeout_s", 0))
    rec.annotate(loop, ("readable", (), "writable", (9,)))
    rec.close()

    assert list(narrate(trace)) == [
        "  0.000 s  select loop starts",
        "  0.000 s  select loop spawns connection client-2",
        "  0.000 s  client-2 waits for fd 9 to become readable (peer 127.0.0.1:40123)",
        "  0.000 s  select loop polls (timeout 0.50 s)",
        "  0.250 s  select loop's poll returns fds [5, 7, 9] readable and fd 11 writable",
        "  0.250 s  select loop runs callback accept",
        "  0.250 s  fd 9 readable: wakes client-2",
        "  0.250 s  client-2 runs",
        "  0.250 s  client-2 waits for fd 9 to become writable",
        "  0.250 s  select loop's poll returns fd 9 writable",
    ]


def test_generator_hand_offs_say_what_was_sent_and_yielded_back() -> None:
    trace, rec, _ = _recording()
    producer = rec.spawn("producer", LaneKind.MAIN)
    consumer = rec.spawn("consumer", LaneKind.GENERATOR, parent=producer)
    rec.switch(producer, consumer, ("via", "next"))
    rec.switch(consumer, producer, ("via", "yield", "value", "''"))
    rec.switch(producer, consumer, ("via", "send", "value", "3"))
    rec.switch(consumer, producer, ("via", "yield", "value", "'200 OK'"))
    rec.switch(producer, consumer, ("via", "throw", "value", "ValueError()"))
    rec.switch(producer, consumer, ("via", "close"))
    rec.end(consumer, error=GeneratorExit())
    rec.end(producer)
    rec.close()

    assert list(narrate(trace)) == [
        "  0.000 s  producer starts",
        "  0.000 s  producer spawns generator consumer",
        "  0.000 s  producer resumes consumer with next()",
        "  0.000 s  consumer yields '' back to producer",
        "  0.000 s  producer sends 3 to consumer",
        "  0.000 s  consumer yields '200 OK' back to producer",
        "  0.000 s  producer throws ValueError() into consumer",
        "  0.000 s  producer closes consumer",
        "  0.000 s  consumer fails with GeneratorExit",
        "  0.000 s  producer ends",
    ]


def test_a_switch_to_the_hub_says_why_and_absorbs_the_wait_it_explains() -> None:
    trace, rec, clock = _recording()
    hub = rec.spawn("hub", LaneKind.LOOP)
    main = rec.spawn("main", LaneKind.MAIN)
    bar = rec.spawn("bar", LaneKind.GREENLET, parent=main)
    rec.switch(main, bar, ("via", "switch"))
    rec.state(bar, Code.RUNNING)
    rec.switch(bar, hub, ("via", "hub"))
    rec.state(bar, Code.SLEEPING, ("delay_s", 1.0, "deadline_ns", SECOND))
    rec.state(bar, Code.SLEEPING, ("delay_s", 0.5))  # a second wait, not explained by a switch
    rec.state(main, Code.BLOCKED, ("on", "joinall"), other=bar)
    rec.switch(main, hub, ("via", "hub"))
    clock.advance(SECOND)
    rec.switch(hub, bar, ("via", "switch", "value", "None"))
    rec.close()

    assert list(narrate(trace)) == [
        "  0.000 s  hub starts",
        "  0.000 s  main starts",
        "  0.000 s  main spawns greenlet bar",
        "  0.000 s  main switches to bar",
        "  0.000 s  bar runs",
        "  0.000 s  bar switches to the hub: sleeping until 1.000 s",
        "  0.000 s  bar sleeps for 0.5 s",
        "  0.000 s  main switches to the hub: waiting on joinall",
        "  1.000 s  hub switches to bar, passing None",
    ]


def test_a_hub_switch_with_no_wait_nearby_is_plain() -> None:
    trace, rec, _ = _recording()
    hub = rec.spawn("hub", LaneKind.LOOP)
    worker = rec.spawn("worker", LaneKind.GREENLET)
    rec.state(worker, Code.RUNNING)
    rec.switch(worker, hub, ("via", "hub"))
    rec.close()
    assert describe(trace, len(trace) - 1) == "worker switches to the hub"


def test_wake_causes_each_have_their_own_sentence() -> None:
    trace, rec, _ = _recording()
    loop = rec.spawn("loop", LaneKind.LOOP)
    main = rec.spawn("main", LaneKind.TASK, parent=loop)
    fetch = rec.spawn("fetch-1", LaneKind.TASK, parent=main)
    causes = [
        (fetch, ("cause", "future")),
        (loop, ("cause", "task")),
        (main, ("cause", "self")),
        (loop, ("cause", "callback", "callback", "on_done")),
        (loop, ("cause", "timer")),
        (loop, ("cause", "fd", "fd", 4, "mode", "write")),
        (loop, ("reason", "unknown")),
    ]
    first = rec.event_count
    for waker, cause in causes:
        rec.record(main, Code.WAKE, waker, rec.detail(cause))
    rec.close()

    assert [describe(trace, seq) for seq in range(first, len(trace))] == [
        "fetch-1 sets a future: wakes main",
        "loop ended: wakes main",
        "main yields to the loop and is ready to run again",
        "loop runs a callback (on_done): wakes main",
        "timer fires: wakes main",
        "fd 4 writable: wakes main",
        "loop wakes main",
    ]


def test_noise_is_not_a_step_but_a_lone_ready_is() -> None:
    trace, rec, _ = _recording()
    loop = rec.spawn("loop", LaneKind.LOOP)
    task = rec.spawn("worker", LaneKind.TASK, parent=loop)
    rec.wake(task, loop, ("cause", "spawn"))  # WAKE + READY: the READY repeats it
    rec.state(loop, Code.DISPATCH)  # says nothing
    rec.annotate(task, ())  # says nothing
    rec.state(task, Code.READY, other=loop)  # a READY of its own
    rec.state(task, Code.BLOCKED, ("on", "Queue.get"))
    rec.state(task, Code.BLOCKED, ("on", "Lock.acquire", "primitive", "lock (bank.py:6)"))
    rec.state(task, Code.BLOCKED, other=loop)
    rec.record(task, Code.MARK, detail=rec.detail(("text", "paused")))
    rec.annotate(loop, ("note", "idle"))
    rec.close()

    steps = step_indices(trace)
    assert [trace.code[seq] for seq in steps] == [
        Code.SPAWN, Code.SPAWN, Code.WAKE, Code.READY, Code.BLOCKED, Code.BLOCKED,
        Code.BLOCKED, Code.MARK, Code.ANNOTATE,
    ]
    assert [describe(trace, seq) for seq in steps[3:]] == [
        "worker is ready to run (loop made it ready)",
        "worker waits on Queue.get",
        "worker waits on Lock.acquire of lock (bank.py:6)",  # which of the program's locks
        "worker waits on loop",
        "worker: paused",
        "loop: note idle",
    ]


def test_narration_line_is_the_sentence_with_its_time() -> None:
    trace, rec, clock = _recording()
    lane = rec.spawn("main", LaneKind.MAIN)
    clock.advance(12_345 * MS)
    _output(rec, lane, "it's done")
    rec.state(lane, Code.DISPATCH)
    rec.close()
    assert narration_line(trace, 1) == " 12.345 s  main prints \"it's done\""
    assert narration_line(trace, 2) is None


def test_a_lane_whose_value_was_never_seen_says_what_became_of_it() -> None:
    trace, rec, _ = _recording()
    names = ("loop", "consumer", "second", "first", "hello", "quoted")
    lanes = [rec.spawn(name, LaneKind.GREENLET) for name in names]
    for lane, fate in zip(lanes, ("closed", "closed", "returned", "never finished"), strict=False):
        rec.record(lane, Code.END, detail=rec.detail(("result", fate)))
    rec.end(lanes[4], result=None)
    rec.end(lanes[5], result="closed")  # a task that returned the string: a value, quoted
    rec.close()

    assert [line.split("  ", 2)[-1] for line in narrate(trace)][len(names):] == [
        "loop is closed",
        "consumer is closed",
        "second returns",
        "first never finished: it was still suspended when the run ended",
        "hello ends",
        "quoted ends with result 'closed'",
    ]


def test_cancellations_timeouts_and_stderr_lines_are_told_as_such() -> None:
    trace, rec, clock = _recording()
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    main = rec.spawn("main (Task-1)", LaneKind.TASK, parent=loop)
    victim = rec.spawn("victim", LaneKind.TASK, parent=main)
    rec.wake(victim, main, ("cause", "future", "cancel", True))
    clock.advance(SECOND)
    rec.wake(main, loop, ("cause", "timer", "deadline_ns", SECOND, "cancel", True))
    rec.wake(main, victim, ("cause", "task", "cancel", True))
    rec.record(main, Code.OUTPUT, detail=rec.detail(("text", "oops", "stream", "stderr")))
    rec.close()

    assert list(narrate(trace))[3:] == [
        "  0.000 s  main (Task-1) cancels victim",
        "  1.000 s  timeout due at 1.000 s fires: cancels main (Task-1)",
        "  1.000 s  victim ended cancelled: wakes main (Task-1)",
        "  1.000 s  main (Task-1) writes 'oops' to stderr",
    ]


def test_a_print_says_the_line_that_printed_it_when_recorded() -> None:
    trace, rec, _ = _recording()
    task = rec.spawn("greet (Task-2)", LaneKind.TASK)
    rec.state(task, Code.RUNNING, source=rec.source("/home/me/greet.py", 7, "greet"))
    printed_at = rec.source("/home/me/greet.py", 12, "shout")
    rec.record(task, Code.OUTPUT, detail=rec.detail(("text", "hi")), source=printed_at)
    rec.record(task, Code.OUTPUT, detail=rec.detail(("stream", "stderr", "text", "oops")),
               source=printed_at)
    _output(rec, task, "no line known")  # a last line finished only at the end of the run
    rec.close()

    assert list(narrate(trace))[-3:] == [
        "  0.000 s  greet (Task-2) prints 'hi' at greet.py:12",
        "  0.000 s  greet (Task-2) writes 'oops' to stderr at greet.py:12",
        "  0.000 s  greet (Task-2) prints 'no line known'",
    ]


def test_a_cancelled_task_is_cancelled_not_failed() -> None:
    import asyncio

    from loopscope.tracer.lane_table import lane_rows
    from loopscope.tracer.spans import derive_spans

    trace, rec, clock = _recording()
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    worker = rec.spawn("worker (Task-2)", LaneKind.TASK, parent=loop)
    broken = rec.spawn("broken (Task-3)", LaneKind.TASK, parent=loop)
    clock.advance(MS)
    rec.end(worker, error=asyncio.CancelledError())
    rec.end(broken, error=ValueError("no more"))
    rec.close()

    assert list(narrate(trace))[-2:] == [
        "  0.001 s  worker (Task-2) is cancelled",
        "  0.001 s  broken (Task-3) fails with ValueError: no more",
    ]
    status = {row.name: row.status for row in lane_rows(trace, derive_spans(trace))}
    assert status == {"asyncio loop": "alive", "worker (Task-2)": "cancelled",
                      "broken (Task-3)": "failed"}


def test_times_count_from_the_programs_first_event_as_the_axis_does() -> None:
    # the child starts up for 300 ms before the program's first event
    trace, rec, clock = _recording()
    clock.advance(300 * MS)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    task = rec.spawn("nap", LaneKind.TASK, parent=loop)
    rec.state(task, Code.RUNNING)
    clock.advance(10 * MS)
    rec.state(task, Code.SLEEPING, ("delay_s", 0.05, "deadline_ns", 360 * MS))
    clock.advance(50 * MS)
    rec.wake(task, loop, ("cause", "timer", "deadline_ns", 360 * MS))
    rec.state(task, Code.RUNNING)
    rec.end(task)
    rec.close()
    assert trace.first_event_ns == 300 * MS
    lines = list(narrate(trace))
    assert lines[0] == "  0.000 s  asyncio loop starts"
    assert "  0.010 s  nap sleeps until 0.060 s" in lines
    assert "  0.060 s  timer due at 0.060 s fires: wakes nap" in lines


@pytest.mark.parametrize(("delay", "text"), [
    (0.01, "0.01 s"), (1, "1 s"), (0.0015402, "0.00154 s"), (1.6e-05, "16 µs"),
    (0, "0 s"), (3600, "3,600 s"), (0.1 + 0.2, "0.3 s"),
])
def test_a_sleeps_delay_reads_as_written_and_never_in_exponent_notation(
        delay: float, text: str) -> None:
    assert delay_text(delay) == text


def test_a_sleep_until_reads_to_the_millisecond_like_the_lines_own_time() -> None:
    # a sleep of 1.4 ms from 0.271 s: "until 0.27 s" read as if it were due before it began
    trace, rec, clock = _recording()
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    task = rec.spawn("fetch", LaneKind.TASK, loop)
    clock.advance(271 * MS)
    rec.state(task, Code.SLEEPING, ("delay_s", 0.0014, "deadline_ns", 272_400_000))
    rec.close()
    assert list(narrate(trace))[-1].endswith("fetch sleeps until 0.272 s")
