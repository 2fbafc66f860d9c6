"""Signals never lose a run: SIGTERM or SIGHUP to `loopscope` stops the program, saves what
was recorded and exits with 128 + the signal; nothing the program started outlives the run,
not even a process in a session of its own, and not even when `loopscope` itself is killed
outright (SIGKILL: the child's watcher ends them); a program ended by a signal from outside is
reported as such. Real processes throughout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loopscope.tracer.native import load_native
from loopscope.tracer.runner import record_sync
from loopscope.tracer.target import resolve_target
from tests.cli.test_cli import _env, _script
from tests.conftest import about_the_program
from tests.tracer.test_runner import pid_gone, wait_until

# Starts a helper in the program's process group, one in a group of its own (as a shell
# pipeline would) and one in a session of its own (as a daemon does), writes their pids,
# then waits forever in asyncio.
FAMILY_SCRIPT = """
import asyncio, subprocess, sys
from pathlib import Path

sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
plain = subprocess.Popen(sleeper)
grouped = subprocess.Popen(sleeper, process_group=0)
detached = subprocess.Popen(sleeper, start_new_session=True)
# a detached helper whose own child stays behind when it is killed
nested = subprocess.Popen([sys.executable, "-c", (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
    "print(child.pid, flush=True); time.sleep(600)")], start_new_session=True,
    stdout=subprocess.PIPE, text=True)
grandchild = int(nested.stdout.readline())
Path(sys.argv[1]).write_text(f"{plain.pid} {grouped.pid} {detached.pid} {nested.pid} {grandchild}")

async def main():
    while True:
        await asyncio.sleep(0.05)

asyncio.run(main())
"""


def _family(tmp_path: Path) -> tuple[Path, Path]:
    return _script(tmp_path, "family.py", FAMILY_SCRIPT), tmp_path / "pids.txt"


def _wait_for_pids(pids_file: Path, process: subprocess.Popen[str]) -> list[int]:
    assert wait_until(lambda: (pids_file.exists() and len(pids_file.read_text().split()) == 5)
                      or process.poll() is not None, 60), "the program did not start"
    assert process.poll() is None, process.communicate()
    return [int(pid) for pid in pids_file.read_text().split()]


@pytest.mark.slow
@pytest.mark.parametrize("signo", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_loopscope_saves_the_run_and_ends_the_whole_family(
    tmp_path: Path, signo: signal.Signals
) -> None:
    script, pids_file = _family(tmp_path)
    output = tmp_path / "run.loopscope"
    process = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "trace", str(script), "-o", str(output),
         "--", str(pids_file)],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        pids = _wait_for_pids(pids_file, process)
        time.sleep(0.3)  # some loop iterations recorded
        process.send_signal(signo)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signo, stderr
    ours = about_the_program([line for line in stderr.splitlines()
                              if line.startswith("loopscope:")])
    assert len(ours) == 1 and f"{signo.name} received" in ours[0], stderr
    assert str(output) in ours[0]
    assert len(load_native(output)) > 0
    for pid in pids:
        assert wait_until(lambda pid=pid: pid_gone(pid), 10), f"process {pid} outlived the run"


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the watcher needs a pidfd")
def test_sigkill_to_loopscope_still_ends_the_program_and_all_it_started(tmp_path: Path) -> None:
    script, pids_file = _family(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "trace", str(script),
         "-o", str(tmp_path / "run.loopscope"), "--", str(pids_file)],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    family: list[int] = []
    try:
        helpers = _wait_for_pids(pids_file, process)
        program = _parent_of(helpers[0])  # the child running the program
        assert program not in (process.pid, os.getpid())
        family = [program, *helpers]
        process.kill()
        process.wait(10)
        for pid in family:
            assert wait_until(lambda pid=pid: pid_gone(pid), 3), (
                f"process {pid} outlived a killed loopscope")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        for pid in family:  # a failed run must not leave its sleepers behind
            if not pid_gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_the_whole_family_is_ended_after_a_normal_run_too(tmp_path: Path) -> None:
    script, pids_file = _family(tmp_path)
    result = record_sync(resolve_target(str(script), (str(pids_file),)), timeout=3)
    assert result.status == "timeout"
    pids = [int(pid) for pid in pids_file.read_text().split()]
    for pid in pids:
        # gone, and reaped too: this process adopted them, so no zombie is left behind either
        assert wait_until(lambda pid=pid: not Path(f"/proc/{pid}").exists(), 10), (
            f"process {pid} outlived the run")


@pytest.mark.slow
def test_a_program_stopped_by_a_signal_from_outside_is_not_a_success(tmp_path: Path) -> None:
    script = _script(tmp_path, "pid.py", """
        import asyncio, os, sys
        from pathlib import Path
        Path(sys.argv[1]).write_text(str(os.getpid()))

        async def main():
            while True:
                await asyncio.sleep(0.05)

        asyncio.run(main())
    """)
    pid_file = tmp_path / "pid.txt"
    output = tmp_path / "run.loopscope"
    process = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "trace", str(script), "-o", str(output),
         "--", str(pid_file)],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", 60)
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "SIGTERM from outside" in stderr
    assert len(load_native(output)) > 0


def test_a_signal_outside_a_run_ends_loopscope_in_one_line(tmp_path: Path) -> None:
    """A saved trace narrated into a pipe nobody reads: loopscope blocks writing, and a
    SIGTERM then ends it with one line and 128 + 15 (a save in progress would remove its
    temporary on the same way out)."""
    from loopscope.tracer.events import Code, FakeClock, LaneKind
    from loopscope.tracer.native import save_native
    from loopscope.tracer.recorder import Recorder
    from loopscope.tracer.trace import Trace

    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1000))
    lanes = [recorder.spawn(f"worker-{n}", LaneKind.TASK) for n in range(2)]
    for _ in range(3000):
        for lane in lanes:
            recorder.state(lane, Code.RUNNING)
    recorder.close()
    saved = tmp_path / "big.loopscope"
    save_native(trace, saved)
    process = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "narrate", str(saved)], cwd=tmp_path,
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline()  # narrating; unread, the pipe fills and it waits
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 128 + signal.SIGTERM
        assert process.stderr is not None
        stderr = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
        if process.stdout is not None:
            process.stdout.close()
    ours = about_the_program([line for line in stderr.splitlines()
                              if line.startswith("loopscope:")])
    assert ours == ["loopscope: error: SIGTERM received: stopped"], stderr
