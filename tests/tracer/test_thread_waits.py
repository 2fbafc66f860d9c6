"""Threads blocked on the program's locks, queues and events: real child runs of the programs in
thread_programs/, their wait spans compared with the expected sequences."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from loopscope.tracer.events import NO_LANE, Code
from loopscope.tracer.narrate import narrate
from loopscope.tracer.runner import RunResult, record_sync
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace

PROGRAMS = Path(__file__).parent / "thread_programs"

pytestmark = pytest.mark.slow


def _run(name: str) -> RunResult:
    result = record_sync(resolve_target(str(PROGRAMS / name)), timeout=60)
    assert result.status == "ok", result.stderr
    return result


def _line(name: str, text: str) -> int:
    lines = (PROGRAMS / name).read_text().splitlines()
    return next(number for number, line in enumerate(lines, 1) if text in line)


def _by_lane(trace: Trace) -> dict[str, list[tuple[Any, ...]]]:
    """Each lane's events, as (code, other lane's name, what a wait or wake says, the line a
    running span starts at)."""
    lanes: dict[str, list[tuple[Any, ...]]] = {}
    for seq in range(len(trace)):
        code = trace.code[seq]
        if code in (Code.OUTPUT, Code.ANNOTATE):
            continue
        other = trace.other[seq]
        detail = trace.details[trace.detail[seq]] if trace.detail[seq] else {}
        said = None
        if code == Code.BLOCKED:
            said = (detail.get("on"), detail.get("primitive"))
        elif code == Code.WAKE:
            said = (detail.get("cause"), detail.get("primitive"))
        source = trace.sources[trace.source[seq]] if trace.source[seq] else None
        line = (Path(source[0]).name, source[1]) if code == Code.RUNNING and source else None
        lanes.setdefault(trace.lane_name(trace.lane[seq]), []).append(
            (code, trace.lane_name(other) if other >= 0 else None, said, line))
    return lanes


def test_a_thread_waiting_for_a_lock_is_blocked_until_the_holder_lets_it_go() -> None:
    name = "lock_handoff.py"
    trace = _run(name).trace
    lock = f"lock ({name}:{_line(name, 'lock = threading.Lock()')})"
    waited_at = (name, _line(name, "# waits here"))
    lanes = _by_lane(trace)
    assert lanes["waiter"] == [
        (Code.SPAWN, None, None, None),
        (Code.RUNNING, None, None, None),
        (Code.BLOCKED, None, ("Lock.acquire", lock), None),
        (Code.WAKE, "holder", ("released", lock), None),
        (Code.READY, "holder", None, None),
        (Code.RUNNING, None, None, waited_at),
        (Code.END, None, None, None),
    ]
    # the holder never waited on the lock: it slept holding it, then let the waiter go
    slept_at = (name, _line(name, "time.sleep(0.3)"))
    assert lanes["holder"] == [(Code.SPAWN, None, None, None), (Code.RUNNING, None, None, None),
                               (Code.SLEEPING, None, None, None),
                               (Code.RUNNING, None, None, slept_at),
                               (Code.END, None, None, None)]
    blocked, woken = (next(seq for seq in range(len(trace)) if trace.code[seq] == code)
                      for code in (Code.BLOCKED, Code.WAKE))
    assert trace.ts[blocked] < trace.ts[woken]


def test_a_producer_waits_for_room_in_a_full_queue_until_the_main_thread_takes_an_item() -> None:
    name = "queue_handoff.py"
    result = _run(name)
    assert result.stdout.strip().endswith("[0, 1, 2]")
    jobs = f"jobs ({name}:{_line(name, 'jobs = queue.Queue')})"
    put_at = (name, _line(name, "jobs.put(number)"))
    wait = [(Code.BLOCKED, None, ("Queue.put", jobs), None),
            (Code.WAKE, "main thread", ("released", jobs), None),
            (Code.READY, "main thread", None, None),
            (Code.RUNNING, None, None, put_at)]
    lanes = _by_lane(result.trace)
    # the first put finds room; the second and third each wait for a get
    assert lanes["producer"] == [(Code.SPAWN, None, None, None), (Code.RUNNING, None, None, None),
                                 *wait, *wait, (Code.END, None, None, None)]
    # the main thread (no model's lane runs there) gets a lane when it first lets one go;
    # from then on its sleeps between gets are sleeps on that lane, and its join a wait for
    # the producer unless that one had ended already
    main = [code for code, *_ in lanes["main thread"]]
    assert main[:6] == [Code.SPAWN, Code.RUNNING, Code.SLEEPING, Code.RUNNING, Code.SLEEPING,
                        Code.RUNNING]
    assert main[6:] in ([Code.END], [Code.BLOCKED, Code.WAKE, Code.READY, Code.RUNNING,
                                     Code.END])


def test_conditions_semaphores_and_events_are_named_and_the_program_works_unchanged() -> None:
    name = "primitives.py"
    result = _run(name)
    assert result.stdout.strip().endswith("['ready', 'slot']")
    lanes = _by_lane(result.trace)

    def waits(lane: str) -> list[tuple[Any, ...]]:
        events = lanes[lane]
        return [(said, events[at + 1][1], events[at + 3][3]) for at, (code, _o, said, _l)
                in enumerate(events) if code == Code.BLOCKED]

    def named(what: str, text: str) -> str:
        return f"{what} ({name}:{_line(name, text)})"

    go, ready, slots = (named("go", "go = "), named("ready", "ready = "),
                        named("slots", "slots = "))
    assert waits("signaller") == [
        (("Event.wait", go), "main thread", (name, _line(name, "go.wait()")))]
    assert waits("listener") == [
        (("Condition.wait_for", ready), "signaller", (name, _line(name, "ready.wait_for("))),
        (("BoundedSemaphore.acquire", slots), "signaller",
         (name, _line(name, "# waits here until"))),
    ]


def test_the_standard_librarys_own_locks_are_not_the_programs() -> None:
    # asyncio's to_thread (its own pool's futures) and a SimpleQueue wait on locks the
    # standard library made: none of that is a wait of the program's
    result = _run("library_locks.py")
    assert result.stdout.split() == ["6", "1"]
    trace = result.trace
    assert not [seq for seq in range(len(trace)) if trace.code[seq] == Code.BLOCKED
                and "primitive" in (trace.details[trace.detail[seq]] or {})]


def test_work_handed_to_asyncios_thread_pool_waits_on_its_own_lane() -> None:
    name = "pool_work_lock.py"
    trace = _run(name).trace
    ledger = f"ledger ({name}:{_line(name, 'ledger = threading.Lock()')})"
    lanes = _by_lane(trace)
    # the pool's work lanes (tracer.thread_work) are the lanes that wait and let go
    assert [event[:3] for event in lanes["audit"][1:]] == [
        (Code.RUNNING, None, None),
        (Code.BLOCKED, None, ("Lock.acquire", ledger)),
        (Code.WAKE, "post", ("released", ledger)),
        (Code.READY, "post", None),
        (Code.RUNNING, None, None),
        (Code.END, None, None),
    ]
    assert lanes["audit"][-2][3] == (name, _line(name, "# waits here"))
    assert Code.BLOCKED not in [code for code, *_ in lanes["post"]]


def test_a_pool_the_program_makes_waits_on_its_futures_and_its_idle_worker_on_work() -> None:
    name = "pool_waits.py"
    result = _run(name)
    assert result.stdout.split() == ["1", "2", "shut", "down"]
    lanes = _by_lane(result.trace)
    assert set(lanes) == {"main thread", "worker_0"}
    pool = f"pool ({name}:{_line(name, 'pool = ')})"
    first = f"first ({name}:{_line(name, 'first = ')})"
    completed = f"as_completed ({name}:{_line(name, 'as_completed(')})"

    def woken(waker: str, cause: str, primitive: str | None, at: str | None
              ) -> list[tuple[Any, ...]]:
        line = (name, _line(name, at)) if at else None
        return [(Code.WAKE, waker, (cause, primitive), None), (Code.READY, waker, None, None),
                (Code.RUNNING, None, None, line)]

    # The main thread waits for each result, woken by the worker that set the future, and
    # at shutdown for the worker to end; its sleeps in between are its own.
    assert lanes["main thread"] == [
        (Code.SPAWN, None, None, None), (Code.RUNNING, None, None, None),
        (Code.BLOCKED, None, ("Future.result", first), None),
        *woken("worker_0", "future", first, "print(first.result())"),
        (Code.SLEEPING, None, None, None),
        (Code.RUNNING, None, None, (name, _line(name, "time.sleep(0.1)  # the worker"))),
        (Code.BLOCKED, None, ("as_completed", completed), None),
        *woken("worker_0", "future", completed, "as_completed("),
        (Code.SLEEPING, None, None, None),
        (Code.RUNNING, None, None, (name, _line(name, "# idle again"))),
        (Code.BLOCKED, None, ("worker_0.join()", None), None),
        *woken("worker_0", "ended", None, "pool.shutdown()"),
        (Code.END, None, None, None)]
    # The worker, idle between the two tasks and after the second, is blocked on the pool's
    # work queue until the main thread's submit (then shutdown) puts an item in.
    task = [(Code.RUNNING, None, None, None), (Code.SLEEPING, None, None, None),
            (Code.RUNNING, None, None, (name, _line(name, "# works here")))]
    idle = [(Code.BLOCKED, None, ("work queue", pool), None),
            (Code.WAKE, "main thread", ("released", pool), None),
            (Code.READY, "main thread", None, None)]
    assert lanes["worker_0"] == [(Code.SPAWN, None, None, None), *task, *idle, *task, *idle,
                                 (Code.RUNNING, None, None, None), (Code.END, None, None, None)]
    told = [line.strip().split(" s  ", 1)[1] for line in narrate(result.trace)]
    assert f"main thread waits on Future.result of {first}" in told
    assert f"main thread waits on {completed}" in told
    assert "worker_0 sets a future: wakes main thread" in told
    assert f"worker_0 waits on work queue of {pool}" in told


def test_a_pool_an_asyncio_task_hands_work_to_draws_the_work_not_its_workers() -> None:
    result = _run("pool_from_asyncio.py")
    assert result.stdout.split() == ["6", "9"]
    trace = result.trace
    names = sorted(trace.lane_name(lane) for lane in range(len(trace.lanes)))
    assert names == ["asyncio loop", "blocking_io", "blocking_io #2", "blocking_io #3",
                     "blocking_io #4", "blocking_io #5", "main (Task-1)"]
    assert not [seq for seq in range(len(trace)) if trace.code[seq] == Code.BLOCKED
                and "primitive" in (trace.details[trace.detail[seq]] or {})]


def test_a_process_pools_futures_are_waited_on_without_a_lane_for_its_manager() -> None:
    # the manager thread sets the futures from what it waits for in select: no lane for it
    name = "process_pool.py"
    result = _run(name)
    assert result.stdout.split() == ["14"]
    lanes = _by_lane(result.trace)
    assert set(lanes) == {"main thread"}
    main = lanes["main thread"]
    # the first future the main thread waits on is the first not done by the time it asks:
    # #1, unless the workers outran it (a loaded machine)
    assert main[:2] == [(Code.SPAWN, None, None, None), (Code.RUNNING, None, None, None)]
    assert main[2] in [(Code.BLOCKED, None, ("Future.result",
                                             f"squares #{n} ({name}:{_line(name, 'squares =')})"),
                        None) for n in range(1, 5)]
    assert main[-1] == (Code.END, None, None, None)
    assert {code for code, *_ in main} == {Code.SPAWN, Code.RUNNING, Code.BLOCKED, Code.END}
    # the shutdown joins the manager thread, named by its class (the join is not recorded in
    # the rare run where the manager has finished before it)
    joins = {said[0] for code, _other, said, _line in main
             if code == Code.BLOCKED and said[0].endswith(".join()")}
    assert joins in ({"ExecutorManagerThread.join()"}, set())


def test_the_workers_of_a_multiprocessing_thread_pool_are_named_for_it() -> None:
    # their class is multiprocessing's DummyProcess, a name the program's author never wrote
    result = _run("mp_thread_pool_sleeps.py")
    assert result.stdout.split() == ["6"]
    workers = set(_by_lane(result.trace)) - {"main thread"}  # a worker may get no task
    assert workers and workers <= {"ThreadPool worker", "ThreadPool worker #2"}


def test_threads_of_a_thread_class_are_named_by_their_class() -> None:
    name = "thread_classes.py"
    result = _run(name)
    assert result.stdout.split() == ["reminded", "done"]
    lanes = _by_lane(result.trace)
    assert set(lanes) == {"Downloader", "Downloader #2", "Timer", "main thread"}
    told = [line.strip().split(" s  ", 1)[1] for line in narrate(result.trace)]
    # which download is "#2" is whichever recorded second
    assert told.count("main thread waits on Downloader.join()") + told.count(
        "main thread waits on Downloader #2.join()") >= 1
    assert "main thread waits on Timer.join()" in told
    assert "Timer ended: wakes main thread" in told


def test_what_the_main_thread_printed_before_its_first_wait_is_on_its_lane() -> None:
    name = "prints_first.py"
    trace = _run(name).trace
    main = next(info.id for info in trace.lanes if info.name == "main thread")
    told = [(trace.code[seq], trace.details[trace.detail[seq]].get("text"),
             trace.sources[trace.source[seq]][1] if trace.source[seq] else None)
            for seq in range(len(trace)) if trace.lane[seq] == main]
    printed = [(text, line) for code, text, line in told if code == Code.OUTPUT]
    assert printed == [("starting", _line(name, 'print("starting")')),
                       ("started", _line(name, 'print("started")')),
                       ("joined", _line(name, 'print("joined")'))]
    # its lane starts at its first line, which comes before its join
    codes = [code for code, _text, _line in told]
    assert codes[:3] == [Code.SPAWN, Code.RUNNING, Code.OUTPUT]
    assert codes.index(Code.BLOCKED) > 3
    outputs = [seq for seq in range(len(trace)) if trace.lane[seq] == main
               and trace.code[seq] == Code.OUTPUT]
    assert trace.ts[outputs[0]] <= trace.ts[outputs[1]] <= trace.ts[outputs[2]]


def test_a_join_names_the_lane_it_waits_for_when_threads_share_a_name() -> None:
    lanes = _by_lane(_run("same_names.py").trace)
    assert set(lanes) == {"worker", "worker #2", "main thread"}
    main = lanes["main thread"]
    joins = [(said[0], main[index + 1][1]) for index, (code, _other, said, _line) in
             enumerate(main) if code == Code.BLOCKED]
    # each join waits for the lane whose end then wakes it (the second may be over already)
    assert joins in ([("worker.join()", "worker"), ("worker #2.join()", "worker #2")],
                     [("worker #2.join()", "worker #2"), ("worker.join()", "worker")],
                     [("worker.join()", "worker")], [("worker #2.join()", "worker #2")])


def test_the_programs_lock_answers_isinstance_as_it_does_untraced() -> None:
    # on 3.13+ threading.Lock is a type: the stand-in must not make isinstance() raise
    name = "lock_identity.py"
    untraced = subprocess.run([sys.executable, str(PROGRAMS / name)], capture_output=True,
                              text=True, timeout=60, check=True)
    assert _run(name).stdout == untraced.stdout


def test_a_pools_workers_are_named_as_the_pool_names_its_threads() -> None:
    # their target is concurrent.futures' own _worker: the thread's name says more
    result = _run("executor_lock.py")
    assert result.stdout.split()[-1] == "14"
    names = {result.trace.lane_name(lane) for lane in range(len(result.trace.lanes))}
    assert names == {"loader_0", "loader_1", "main thread"}  # main waits on map's results


def test_threads_sleep_on_lanes_named_as_the_program_named_them_and_joins_wait_for_them(
) -> None:
    name = "sleepers.py"
    result = _run(name)
    trace = result.trace
    slept_at = (name, _line(name, "# sleeps here"))
    nap = [(Code.SLEEPING, None, None, None), (Code.RUNNING, None, None, slept_at)]
    lanes = _by_lane(trace)
    assert set(lanes) == {"ticker-0", "ticker-1", "main thread"}
    for ticker in ("ticker-0", "ticker-1"):
        assert lanes[ticker] == [(Code.SPAWN, None, None, None),
                                 (Code.RUNNING, None, None, None), *nap, *nap,
                                 (Code.END, None, None, None)]
    joined_at = (name, _line(name, "thread.join()"))

    def join(ticker: str) -> list[tuple[Any, ...]]:
        return [(Code.BLOCKED, None, (f"{ticker}.join()", None), None),
                (Code.WAKE, ticker, ("ended", None), None), (Code.READY, ticker, None, None),
                (Code.RUNNING, None, None, joined_at)]

    # The main thread waits for each ticker in turn, woken by its end (ticker-1 may be over
    # by then); once it has a lane, its own sleep is recorded too.
    main = lanes["main thread"]
    assert main[:6] == [(Code.SPAWN, None, None, None), (Code.RUNNING, None, None, None),
                        *join("ticker-0")]
    assert main[6:] in ([*join("ticker-1"), *main[-3:]], main[-3:])
    assert main[-3:] == [(Code.SLEEPING, None, None, None),
                         (Code.RUNNING, None, None, (name, _line(name, "time.sleep(0.01)"))),
                         (Code.END, None, None, None)]
    sleeps = [trace.details[trace.detail[seq]] for seq in range(len(trace))
              if trace.code[seq] == Code.SLEEPING]
    assert [sleep["delay_s"] for sleep in sleeps] == [0.02] * 4 + [0.01]
    printed = {(trace.lane_name(trace.lane[seq]), trace.details[trace.detail[seq]]["text"])
               for seq in range(len(trace)) if trace.code[seq] == Code.OUTPUT}
    assert ("main thread", "all joined") in printed and ("ticker-1", "ticker 1 round 1") in printed
    told = [line.strip().split(" s  ", 1)[1] for line in narrate(trace)]  # after "0.007 s"
    assert "main thread waits on ticker-0.join()" in told
    assert "ticker-0 ended: wakes main thread" in told
    assert "ticker-0 sleeps until" in " ".join(told)
    # a sleep's deadline is its start plus its delay, on the trace's clock (a span recorded
    # late is moved up to the last batch sent, never back)
    for seq in range(len(trace)):
        if trace.code[seq] == Code.SLEEPING:
            deadline = trace.details[trace.detail[seq]]["deadline_ns"]
            assert 0 < deadline - trace.ts[seq] <= 20_000_000


def test_a_sleep_handed_to_a_pool_sleeps_on_a_lane_named_for_it() -> None:
    # no line of the program's calls it, yet the program asked the pool for that sleep
    result = _run("sleep_handed_to_pool.py")
    assert result.stdout.split() == ["sleep", "sleep", "time"]
    lanes = _by_lane(result.trace)
    assert set(lanes) >= {"sleep", "sleep #2"}
    for name in ("sleep", "sleep #2"):
        # the lane resumes at no line: only the pool's plumbing is there
        assert lanes[name] == [(Code.SPAWN, "main (Task-1)", None, None),
                               (Code.RUNNING, None, None, None),
                               (Code.SLEEPING, None, None, None),
                               (Code.RUNNING, None, None, None),
                               (Code.END, None, None, None)]
    sleeps = [trace_detail["delay_s"] for trace_detail in (
        result.trace.details[result.trace.detail[seq]] for seq in range(len(result.trace))
        if result.trace.code[seq] == Code.SLEEPING)]
    assert sleeps == [0.02, 0.03]


@pytest.mark.parametrize("pure", [False, True], ids=["c", "pure"])
def test_a_thread_s_first_line_never_spawns_its_lane_before_a_pending_spawn(
        pure: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lanes are numbered in the order their SPAWNs are recorded. A line another thread
    printed before the traced thread spawned a lane, but drained after (at the next flush),
    must not put its thread's SPAWN (the newer lane) before that pending SPAWN: the trace
    would have lane 1 spawned before lane 0, which a reader refuses ("an event is on a lane
    out of range"). Seen with a program whose thread slept while asyncio started, about
    one run in three on 3.13's pure tracer."""
    from loopscope.tracer import recorder as recorder_module
    from loopscope.tracer.events import FakeClock, LaneKind
    from loopscope.tracer.recorder import Recorder
    from loopscope.tracer.thread_lines import ThreadLines
    from loopscope.tracer.trace import Trace

    if pure:
        monkeypatch.setattr(recorder_module, "SPEEDUPS", None)
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    lines = ThreadLines(recorder, lambda lane, text, extra, source: recorder.record(
        lane, Code.OUTPUT, NO_LANE, recorder.detail(("text", text))))
    clock.advance(1_000)
    printer = threading.Thread(target=lines.add, args=("early line", ()), name="printer")
    printer.start()
    printer.join()
    lines.install()
    try:
        clock.advance(1_000)
        loop = recorder.spawn("loop", LaneKind.LOOP)  # pending when the line is drained
        recorder.flush()
        lines.finish()
        recorder.close()
    finally:
        lines.uninstall()
    spawns = [event.lane for event in trace.events() if event.kind == "spawn"]
    assert spawns == [loop, loop + 1]
    printed = [(event.lane, event.detail["text"]) for event in trace.events()
               if event.kind == "output"]
    assert printed == [(loop + 1, "early line")]
