"""A traced script keeps its world through `loopscope trace`: stdin (piped or a terminal), its
exit status, its stderr streamed as it comes, tracebacks from its own code, stops without a
trace of Loopscope's insides, and a word when the recording came out empty."""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loopscope.tracer.events import Code
from loopscope.tracer.native import load_native
from loopscope.tracer.runner import STDOUT_LIMIT, Run
from loopscope.tracer.target import resolve_target
from tests.conftest import about_the_program

ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ROOT / "tests" / "programs"

READS_STDIN = """
import sys

def lines(stream):
    for line in stream:
        yield line.strip()

for name in lines(sys.stdin):
    print("hello", name)
print("bye", file=sys.stderr)
sys.exit(4)
"""

ASKS = """
def answers():
    yield input("name? ")

for answer in answers():
    print("hello", answer)
"""

GEVENT_FOREVER = """
import gevent

def worker():
    while True:
        gevent.sleep(0.02)

gevent.joinall([gevent.spawn(worker) for _ in range(3)])
"""

CHATTY = """
def lines(count):
    for i in range(count):
        yield f"line {i:06d} " + "x" * 90

for line in lines(12000):
    print(line)
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _script(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def _loopscope(*args: str | Path, cwd: Path, stdin: str = "",
               ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "loopscope", *map(str, args)],
                          cwd=cwd, input=stdin, capture_output=True, text=True, timeout=90,
                          env=_env())


def test_piped_stdin_reaches_the_program_and_its_status_comes_back(tmp_path: Path) -> None:
    script = _script(tmp_path, "greet.py", READS_STDIN)
    out = tmp_path / "greet.loopscope"
    done = _loopscope("trace", script, "-o", out, cwd=tmp_path, stdin="alice\nbob\n")
    assert done.returncode == 4, done.stderr  # the program's own status, passed on
    assert done.stdout.splitlines() == ["hello alice", "hello bob"]
    assert done.stderr.splitlines()[0] == "bye"
    trace = load_native(out)
    lines = [(trace.details[trace.detail[seq]]["text"],
              trace.details[trace.detail[seq]].get("stream", "stdout"))
             for seq in range(len(trace)) if trace.code[seq] == Code.OUTPUT]
    assert lines == [("hello alice", "stdout"), ("hello bob", "stdout"), ("bye", "stderr")]


@pytest.mark.parametrize("io_encoding", ["latin-1", "utf-8", "ascii:backslashreplace"])
def test_the_program_s_output_reaches_the_terminal_in_the_encoding_it_wrote(
        tmp_path: Path, io_encoding: str) -> None:
    # PYTHONIOENCODING is the program's and the command line's alike: what the program wrote
    # in it is read in it and written back out in it, the same bytes as untraced.
    script = _script(tmp_path, "accents.py", """
        import sys
        print("café ü")
        print("to stderr: é", file=sys.stderr)
        """)
    env = {**_env(), "PYTHONIOENCODING": io_encoding}
    untraced = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              timeout=60, env=env)
    traced = subprocess.run([sys.executable, "-m", "loopscope", "trace", str(script), "-o",
                             str(tmp_path / "t.loopscope")], cwd=tmp_path,
                            capture_output=True, timeout=90, env=env)
    assert traced.returncode == 0, traced.stderr
    assert traced.stdout == untraced.stdout
    assert traced.stderr.splitlines()[0] == untraced.stderr.splitlines()[0]


def test_a_terminal_on_stdin_reaches_the_program(tmp_path: Path) -> None:
    script = _script(tmp_path, "ask.py", ASKS)
    primary, secondary = pty.openpty()
    cli = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "trace", str(script), "-o",
         str(tmp_path / "ask.loopscope"), "--model", "generator"],
        cwd=tmp_path, stdin=secondary, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=_env(),
    )
    os.close(secondary)
    try:
        # typed ahead: the terminal holds the line until the program reads it (its prompt
        # goes to stdout, a pipe here)
        os.write(primary, b"alice\n")
        stdout, stderr = cli.communicate(timeout=60)
    finally:
        os.close(primary)
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, stderr
    assert "hello alice" in stdout


TRAMPOLINE = """
import asyncio


async def countdown(n):
    while n:
        n -= 1
    return "done"


try:
    countdown(3).send(None)
except StopIteration as stop:
    print(stop.value)
"""


def test_an_empty_recording_says_why_in_one_note(tmp_path: Path) -> None:
    # guessed as asyncio (it imports asyncio), but it drives its coroutine by hand
    script = _script(tmp_path, "trampoline.py", TRAMPOLINE)
    done = _loopscope("trace", script, "-o", tmp_path / "p.loopscope", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    notes = about_the_program([line for line in done.stderr.splitlines()
                               if line.startswith("loopscope: note: ")])
    assert len(notes) == 1 and "--model generator" in notes[0]
    assert "by hand (countdown)" in notes[0]
    assert about_the_program(load_native(tmp_path / "p.loopscope").meta["notes"]) == [
        notes[0].removeprefix("loopscope: note: ")]


def test_stopping_a_gevent_program_shows_no_traceback(tmp_path: Path) -> None:
    script = _script(tmp_path, "forever.py", GEVENT_FOREVER)
    done = _loopscope("trace", script, "-o", tmp_path / "f.loopscope", "--timeout", "0.5",
                      cwd=tmp_path)
    assert done.returncode == 124, done.stderr  # timeout(1)'s status for a run cut short
    assert "Traceback" not in done.stderr and "StopRequested" not in done.stderr
    ours = about_the_program([line for line in done.stderr.splitlines()
                              if line.startswith("loopscope:")])
    assert len(ours) == 1 and "did not finish within 0.5 s" in ours[0]


def test_the_parent_streams_the_output_without_keeping_it_all(tmp_path: Path) -> None:
    script = _script(tmp_path, "chatty.py", CHATTY)
    received = [0]

    def count(line: str) -> None:
        received[0] += len(line)

    async def run() -> tuple[int, int]:
        traced = Run(resolve_target(str(script)), on_stdout=count)
        await traced.start()
        result = await traced.wait(90)
        assert result.ok, result.error
        return len(result.stdout), sum(1 for seq in range(len(result.trace))
                                       if result.trace.code[seq] == Code.OUTPUT)

    kept, recorded = asyncio.run(run())
    assert received[0] == 12000 * 103  # every line went through, live
    assert recorded == 12000  # and each is on the timeline
    assert kept <= STDOUT_LIMIT  # but only the tail stays in the parent


@pytest.mark.parametrize("name", ["raises_in_generator"])
def test_the_traceback_starts_at_the_programs_code(tmp_path: Path, name: str) -> None:
    done = _loopscope("trace", PROGRAMS / f"{name}.py", "-o", tmp_path / "r.loopscope",
                      cwd=tmp_path)
    assert done.returncode == 1
    frames = [line for line in done.stderr.splitlines() if line.startswith('  File "')]
    assert frames and all(f"{name}.py" in frame for frame in frames), done.stderr
