"""A run's child started before the command line is parsed (tracer.early_child): it runs
nothing until it has its orders, runs them as a launched child would, and leaves nothing
behind when the run is given up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loopscope.tracer.blocking_run import BlockingRun
from loopscope.tracer.descendants import _run_processes
from loopscope.tracer.early_child import (
    encode_orders,
    read_orders,
    start_early_child,
    wants_early_child,
)
from loopscope.tracer.launch import adopt_early_child, launch
from loopscope.tracer.native import load_native
from loopscope.tracer.target import resolve_target

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("arguments", [
    [],
    ["--events-fd", "4", "--script", "/tmp/a b.py", "--", "x\ny", "", "é", "-", "\n"],
    ["--model", "asyncio"],
])
def test_orders_arrive_whole_and_leave_the_rest_of_the_pipe_alone(
        arguments: list[str]) -> None:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, encode_orders(arguments) + b"stop\n")
        assert read_orders(read_end) == arguments
        assert os.read(read_end, 100) == b"stop\n"  # the control channel's first command
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_closed_pipe_is_no_orders() -> None:
    read_end, write_end = os.pipe()
    os.write(write_end, b"12\nabc")  # cut short: the parent died mid-way
    os.close(write_end)
    try:
        assert read_orders(read_end) is None
    finally:
        os.close(read_end)


@pytest.mark.parametrize(("argv", "wanted"), [
    (["trace", "prog.py", "-o", "t.loopscope"], True),
    (["narrate", "sleepers"], True),
    (["report", "prog.py", "--", "--help"], True),  # the script's --help, not ours
    (["export", "--width", "800", "prog.py", "-o", "t.png"], True),
    (["trace", "old.loopscope", "-o", "t.json"], False),  # a saved trace runs nothing
    (["report", "old.json"], False),
    (["trace", "prog.py", "--help"], False),
    (["step", "prog.py"], False),  # stepping runs on asyncio's runner, paused
    (["list"], False),
    ([], False),
])
def test_only_a_command_line_that_runs_something_starts_a_child_early(
        argv: list[str], wanted: bool) -> None:
    assert wants_early_child(argv) is wanted


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _script(folder: Path, text: str) -> Path:
    path = folder / "prog.py"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_child_given_its_orders_records_the_run_as_a_launched_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script(tmp_path, """
        import asyncio, sys

        async def greet():
            print("hello", sys.argv[1:])
            await asyncio.sleep(0)
            print("waited:", "--await-orders" in sys.orig_argv)

        asyncio.run(greet())
        """)
    target = resolve_target(str(script), ("a b", "c"))
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    results = []
    for launched in (adopt_early_child(start_early_child(), target),
                     launch(target, sys.executable)):
        results.append(BlockingRun(launched, target).wait(timeout=60))
    early, ordinary = results
    assert early.ok and ordinary.ok, (early.stderr, ordinary.stderr)
    assert early.stdout == "hello ['a b', 'c']\nwaited: True\n"
    assert ordinary.stdout == "hello ['a b', 'c']\nwaited: False\n"
    early_events, ordinary_events = (
        [(event.lane, event.kind, event.other, event.detail) for event in result.trace.events()]
        for result in results)
    assert len(early_events) > 4
    assert early_events == [
        (lane, kind, other, {"text": "waited: True"} if detail == {"text": "waited: False"}
         else detail)
        for lane, kind, other, detail in ordinary_events]
    assert ("output" in [kind for _lane, kind, _other, _detail in early_events])


def _watchers(mark: str, child: int) -> list[int]:
    """The run's live processes that are neither the child nor a child of its."""
    found = []
    for pid in _run_processes(mark, child):
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                parent = int(stat.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if pid != child and parent != child:
            found.append(pid)
    return found


def test_a_child_given_up_runs_nothing_and_is_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    early = start_early_child()
    # once it has imported itself it leaves the run's watcher behind, in its group (an
    # orphan: its parent, forked in between, exits at once)
    deadline = time.monotonic() + 60
    while not _watchers(early.mark, early.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _watchers(early.mark, early.pid)
    early.abandon()
    assert early.returncode is not None  # reaped
    with pytest.raises(ProcessLookupError):
        os.kill(early.pid, 0)
    deadline = time.monotonic() + 10  # the watcher, adopted by whoever adopts here, dies too
    while _run_processes(early.mark, early.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _run_processes(early.mark, early.pid) == []


def test_a_child_that_died_waiting_is_given_up_and_reaped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    early = start_early_child()
    os.killpg(early.pid, 9)
    early.wait()
    target = resolve_target(str(_script(tmp_path, "pass\n")))
    with pytest.raises(OSError):  # the command line then launches a child of its own
        adopt_early_child(early, target)
    for fd in (early.events_fd, early.control_fd, early.stdout_fd, early.stderr_fd):
        with pytest.raises(OSError):
            os.fstat(fd)  # closed


def test_a_command_line_mistake_runs_nothing_of_the_program(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    script = _script(tmp_path, f"open({str(ran)!r}, 'w').close()\n")
    for mistake in (["-o", str(tmp_path / "no" / "such" / "t.loopscope")],  # unwritable
                    ["-o", str(tmp_path / "t.loopscope"), "--bogus"],  # usage
                    ["-o", str(tmp_path / "t.loopscope"), "--model", "nope"]):  # bad model
        done = subprocess.run([sys.executable, "-m", "loopscope", "trace", str(script),
                               *mistake], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, env=_env())
        assert done.returncode != 0, done.stderr
        assert "loopscope: error:" in done.stderr
        assert not ran.exists(), mistake
    done = subprocess.run([sys.executable, "-m", "loopscope", "trace", str(script), "-o",
                           str(tmp_path / "t.loopscope")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    assert ran.exists()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
def test_the_events_pipe_holds_a_busy_childs_batch_however_the_child_started(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child blocks while its events pipe is full: the pipe is widened to EVENTS_PIPE_SIZE
    (where the system allows that much), so a batch of events fits without the child waiting
    for the parent to read, for a child started early and for one launched the usual way."""
    import fcntl

    from loopscope.tracer.early_child import EVENTS_PIPE_SIZE

    allowed = int(Path("/proc/sys/fs/pipe-max-size").read_text())
    script = _script(tmp_path, "print('done')\n")
    target = resolve_target(str(script))
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    for launched in (adopt_early_child(start_early_child(), target),
                     launch(target, sys.executable)):
        size = fcntl.fcntl(launched.events_fd, fcntl.F_GETPIPE_SZ)
        result = BlockingRun(launched, target).wait(timeout=60)
        assert result.ok, result.stderr
        assert result.stdout == "done\n"
        if allowed >= EVENTS_PIPE_SIZE or os.geteuid() == 0:
            assert size == EVENTS_PIPE_SIZE
        else:
            assert size >= 1 << 16


def test_the_program_has_no_child_of_ours_to_wait_for(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The watcher is forked from a process of its own, which the child reaps after its
    # set-up rather than at once: it must be gone before the program's first line, or the
    # program's own wait() would find it.
    script = _script(tmp_path, """
        import os
        try:
            print("waited for", os.wait())
        except ChildProcessError:
            print("no children")
        """)
    target = resolve_target(str(script), ())
    monkeypatch.setenv("PYTHONPATH", _env()["PYTHONPATH"])
    for launched in (adopt_early_child(start_early_child(), target),
                     launch(target, sys.executable)):
        result = BlockingRun(launched, target).wait(timeout=60)
        assert result.ok, result.stderr
        assert result.stdout == "no children\n"


# What a program can see of the process it runs in, written as JSON to argv[1]; at its exit,
# the untraced way (a thread still running, then an atexit hook), it writes argv[1] + ".end".
_WORLD = """
import atexit, json, os, sys, threading, time
from pathlib import Path

def stream(s):
    return {key: getattr(s, key, None) for key in (
        "encoding", "errors", "line_buffering", "write_through", "name", "mode")}

out = Path(sys.argv[1])
world = {
    "__name__": __name__, "argv": sys.argv[1:], "path": sys.path[:2],
    "stdin": stream(sys.stdin), "stdout": stream(sys.stdout), "stderr": stream(sys.stderr),
    "session leader": os.getsid(0) == os.getpid(), "group leader": os.getpgrp() == os.getpid(),
    "marked": "LOOPSCOPE_RUN" in os.environ,
    "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd") if int(fd) < 1000),
    "environ": {key: os.environ.get(key) for key in ("PYTHONIOENCODING",)},
    "stdin read": sys.stdin.readline(),
    # what stdin's buffer read ahead of that line is the rest: what a subprocess would get
    "stdin left": len(os.read(0, 1 << 20)),
    "threads": threading.active_count(),
}
out.write_text(json.dumps(world))

def note(word):
    with open(str(out) + ".end", "a") as end:
        end.write(word + " ")

atexit.register(note, "atexit")

def late():
    time.sleep(0.2)
    note("thread")

threading.Thread(target=late).start()
print("ünïcödé")
print("to stderr", file=sys.stderr)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
@pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("io_encoding", [None, "UTF8:backslashreplace", ":replace"])
def test_a_forked_child_runs_the_program_in_the_world_a_spawned_one_gives_it(
        tmp_path: Path, io_encoding: str | None, unbuffered: bool) -> None:
    """`loopscope trace` forks the run's child from the command line where it can
    (tracer.early_child.fork_early_child) instead of spawning a new interpreter: what the
    program sees (its streams, path, session, environment, descriptors) and how it ends (its
    threads and exit hooks) must be what a spawned child gives it."""
    import json

    script = _script(tmp_path, _WORLD)
    seen: dict[str, object] = {}
    outputs: dict[str, str] = {}
    for way in ("fork", "spawn"):  # (each writes its own world file: argv left out)
        env = _env()
        env.pop("PYTHONIOENCODING", None)
        env.pop("PYTHONUNBUFFERED", None)
        if io_encoding is not None:
            env["PYTHONIOENCODING"] = io_encoding
        if unbuffered:
            env["PYTHONUNBUFFERED"] = "1"
        if way == "spawn":
            env["LOOPSCOPE_EARLY_CHILD"] = "spawn"
        world = tmp_path / f"{way}.json"
        done = subprocess.run([sys.executable, "-m", "loopscope", "trace", str(script), "-o",
                               str(tmp_path / f"{way}.loopscope"), "--", str(world)],
                              cwd=tmp_path, input="a line\n" + "x" * 20000,
                              capture_output=True, text=True,
                              encoding="utf-8", errors="replace", timeout=60, env=env)
        assert done.returncode == 0, done.stderr
        seen[way] = {**json.loads(world.read_text(encoding="utf-8")), "argv": None}
        outputs[way] = done.stdout
        assert "to stderr" in done.stderr
        assert Path(f"{world}.end").read_text() == "thread atexit "
    assert seen["fork"] == seen["spawn"]
    assert outputs["fork"] == outputs["spawn"]
    fork = seen["fork"]
    assert isinstance(fork, dict)
    assert fork["path"] == [str(tmp_path), str(tmp_path)]
    assert fork["session leader"] and fork["marked"]
    assert fork["fds"] == [0, 1, 2, 3]  # the world file; none of the command line's pipes
    assert fork["stdin read"] == "a line\n"
    assert fork["stdout"]["write_through"] == unbuffered
    assert fork["stdout"]["encoding"] == "utf-8"  # as the interpreter names it


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreapers are Linux's")
@pytest.mark.parametrize("way", ["fork", "spawn"])
def test_a_daemon_forked_without_exec_ends_with_the_run(tmp_path: Path, way: str) -> None:
    """A daemon's double fork, never exec'ing, carries the environment its process was
    exec'd with: a forked child's is the command line's, without the run's mark, and the
    daemon is in a session of its own. The command line, which runs this one run only, ends
    every orphan it adopted all the same."""
    from tests.tracer.test_runner import pid_gone, wait_until

    pid_file = tmp_path / "daemon.pid"
    script = _script(tmp_path, """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                with open(sys.argv[1] + ".part", "w") as f:
                    f.write(str(os.getpid()))
                os.rename(sys.argv[1] + ".part", sys.argv[1])
                time.sleep(600)
            os._exit(0)
        os.wait()
        while not os.path.exists(sys.argv[1]):
            time.sleep(0.01)
        """)
    env = _env()
    if way == "spawn":
        env["LOOPSCOPE_EARLY_CHILD"] = "spawn"
    done = subprocess.run([sys.executable, "-m", "loopscope", "trace", str(script), "-o",
                           str(tmp_path / "t.loopscope"), "--", str(pid_file)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    daemon = int(pid_file.read_text())
    try:
        assert wait_until(lambda: pid_gone(daemon), 10), "the daemon outlived the run"
    finally:
        if not pid_gone(daemon):
            os.kill(daemon, 9)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
@pytest.mark.parametrize("way", ["fork", "spawn"])
@pytest.mark.parametrize("closed", ["<&-", "<&- >&-", "2>&-", "<&- >&- 2>&-"])
def test_a_command_line_with_its_stdio_closed_records_the_whole_run(
        tmp_path: Path, way: str, closed: str) -> None:
    # A pipe end, the watcher's pidfd or the saved file took a closed descriptor's number,
    # and the child's stdio or the watcher's /dev/null went over it: the watcher saw its
    # parent gone and killed the run (stdin closed), or the command failed on its "saved".
    script = _script(tmp_path, """
        import asyncio, sys
        async def main():
            await asyncio.sleep(0.01)
            with open("seen.txt", "w") as out:
                out.write(f"stdin {sys.stdin is None} stdout {sys.stdout is None}")
        asyncio.run(main())
        """)
    env = _env()
    if way == "spawn":
        env["LOOPSCOPE_EARLY_CHILD"] = "spawn"
    done = subprocess.run(["sh", "-c", f'exec "$@" {closed}', "sh", sys.executable, "-m",
                           "loopscope", "trace", str(script), "-o", str(tmp_path / "t.loopscope")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    # the program saw closed what was closed: no stdin, and no stdout where the command
    # had none (a forked child makes none; a spawned one is given its pipe either way)
    seen = (tmp_path / "seen.txt").read_text(encoding="utf-8")
    assert seen.startswith("stdin True" if "<&-" in closed else "stdin False")
    trace = load_native(tmp_path / "t.loopscope")
    assert trace.meta["status"] == "ok"
    assert [info.name for info in trace.lanes][:2] == ["asyncio loop", "main (Task-1)"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
@pytest.mark.parametrize("way", ["fork", "spawn"])
def test_a_closed_stdout_leaves_the_program_s_output_nowhere_and_the_run_whole(
        tmp_path: Path, way: str) -> None:
    # `loopscope trace prog.py >&-`: the child's stdout is its pipe all the same (a forked
    # child makes the stream the interpreter made none of), and the command line passes the
    # program's lines on to nowhere, as print() does with no stdout.
    script = _script(tmp_path, """
        import asyncio, sys
        async def main():
            print("to stdout")
            print("to stderr", file=sys.stderr)
        asyncio.run(main())
        """)
    env = _env()
    if way == "spawn":
        env["LOOPSCOPE_EARLY_CHILD"] = "spawn"
    done = subprocess.run(["sh", "-c", 'exec "$@" >&-', "sh", sys.executable, "-m", "loopscope",
                           "trace", str(script), "-o", str(tmp_path / "t.loopscope")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[0] == "to stderr"
    assert "saved" in done.stderr and (tmp_path / "t.loopscope").exists()


def test_interpreter_options_given_to_the_command_make_it_spawn_its_child(
        tmp_path: Path) -> None:
    # `python -O -m loopscope trace prog.py`: a forked child would run the program with the
    # command's -O (no asserts); it is spawned instead, and the program runs as untraced.
    from loopscope.tracer.early_child import _interpreter_options

    assert not _interpreter_options(["python", "-m", "loopscope", "trace", "p.py"])
    assert not _interpreter_options(["python", "-mloopscope", "trace", "p.py"])
    assert not _interpreter_options(["python", "/venv/bin/loopscope", "trace", "-O"])
    assert not _interpreter_options(["python", "-c", "code", "-O"])
    assert _interpreter_options(["python", "-O", "-m", "loopscope", "trace", "p.py"])
    assert _interpreter_options(["python", "-X", "dev", "-m", "loopscope"])
    script = _script(tmp_path, "print(__debug__)\n")
    done = subprocess.run([sys.executable, "-O", "-m", "loopscope", "trace", str(script), "-o",
                           str(tmp_path / "t.loopscope")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True\n"


def test_the_program_s_exec_d_code_is_the_program_s_under_a_forked_child(
        tmp_path: Path) -> None:
    # A command line run with `python -c` (as the benchmarks run it) leaves a "<string>"
    # frame under the forked program's; "<string>" is also the file of the program's own
    # exec'd code, which must stay the program's (tracer.models._program_files).
    script = _script(tmp_path, """
        from loopscope.tracer.early_child import command_line_files
        from loopscope.tracer.models._program_files import ProgramFiles
        print(sorted(name for name in command_line_files() if name.startswith("<")),
              ProgramFiles()("<string>"))
        """)
    done = _trace_from_a_c_command_line(tmp_path, script)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[] True\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child is forked on Linux")
def test_a_command_line_with_another_thread_spawns_its_child(tmp_path: Path) -> None:
    # A fork copies only the thread that forks; a lock another thread held would stay held in
    # the child. faulthandler's watchdog is a thread `threading` does not know of: the
    # command line counts the process's threads as the system does, and spawns.
    script = _script(tmp_path, "import sys\nprint(sys.orig_argv[1:3])\n")
    done = _trace_from_a_c_command_line(
        tmp_path, script, before="import faulthandler; faulthandler.dump_traceback_later(600)",
        after="faulthandler.cancel_dump_traceback_later()")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['-m', 'loopscope.tracer.child']\n"


def _trace_from_a_c_command_line(tmp_path: Path, script: Path, before: str = "pass",
                                 after: str = "pass") -> subprocess.CompletedProcess[str]:
    """`loopscope trace SCRIPT` as the benchmarks run it, from `python -c`: `before` runs
    before the run's child is started, `after` once it is."""
    parent = (f"import sys; {before}; from loopscope.ui.start import early_child_for; "
              "from loopscope.ui.cli import finish, main; "
              f"early = early_child_for(sys.argv[1:]); {after}; "
              "finish(main(sys.argv[1:], early))")
    return subprocess.run([sys.executable, "-c", parent, "trace", str(script), "-o",
                           str(tmp_path / "t.loopscope")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=_env())
