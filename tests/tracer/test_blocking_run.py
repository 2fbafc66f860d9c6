"""The command line's run driver without asyncio (tracer.blocking_run), against the asyncio
runner: both must record the same events and judge each ending the same way."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from loopscope.tracer.blocking_run import BlockingRun
from loopscope.tracer.launch import launch
from loopscope.tracer.runner import RunResult, record_sync
from loopscope.tracer.target import Target
from tests.tracer.test_runner import PROLOGUE, kinds, pid_gone, toy, wait_until


def _what(result: RunResult) -> list[tuple[object, ...]]:
    """Each event but its time: its lane, code, other lane, detail and source."""
    return [(e.seq, e.lane, e.code, e.other, e.detail, e.source) for e in result.trace.events()]


def blocking(target: Target, timeout: float | None = 60.0, **options: object) -> RunResult:
    run = BlockingRun(launch(target, sys.executable), target, **options)  # type: ignore[arg-type]
    return run.wait(timeout)


@pytest.mark.parametrize("behaviour", [
    "main", "prints", "flood", "raises", "exits_nonzero", "exits_abruptly", "segfaults",
    "writes_garbage", "truncates_a_frame", "skips_a_sequence_number",
])
def test_both_drivers_record_the_same_run_and_judge_its_end_alike(behaviour: str) -> None:
    ours = blocking(toy(behaviour))
    theirs = record_sync(toy(behaviour))

    assert (ours.status, ours.exit_code) == (theirs.status, theirs.exit_code)
    assert (ours.error is None) == (theirs.error is None)
    assert _what(ours) == _what(theirs)
    assert ours.stdout == theirs.stdout
    assert ours.trace.meta["status"] == ours.status
    assert ours.trace.meta["pid"] != theirs.trace.meta["pid"]


def test_output_lines_are_handed_on_as_they_come() -> None:
    lines: list[str] = []
    errors: list[str] = []

    result = blocking(toy("prints"), on_stdout=lines.append, on_stderr=errors.append)

    assert result.ok, result.error
    assert "".join(lines) == result.stdout and lines
    assert all(line.endswith("\n") for line in lines[:-1])


def test_a_timeout_stops_a_hanging_child_and_keeps_its_events() -> None:
    result = blocking(toy("sleeps"), timeout=1.0)

    assert result.status == "timeout"
    assert result.error is not None and "within 1 s" in result.error
    assert kinds(result.trace) == PROLOGUE


def _stop_when_started(run: BlockingRun, then: str = "stop") -> threading.Thread:
    """Calls run.stop() (or kill) from another thread once the prologue has arrived, as a
    signal handler would while wait() waits."""

    def act() -> None:
        wait_until(lambda: len(run.trace) >= len(PROLOGUE))
        getattr(run, then)()

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def test_stop_ends_a_child_that_cooperates_and_keeps_its_events() -> None:
    target = toy("sleeps")
    run = BlockingRun(launch(target, sys.executable), target)
    _stop_when_started(run)

    result = run.wait()

    assert (result.status, result.exit_code, result.error) == ("stopped", 0, None)
    assert kinds(result.trace) == PROLOGUE


@pytest.mark.parametrize("behaviour", ["ignores_stop", "swallows_stop"])
def test_stop_kills_a_child_that_does_not_stop_within_the_grace(behaviour: str) -> None:
    target = toy(behaviour)
    run = BlockingRun(launch(target, sys.executable), target, stop_grace_s=0.3)
    _stop_when_started(run)
    began = time.monotonic()

    result = run.wait()

    assert result.status == "stopped"
    assert result.exit_code == -signal.SIGKILL
    assert kinds(result.trace)[: len(PROLOGUE)] == PROLOGUE
    assert time.monotonic() - began < 30  # the program alone would sleep for 600 s


def test_a_signal_handler_can_stop_the_run_while_it_waits() -> None:
    target = toy("sleeps")
    run = BlockingRun(launch(target, sys.executable), target)
    previous = signal.signal(signal.SIGUSR1, lambda _signo, _frame: run.stop())
    try:
        def send() -> None:
            wait_until(lambda: len(run.trace) >= len(PROLOGUE))
            os.kill(os.getpid(), signal.SIGUSR1)

        threading.Thread(target=send, daemon=True).start()
        result = run.wait()
    finally:
        signal.signal(signal.SIGUSR1, previous)

    assert (result.status, result.exit_code) == ("stopped", 0)
    assert signal.set_wakeup_fd(-1) == -1  # wait() put back what it found


def test_runs_leave_no_process_and_no_open_fd_behind() -> None:
    blocking(toy("main"))  # warm up: imports and lazily created state
    before = set(os.listdir("/proc/self/fd"))
    pids = []
    for behaviour, timeout in [("main", 60.0), ("segfaults", 60.0), ("sleeps", 0.5),
                               ("ignores_stop", 0.5)]:
        pids.append(blocking(toy(behaviour), timeout=timeout).trace.meta["pid"])

    assert set(os.listdir("/proc/self/fd")) == before
    assert all(pid_gone(pid) for pid in pids)


def test_what_the_program_started_does_not_outlive_the_run() -> None:
    result = blocking(toy("starts_a_server_child"))

    assert result.ok, result.error
    grandchild = int(result.stdout.split()[-1])
    assert wait_until(lambda: pid_gone(grandchild))
