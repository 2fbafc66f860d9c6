"""The child runner with real child processes: every way a run can end, and what it leaves."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from loopscope.tracer.child import ORPHANED_EXIT
from loopscope.tracer.events import Code
from loopscope.tracer.query import event_kinds
from loopscope.tracer.runner import Run, RunResult, record_sync
from loopscope.tracer.target import Target
from loopscope.tracer.trace import Trace
from tests.tracer import toy_programs

T = TypeVar("T")
MARKS = toy_programs.MARKED_EVENTS
REPO = Path(__file__).resolve().parents[2]  # where tests.tracer.toy_model is importable from
# What every misbehaving toy sends before it misbehaves: its lane, its first state, its marks.
PROLOGUE = ["spawn", "running", *["mark"] * MARKS]


def toy(behaviour: str) -> Target:
    return Target(
        "scenario", behaviour, (), "tests.tracer.toy_model",
        f"tests.tracer.toy_programs:{behaviour}",
    )


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await make()

    return asyncio.run(main())


def kinds(trace: Trace) -> list[str]:
    return event_kinds(trace)


def mark_texts(trace: Trace) -> list[str]:
    return [e.detail["text"] for e in trace.events() if e.code == Code.MARK]


def pid_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def wait_until(condition: Callable[[], bool], within_s: float = 20.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


async def started(target: Target, events: int, **options: object) -> Run:
    """A started run, once at least `events` events have arrived."""
    run = Run(target, **options)  # type: ignore[arg-type]
    await run.start()
    while len(run.trace) < events:
        assert run.process is not None and run.process.returncode is None, "child ended early"
        await asyncio.sleep(0.01)
    return run


# -- runs that end well -------------------------------------------------------------------


def test_a_run_streams_its_events_and_output() -> None:
    result = record_sync(toy("main"), timeout=60)

    assert (result.status, result.exit_code, result.error) == ("ok", 0, None)
    assert kinds(result.trace) == [
        "spawn", "running", "output", "ready", "running", "ready", "running", "ready",
        "running", "end",
    ]
    assert result.trace.event(2).detail == {"text": "hello from the toy"}
    assert result.stdout == "hello from the toy\n"
    assert result.dropped == 0
    assert result.trace.meta["dropped"] == 0
    assert result.trace.meta["status"] == "ok"
    assert result.trace.meta["events"] == 10


def test_printed_lines_are_output_events_on_the_printing_lane() -> None:
    lines: list[str] = []

    result = run_async(lambda: _run_with_stdout(toy("prints"), lines.append))

    outputs = [
        (result.trace.lane_name(e.lane), e.detail["text"])
        for e in result.trace.events()
        if e.code == Code.OUTPUT
    ]
    assert outputs == [
        ("toy", "first line from toy"),
        ("other", "second line from other"),
        ("other", "third line from other"),
        ("toy", "last line from toy"),
        ("toy", "no newline at the end"),
    ]
    expected = [
        "first line from toy\n", "second line from other\n", "third line from other\n",
        "last line from toy\n", "no newline at the end",
    ]
    assert lines == expected
    assert result.stdout == "".join(expected)


async def _run_with_stdout(target: Target, on_stdout: Callable[[str], None]) -> RunResult:
    run = Run(target, on_stdout=on_stdout)
    await run.start()
    return await run.wait(60)


def test_a_line_longer_than_a_stream_reader_limit_is_kept_whole() -> None:
    result = record_sync(toy("long_line"), timeout=60)

    assert result.ok, result.error
    assert result.stdout == "x" * 300_000 + "\nafter the long line\n"


def test_a_run_fills_the_trace_it_is_given_even_an_empty_one() -> None:
    trace = Trace()

    result = run_async(lambda: _run_into(trace))

    assert result.trace is trace
    assert len(trace) == 10


async def _run_into(trace: Trace) -> RunResult:
    from loopscope.tracer.runner import run_target

    return await run_target(toy("main"), timeout=60, trace=trace)


# -- back-pressure ----------------------------------------------------------------------


def test_a_slow_reader_makes_the_child_wait_and_loses_nothing() -> None:
    async def scenario() -> tuple[int, int | None, RunResult]:
        run = Run(toy("flood"))
        await run.start()
        assert run.event_transport is not None
        run.event_transport.pause_reading()
        await asyncio.sleep(1.5)
        received_while_paused = len(run.trace)
        assert run.process is not None
        returncode_while_paused = run.process.returncode
        run.event_transport.resume_reading()
        return received_while_paused, returncode_while_paused, await run.wait(120)

    received_while_paused, returncode_while_paused, result = run_async(scenario)

    # The flood is megabytes; a pipe holds at most one: the child had to wait for us.
    assert received_while_paused < toy_programs.FLOOD_EVENTS
    assert returncode_while_paused is None
    assert result.ok, result.error
    trace = result.trace
    assert len(trace) == toy_programs.FLOOD_EVENTS + 3
    marks = [trace.other[seq] for seq in range(2, len(trace) - 1)]
    assert marks == list(range(toy_programs.FLOOD_EVENTS))
    assert kinds(trace)[-1] == "end"


# -- stopping -----------------------------------------------------------------------------


def test_stop_ends_a_child_that_cooperates_and_keeps_its_events() -> None:
    async def scenario() -> tuple[RunResult, float]:
        run = await started(toy("sleeps"), len(PROLOGUE))
        began = time.monotonic()
        await run.stop()
        took = time.monotonic() - began
        return await run.wait(), took

    result, took = run_async(scenario)

    assert (result.status, result.exit_code, result.error) == ("stopped", 0, None)
    assert kinds(result.trace) == PROLOGUE
    assert mark_texts(result.trace) == [f"mark {i}" for i in range(MARKS)]
    assert took < 60  # the program itself would sleep for 600 s


@pytest.mark.parametrize("behaviour", ["ignores_stop", "swallows_stop"])
def test_stop_kills_a_child_that_does_not_stop_within_a_second(behaviour: str) -> None:
    async def scenario() -> tuple[RunResult, float]:
        run = await started(toy(behaviour), len(PROLOGUE))
        began = time.monotonic()
        await run.stop()
        took = time.monotonic() - began
        return await run.wait(), took

    result, took = run_async(scenario)

    assert result.status == "stopped"
    assert result.exit_code == -signal.SIGKILL
    assert kinds(result.trace)[: len(PROLOGUE)] == PROLOGUE
    # The grace period is half a second; the margin is for a loaded machine, not the design.
    assert took < 10


def test_a_stop_landing_while_the_child_records_flat_out_ends_it_cleanly() -> None:
    async def scenario() -> RunResult:
        # A generous grace, so that a loaded machine does not turn this into a kill.
        run = await started(toy("records_until_stopped"), 100_000, stop_grace_s=20.0)
        await run.stop()
        return await run.wait()

    result = run_async(scenario)

    assert (result.status, result.exit_code) == ("stopped", 0)
    assert result.trace.meta["events"] == len(result.trace)
    assert set(kinds(result.trace)[len(PROLOGUE) :]) == {"mark"}


def test_a_timeout_stops_a_hanging_child_and_keeps_its_events() -> None:
    result = record_sync(toy("sleeps"), timeout=1.0)

    assert result.status == "timeout"
    assert result.error is not None and "within 1 s" in result.error
    assert kinds(result.trace) == PROLOGUE


def test_a_sigterm_from_outside_stops_the_run_like_a_stop_command() -> None:
    async def scenario() -> RunResult:
        run = await started(toy("sleeps"), len(PROLOGUE))
        assert run.process is not None
        os.kill(run.process.pid, signal.SIGTERM)
        return await run.wait(60)

    result = run_async(scenario)

    assert (result.status, result.exit_code) == ("stopped", 0)
    assert result.error is not None and "SIGTERM from outside" in result.error  # not a success
    assert kinds(result.trace) == PROLOGUE


def test_cancelling_the_wait_kills_the_child() -> None:
    async def scenario() -> int:
        run = await started(toy("sleeps"), len(PROLOGUE))
        assert run.process is not None
        waiting = asyncio.ensure_future(run.wait())
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await run.process.wait()
        return run.process.returncode or 0

    assert run_async(scenario) == -signal.SIGKILL


def test_closing_the_control_pipe_makes_the_child_exit() -> None:
    async def scenario() -> RunResult:
        run = await started(toy("sleeps"), len(PROLOGUE))
        run.close_control()
        return await run.wait(60)

    result = run_async(scenario)

    assert result.exit_code == ORPHANED_EXIT
    assert result.status == "crashed"
    assert kinds(result.trace) == PROLOGUE


def test_a_child_whose_parent_dies_exits_too(tmp_path: Path) -> None:
    parent_script = tmp_path / "parent.py"
    parent_script.write_text(textwrap.dedent(f"""
        import asyncio, os, sys
        sys.path.insert(0, {str(REPO)!r})
        os.environ["PYTHONPATH"] = {str(REPO)!r}  # the toy model, for the child
        from tests.tracer.test_runner import toy
        from loopscope.tracer.runner import Run

        async def main():
            run = Run(toy("sleeps"))
            await run.start()
            print(run.process.pid, flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
    """))
    parent = subprocess.Popen(
        [sys.executable, str(parent_script)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not pid_gone(child_pid)
    finally:
        parent.kill()
        parent.wait()

    assert wait_until(lambda: pid_gone(child_pid)), "the orphaned child is still running"


# -- failures ---------------------------------------------------------------------------

FAILURES = {
    # behaviour: (status, exit code, what the error line must say)
    "exits_abruptly": ("crashed", 7, ["exited with status 7", "about to leave without a word"]),
    "segfaults": ("crashed", -signal.SIGSEGV, ["SIGSEGV", "Fatal Python error: Segmentation"]),
    "raises": ("error", 1, ["ValueError: the toy failed on two lines", "exit status 1"]),
    "exits_nonzero": ("error", 5, ["exited with status 5"]),
    "writes_garbage": ("protocol-error", -signal.SIGKILL, ["garbage on the event pipe"]),
    "truncates_a_frame": ("protocol-error", 0, ["ended inside a frame"]),
    "skips_a_sequence_number": ("protocol-error", -signal.SIGKILL, ["expected sequence 52"]),
}


@pytest.mark.parametrize("behaviour", sorted(FAILURES))
def test_a_failing_child_is_one_error_line_and_its_events_are_kept(behaviour: str) -> None:
    status, exit_code, said = FAILURES[behaviour]

    result = record_sync(toy(behaviour), timeout=60)

    assert (result.status, result.exit_code) == (status, exit_code), result.error
    assert result.error is not None and "\n" not in result.error
    for words in said:
        assert words in result.error
    assert kinds(result.trace)[: len(PROLOGUE)] == PROLOGUE
    assert result.trace.meta["status"] == status
    assert result.trace.meta["error"] == result.error
    assert result.trace.meta["exit_code"] == exit_code


def test_a_program_that_raises_reports_its_traceback() -> None:
    result = record_sync(toy("raises"), timeout=60)

    assert result.traceback is not None
    assert 'raise ValueError("the toy failed\\non two lines")' in result.traceback
    assert "ValueError: the toy failed" in result.stderr


def test_a_child_that_cannot_start_raises_and_leaks_nothing() -> None:
    before = _open_fds()

    with pytest.raises(OSError):
        run_async(lambda: Run(toy("main"), python="/nonexistent/python").start())

    assert _open_fds() == before


# -- no leftovers ---------------------------------------------------------------------------


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_runs_leave_no_process_and_no_open_fd_behind() -> None:
    record_sync(toy("main"), timeout=60)  # warm up: imports and lazily created state
    before = _open_fds()
    pids = []
    for behaviour, timeout in [
        ("main", 60.0), ("segfaults", 60.0), ("writes_garbage", 60.0), ("sleeps", 0.5),
        ("ignores_stop", 0.5),
    ]:
        result = record_sync(toy(behaviour), timeout=timeout)
        pids.append(result.trace.meta["pid"])

    assert _open_fds() == before
    assert all(pid_gone(pid) for pid in pids)


def test_what_the_program_started_does_not_outlive_the_run() -> None:
    result = record_sync(toy("starts_a_server_child"), timeout=60)

    assert result.ok, result.error
    grandchild = int(result.stdout.split()[-1])
    assert wait_until(lambda: pid_gone(grandchild))


# -- the control channel and the loop ---------------------------------------------------------


def test_commands_are_single_lines_and_undeliverable_after_the_run() -> None:
    async def scenario() -> tuple[bool, bool]:
        run = await started(toy("sleeps"), len(PROLOGUE))
        with pytest.raises(ValueError):
            run.send_command("stop\nstop")
        during = run.send_command("no-such-command")  # ignored by the child
        await run.stop()
        await run.wait()
        return during, run.send_command("stop")

    during, after = run_async(scenario)

    assert (during, after) == (True, False)


def test_the_runner_works_on_another_event_loop() -> None:
    def poll_loop() -> asyncio.AbstractEventLoop:
        return asyncio.SelectorEventLoop(selectors.PollSelector())

    with asyncio.Runner(loop_factory=poll_loop) as runner:
        result = runner.run(_run_into(Trace()))

    assert result.ok, result.error
    assert len(result.trace) == 10


@pytest.mark.gui
def test_the_runner_works_on_the_qasync_loop() -> None:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    qasync = pytest.importorskip("qasync")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])

    async def scenario() -> tuple[RunResult, RunResult]:
        run = await started(toy("sleeps"), len(PROLOGUE))
        await run.stop()
        return await _run_into(Trace()), await run.wait()

    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        finished, stopped = runner.run(scenario())

    assert finished.ok, finished.error
    assert kinds(finished.trace)[-1] == "end"
    assert stopped.status == "stopped"
    assert kinds(stopped.trace) == PROLOGUE


# -- a program that closes descriptors ---------------------------------------------------------

_CLOSES = """
import asyncio, os, resource

def close_all():  # what a daemon does first: every descriptor but stdio
    for fd in range({first}, {last}):
        try:
            os.close(fd)
        except OSError:
            pass

async def tick():
    await asyncio.sleep(0.001)

async def main(closing_inside):
    await asyncio.gather(*(tick() for _ in range(50)))
    await asyncio.sleep(0.2)  # the flush timer sends those events on before the closing
    if closing_inside:
        close_all()
    print("closed", flush=True)
    for _ in range(20):
        await asyncio.gather(*(tick() for _ in range(200)))
    print("went on", flush=True)

if not {inside}:
    close_all()
asyncio.run(main({inside}))
"""


def _closing(tmp_path: Path, first: str, last: str, inside: bool = False) -> RunResult:
    from loopscope.tracer.target import resolve_target

    program = tmp_path / "closes.py"
    program.write_text(_CLOSES.format(first=first, last=last, inside=inside))
    return record_sync(resolve_target(str(program)), timeout=60)


def test_a_program_that_closes_the_usual_range_of_descriptors_is_traced_whole(
        tmp_path: Path) -> None:
    # "everything but stdio" loops stop short of where the child keeps its pipes
    result = _closing(tmp_path, "3", "3")  # nothing closed: the baseline
    closed = _closing(tmp_path, "3", "256")
    assert closed.ok, closed.error
    assert closed.stdout.splitlines() == ["closed", "went on"]
    assert len(closed.trace.lanes) == len(result.trace.lanes)


def test_a_program_that_closes_the_event_pipe_goes_on_and_the_trace_ends_there(
        tmp_path: Path) -> None:
    result = _closing(tmp_path, "1000", "resource.getrlimit(resource.RLIMIT_NOFILE)[0]",
                      inside=True)
    assert result.stdout.splitlines() == ["closed", "went on"]  # as untraced
    assert result.status == "crashed"
    assert result.error == ("the program closed Loopscope's event pipe mid-run: the trace ends "
                            "there, though the program went on (exit status 0)")
    # what came before the closing is kept: the 50 ticks' lanes at least
    assert len(result.trace.lanes) >= 52
