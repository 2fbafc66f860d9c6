"""`loopscope step`, run for real: its lines are `loopscope narrate`'s, one per Enter."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import about_the_program

ROOT = Path(__file__).resolve().parents[2]
TIME = re.compile(r"\d+\.\d+ s")
PORT = re.compile(r":\d{2,5}\b")


def loopscope(*args: str | Path, stdin: str = "", cwd: Path,
              timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "loopscope", *map(str, args)], input=stdin,
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def sentences(stdout: str) -> list[str]:
    """The narration lines without what differs from run to run: times and ports."""
    return [PORT.sub(":PORT", TIME.sub("T s", line.split("  ", 2)[-1]))
            for line in stdout.splitlines()]


_narrated: dict[str, list[str]] = {}


def narrated(scenario: str, cwd: Path) -> list[str]:
    if scenario not in _narrated:
        done = loopscope("narrate", scenario, cwd=cwd)
        assert done.returncode == 0, done.stderr
        _narrated[scenario] = sentences(done.stdout)
    return _narrated[scenario]


@pytest.mark.parametrize("scenario", ["producer-consumer", "asyncio-hello"])
def test_n_enters_then_q_print_the_first_steps_of_narrate(scenario: str, tmp_path: Path) -> None:
    steps = 9
    done = loopscope("step", scenario, stdin="\n" * (steps - 1) + "q\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert sentences(done.stdout) == narrated(scenario, tmp_path)[:steps]


@pytest.mark.parametrize("keys", ["\n\nc\n", "", "x\n\nc\n"])
def test_c_or_the_end_of_input_continue_to_the_end(keys: str, tmp_path: Path) -> None:
    done = loopscope("step", "producer-consumer", stdin=keys, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sentences(done.stdout) == narrated("producer-consumer", tmp_path)
    # A key it does not know gets the one-line hint, and the same step waits for a real one.
    assert done.stderr == ("loopscope: Enter: next step, c: continue to the end, q: stop and "
                           "quit\n" if keys.startswith("x") else "")


@pytest.mark.parametrize("scenario", ["gevent-switching", "select-server"])
def test_gevent_and_select_step_and_quit_cleanly(scenario: str, tmp_path: Path) -> None:
    steps = 15
    done = loopscope("step", scenario, stdin="\n" * (steps - 1) + "q\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == steps
    assert all(re.match(r"^ +\d+\.\d{3} s  \S", line) for line in lines), lines
    if scenario == "gevent-switching":
        assert sentences(done.stdout) == narrated(scenario, tmp_path)[:steps]
        assert "foo: awake again" not in done.stdout  # q stopped it long before


def test_stepping_a_saved_trace_uses_the_same_keys(tmp_path: Path) -> None:
    saved = tmp_path / "run.loopscope"
    assert loopscope("trace", "producer-consumer", "-o", saved, cwd=tmp_path).returncode == 0
    whole = loopscope("narrate", saved, cwd=tmp_path).stdout.splitlines()
    done = loopscope("step", saved, stdin="\n\nq\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == whole[:3]


def test_a_bad_target_is_one_error_line(tmp_path: Path) -> None:
    done = loopscope("step", "no-such-scenario", cwd=tmp_path)
    assert done.returncode == 125  # Loopscope's own failure, told apart from a program's
    assert done.stderr.splitlines() == ["loopscope: error: " + done.stderr.split(
        "loopscope: error: ", 1)[1].strip()]
    assert "unknown scenario" in done.stderr and "Traceback" not in done.stderr


def test_a_script_that_raises_while_stepped_fails_like_narrate(tmp_path: Path) -> None:
    script = tmp_path / "raises.py"
    script.write_text("def numbers():\n    yield 1\n\nprint(next(numbers()))\n"
                      "raise ValueError('boom')\n", encoding="utf-8")
    done = loopscope("step", script, stdin="\n" * 3, cwd=tmp_path)
    assert done.returncode == 1
    ours = about_the_program([line for line in done.stderr.splitlines()
                              if line.startswith("loopscope:")])
    assert len(ours) == 1 and "ValueError: boom" in ours[0]
    assert done.stderr.count("Traceback") == 1  # the program's own, nothing of ours
    assert "prints '1'" in done.stdout


def test_ctrl_c_at_the_prompt_stops_at_once_without_waiting_for_a_key(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    # stdin stays open and silent, like a terminal where nobody has pressed a key yet
    cli = subprocess.Popen([sys.executable, "-m", "loopscope", "step", "asyncio-hello"],
                           cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert cli.stdout is not None and cli.stderr is not None
        first = cli.stdout.readline()
        assert "asyncio loop starts" in first
        cli.send_signal(signal.SIGINT)
        returncode = cli.wait(timeout=30)
        stderr = cli.stderr.read()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert returncode == 130, stderr
    assert stderr == "loopscope: error: interrupted: the run was stopped\n"
