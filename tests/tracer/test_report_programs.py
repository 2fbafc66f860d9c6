"""Each lint on a program written to show it, and none on clean programs: real child runs.

A program marks the line a finding must name with `# finding: RULE`; the test runs it, builds
the report and compares the findings' rules, lanes and lines with the marks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from loopscope.scenarios import catalog
from loopscope.tracer import lints
from loopscope.tracer.report import ReportOptions, build_report, report_json
from loopscope.tracer.report_schema import schema_errors
from loopscope.tracer.runner import RunResult, record_sync
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace

PROGRAMS = Path(__file__).parent / "report_programs"
_MARK = re.compile(r"# finding: ([a-z-]+)")

pytestmark = pytest.mark.slow


def _marks(path: Path) -> dict[str, int]:
    """rule -> the line marked for it."""
    return {match.group(1): number
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if (match := _MARK.search(line))}


def _report_of(path: Path) -> tuple[RunResult, list[tuple[str, str | None, str | None]]]:
    result = record_sync(resolve_target(str(path)), timeout=60)
    assert result.status == "ok", result.stderr
    report = build_report(result.trace)
    # every finding about a lane names a span of it, for the app to mark and select
    assert all(f.seq is not None for f in report.findings if f.lane is not None)
    return result, [(f.rule, f.lane_name, f.where) for f in report.findings]


# program -> (rule, lane) of every finding it must give; the line comes from its mark
EXPECTED: dict[str, list[tuple[str, str | None]]] = {
    "gevent_hog.py": [("stall", "hog")],
    "gevent_main_blocks.py": [("stall", "main")],
    "blocking_callback.py": [("stall", "asyncio loop")],
    "pending_at_exit.py": [("pending-at-exit", "poller")],
    "never_retrieved.py": [("exception-never-retrieved", "fails")],
    "never_awaited.py": [("never-awaited", None)],
    "sleep0_storm.py": [("self-wake-storm", "poll_flag")],
    "gevent_sleep0_storm.py": [("self-wake-storm", "poll_flag")],
    "lock_contention.py": [("contention", None)],
    "gevent_lock_contention.py": [("contention", None)],
    "gevent_queue_contention.py": [("contention", None)],
    "thread_lock_contention.py": [("contention", None)],
    "thread_queue_contention.py": [("contention", None)],
    "gevent_patched_lock_contention.py": [("contention", None)],
    "select_spin.py": [("zero-timeout-spin", "select loop")],
    "thread_pool_idle.py": [("idle-on-thread-pool", "read_sensor")],
    "executor_idle.py": [("idle-on-thread-pool", "compress")],
    "overloaded_loop.py": [("overloaded-loop", "asyncio loop")],
}
CLEAN = ["clean_workers.py", "thread_pool_busy.py", "gevent_clean.py", "clean_threads.py",
         "gevent_slow_start.py"]


@pytest.mark.parametrize("program", sorted(EXPECTED))
def test_each_lint_fires_on_its_program_naming_lane_and_line(program: str) -> None:
    path = PROGRAMS / program
    marks = _marks(path)
    _result, found = _report_of(path)
    expected = [(rule, lane, f"{program}:{marks[rule]}") for rule, lane in EXPECTED[program]]
    assert found == expected


def test_sleeps_shorter_than_a_millisecond_are_a_self_wake_storm() -> None:
    # each sleep's detail is a value row (its deadline), found by the delay in its base row;
    # the loop, polling with a zero timeout between the timers, spins too
    path = PROGRAMS / "tiny_sleep_storm.py"
    _result, found = _report_of(path)
    line = f"tiny_sleep_storm.py:{_marks(path)['self-wake-storm']}"
    assert found == [("self-wake-storm", "poll_flag", line),
                     ("zero-timeout-spin", "asyncio loop", None)]


def test_a_task_collected_while_pending_is_reported_with_the_line_it_waited_at() -> None:
    path = PROGRAMS / "destroyed_pending.py"
    _result, found = _report_of(path)
    line = _marks(path)["destroyed-pending"]
    # it also never ended: pending at exit, where only its last step's first line is known.
    # Whether the collector closes the coroutine before it reports the task is the
    # collector's order within one collection, as untraced (the tracer no longer keeps the
    # pair alive to the end; 3.11 closes it first, 3.13 on CI did not): Python's message then
    # says "done, defined at" and the finding is where the task's last step began, as the
    # trace says, or "running at" the line it waited at, and the finding is that line.
    assert found[0] == ("pending-at-exit", "orphan", f"destroyed_pending.py:{line - 1}")
    assert found[1] in [("destroyed-pending", "orphan", f"destroyed_pending.py:{at}")
                        for at in (line, line - 1)]
    assert len(found) == 2


def test_python_s_own_word_on_a_destroyed_task_is_read_in_both_forms() -> None:
    trace = Trace()
    for text in [
        "Task was destroyed but it is pending!\ntask: <Task pending name='a' "
        "coro=<wait() running at /p/x.py:8> wait_for=<Future pending>>\n",
        "Task was destroyed but it is pending!\ntask: <Task pending name='b' "
        "coro=<wait() done, defined at /p/x.py:7> wait_for=<Future pending>>\n",
    ]:
        trace.meta["stderr"] = str(trace.meta.get("stderr", "")) + text
    found = lints.from_stderr(trace, derive_spans(trace))
    assert [(f.rule, f.location, f.title) for f in found] == [
        ("destroyed-pending", ("/p/x.py", 8, "wait()"),
         "task a was collected while still pending (wait() stopped at x.py:8)"),
        ("destroyed-pending", ("/p/x.py", 7, "wait()"),
         "task b was collected while still pending (wait(), defined at x.py:7)"),
    ]


@pytest.mark.parametrize("program", CLEAN)
def test_a_clean_program_reports_nothing(program: str) -> None:
    _result, found = _report_of(PROGRAMS / program)
    assert found == []


@pytest.mark.parametrize("scenario_id", [s.id for s in catalog.all_scenarios()
                                          if s.id != "blocking-call"])
def test_the_built_in_scenarios_are_clean(
        scenario_id: str, record_scenario: Callable[..., RunResult]) -> None:
    # A step is a stall by the clock; on a loaded machine a set-up step (aiohttp building its
    # app) can pass 100 ms. Judged at 1 s, the scenarios' own steps are far from it.
    report = build_report(record_scenario(scenario_id).trace, ReportOptions(stall_ns=10**9))
    assert [(f.rule, f.title) for f in report.findings] == []


def test_blocking_call_names_the_blocking_line_and_every_lane_it_delayed(
        record_scenario: Callable[..., RunResult]) -> None:
    trace = record_scenario("blocking-call").trace
    report = build_report(trace)
    assert [f.rule for f in report.findings] == ["stall"]
    stall = report.findings[0]
    import loopscope.scenarios.blocking_call as program

    source = Path(program.__file__).read_text().splitlines()
    sleep_line = next(n for n, text in enumerate(source, 1) if "time.sleep(BLOCK_S)" in text)
    assert stall.lane_name == "blocker"
    assert stall.where == f"blocking_call.py:{sleep_line}"
    assert stall.stack[0][2] == "blocker"
    assert stall.samples > 0
    # the ticker and the heartbeat were asleep with timers due during the step: both late
    assert sorted(delay.name for delay in stall.delayed) == ["heartbeat", "ticker"]
    assert all(delay.late_timer_ns > 0 for delay in stall.delayed)
    assert stall.duration_ns >= 500_000_000  # time.sleep(0.5) sleeps at least that long


def test_gevent_lock_contention_names_the_lock_its_waiters_and_who_released_it() -> None:
    path = PROGRAMS / "gevent_lock_contention.py"
    result = record_sync(resolve_target(str(path)), timeout=60)
    assert result.status == "ok", result.stderr
    [finding] = build_report(result.trace).findings
    facts = finding.facts
    workers = ["worker", "worker-2", "worker-3", "worker-4"]
    created = next(number for number, line in enumerate(path.read_text().splitlines(), 1)
                   if line.startswith("lock ="))
    assert facts["name"] == f"lock (gevent_lock_contention.py:{created})"
    assert facts["primitive"] == "Semaphore.acquire"
    assert facts["lanes"] == workers
    # every wait's time is one waiter's, and every wait ended with a worker's release
    assert sorted(facts["waited_ns"]) == workers
    assert sum(facts["waited_ns"].values()) == finding.duration_ns
    assert set(facts["released_by"]) <= set(workers)
    assert sum(facts["released_by"].values()) == facts["waits"]
    assert f"on {facts['name']}" in finding.title and "released by worker" in finding.title


@pytest.mark.parametrize(("program", "primitive", "made", "waiters", "releasers"), [
    ("thread_lock_contention.py", "Lock.acquire", "lock =",
     ["worker", "worker #2", "worker #3", "worker #4"], None),
    ("thread_queue_contention.py", "Queue.put", "jobs =",
     ["producer", "producer #2", "producer #3", "producer #4"], ["consumer"]),
    # the same threading code under gevent's monkey-patching: greenlets on gevent's lock
    ("gevent_patched_lock_contention.py", "Lock.acquire", "lock =",
     ["worker", "worker-2", "worker-3", "worker-4"], None),
])
def test_thread_contention_names_the_primitive_its_waiters_and_who_let_them_go(
        program: str, primitive: str, made: str, waiters: list[str],
        releasers: list[str] | None) -> None:
    path = PROGRAMS / program
    result = record_sync(resolve_target(str(path)), timeout=60)
    assert result.status == "ok", result.stderr
    report = build_report(result.trace)
    assert schema_errors(report_json(report)) == []
    [finding] = report.findings
    facts = finding.facts
    created = next(number for number, line in enumerate(path.read_text().splitlines(), 1)
                   if line.startswith(made))
    assert facts["name"] == f"{made.split()[0]} ({program}:{created})"
    assert facts["primitive"] == primitive
    assert facts["lanes"] == waiters
    assert sorted(facts["waited_ns"]) == waiters
    assert sum(facts["waited_ns"].values()) == finding.duration_ns
    # a lock's waiters are let go by one another; a full queue's by whoever takes from it
    assert set(facts["released_by"]) <= set(releasers or waiters)
    assert sum(facts["released_by"].values()) == facts["waits"]
    assert f"{primitive} on {facts['name']}" in finding.title and "released by" in finding.title
