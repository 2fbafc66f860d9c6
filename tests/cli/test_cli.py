"""The `loopscope` command line, run for real as a subprocess.

Every bad input must end in exactly one "loopscope: error: ..." line on stderr and a non-zero
exit, with no traceback other than the traced program's own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loopscope.scenarios import catalog
from loopscope.tracer.events import STATE_NAMES, Code
from loopscope.tracer.narrate import narrate
from loopscope.tracer.native import load_native
from tests.conftest import about_the_program

ROOT = Path(__file__).resolve().parents[2]

GENERATOR_SCRIPT = """
import sys

def shout():
    reply = None
    while True:
        heard = yield reply
        reply = heard.upper()

gen = shout()
next(gen)
word = "hi"
print(gen.send(word))
print("args", sys.argv[1:])
"""

RAISES_SCRIPT = """
def numbers():
    yield 1

gen = numbers()
print("got", next(gen))
raise ValueError("boom")
"""

CRASH_SCRIPT = """
import os

def numbers():
    yield 1

gen = numbers()
print("got", next(gen), flush=True)
os._exit(7)
"""

SLOW_SCRIPT = """
import os
import time

def numbers():
    yield 1

gen = numbers()
next(gen)
print("started", os.getpid(), flush=True)
time.sleep(60)
"""

MARKER_SCRIPT = """
from pathlib import Path

def numbers():
    yield 1

Path(__file__).with_name("ran.marker").write_text("it ran")
"""


def _script(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run_cli(*args: str | Path, cwd: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopscope", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, timeout=timeout, env=_env(),
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")  # export draws with Qt, never on a screen
    return env


def assert_one_error(done: subprocess.CompletedProcess[str], *words: str,
                     exit_code: int = 125, program_traceback: bool = False) -> str:
    """The run failed with exactly one error line containing `words`; returns that line."""
    assert done.returncode == exit_code, done.stderr
    ours = about_the_program([line for line in done.stderr.splitlines()
                              if line.startswith("loopscope:")])
    assert len(ours) == 1, done.stderr
    line = ours[0]
    assert line.startswith("loopscope: error: ")
    for word in words:
        assert word in line, line
    if program_traceback:
        assert done.stderr.count("Traceback") == 1
    else:
        assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    return line


# -- list -------------------------------------------------------------------------------------


def test_list_prints_every_scenario_in_aligned_columns(tmp_path: Path) -> None:
    done = run_cli("list", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    scenarios = catalog.all_scenarios()
    assert len(lines) == len(scenarios)
    model_column = {line.index(s.model, len(s.id)) for line, s in zip(lines, scenarios,
                                                                       strict=True)}
    title_column = {line.index(s.title) for line, s in zip(lines, scenarios, strict=True)}
    assert len(model_column) == 1 and len(title_column) == 1
    for line, scenario in zip(lines, scenarios, strict=True):
        assert line.split()[:2] == [scenario.id, scenario.model]
        assert line.endswith(scenario.title)


# -- bad input: one line, non-zero exit --------------------------------------------------------


def test_unknown_scenario(tmp_path: Path) -> None:
    done = run_cli("trace", "no-such-scenario", "-o", tmp_path / "out.json", cwd=tmp_path)
    assert_one_error(done, "unknown scenario 'no-such-scenario'")
    assert not (tmp_path / "out.json").exists()


def test_missing_file(tmp_path: Path) -> None:
    done = run_cli("narrate", tmp_path / "missing.py", cwd=tmp_path)
    assert_one_error(done, "no such file", "missing.py")


def test_a_directory_is_not_a_target(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    done = run_cli("narrate", str(folder) + os.sep, cwd=tmp_path)
    assert_one_error(done, "is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path: Path) -> None:
    script = _script(tmp_path, "secret.py", GENERATOR_SCRIPT)
    script.chmod(0)
    done = run_cli("narrate", script, cwd=tmp_path)
    assert_one_error(done, "cannot read", "permission denied")


def test_a_file_that_is_not_a_trace(tmp_path: Path) -> None:
    notes = tmp_path / "notes.loopscope"
    notes.write_text("just some notes\n", encoding="utf-8")
    assert_one_error(run_cli("open", notes, cwd=tmp_path), "notes.loopscope",
                     "nor a Loopscope trace")
    assert_one_error(run_cli("narrate", notes, cwd=tmp_path), "nor a Loopscope trace")


def test_a_truncated_trace(tmp_path: Path) -> None:
    whole = tmp_path / "whole.loopscope"
    done = run_cli("trace", "producer-consumer", "-o", whole, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    cut = tmp_path / "cut.loopscope"
    cut.write_bytes(whole.read_bytes()[:-10])
    assert_one_error(run_cli("narrate", cut, cwd=tmp_path), "cut.loopscope", "truncated")
    assert_one_error(run_cli("open", cut, cwd=tmp_path), "truncated")
    assert_one_error(run_cli("trace", cut, "-o", tmp_path / "x.json", cwd=tmp_path),
                     "truncated")


def test_an_unwritable_output_is_refused_before_anything_runs(tmp_path: Path) -> None:
    script = _script(tmp_path, "marker.py", MARKER_SCRIPT)
    done = run_cli("trace", script, "-o", tmp_path / "no" / "such" / "out.json", cwd=tmp_path)
    assert_one_error(done, "cannot write", "no such directory")
    done = run_cli("trace", script, "-o", tmp_path, cwd=tmp_path)
    assert_one_error(done, "cannot write", "is a directory")
    assert not (tmp_path / "ran.marker").exists()
    # The same script with a good output path does run: the check above is what stopped it.
    done = run_cli("trace", script, "-o", tmp_path / "ok.loopscope", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ran.marker").exists()


def test_unknown_model(tmp_path: Path) -> None:
    script = _script(tmp_path, "gen.py", GENERATOR_SCRIPT)
    done = run_cli("narrate", script, "--model", "fortran", cwd=tmp_path)
    assert_one_error(done, "unknown model 'fortran'")


def test_a_model_that_would_be_ignored_is_refused(tmp_path: Path) -> None:
    done = run_cli("narrate", "producer-consumer", "--model", "asyncio", cwd=tmp_path)
    assert_one_error(done, "producer-consumer is a generator scenario", "--model is for scripts")
    saved = tmp_path / "saved.loopscope"
    assert run_cli("trace", "producer-consumer", "-o", saved, cwd=tmp_path).returncode == 0
    done = run_cli("narrate", saved, "--model", "generator", cwd=tmp_path)
    assert_one_error(done, "is a saved trace; --model is for scripts")
    done = run_cli("narrate", "producer-consumer", "--model", "generator", cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def test_usage_mistakes_are_one_line_too(tmp_path: Path) -> None:
    done = run_cli("trace", "producer-consumer", cwd=tmp_path)
    assert_one_error(done, "-o/--output", exit_code=2)
    done = run_cli("frobnicate", cwd=tmp_path)
    assert_one_error(done, "invalid choice", exit_code=2)
    done = run_cli("narrate", "producer-consumer", "--timeout", "soon", cwd=tmp_path)
    assert_one_error(done, "'soon' is not a number of seconds", exit_code=2)


def test_the_app_without_a_display_is_one_error_line_not_a_qt_abort(tmp_path: Path) -> None:
    saved = tmp_path / "saved.loopscope"
    assert run_cli("trace", "producer-consumer", "-o", saved, cwd=tmp_path).returncode == 0
    env = {name: value for name, value in _env().items()
           if name not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    for args in ((), ("open", str(saved))):
        done = subprocess.run([sys.executable, "-m", "loopscope", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=90, env=env)
        assert_one_error(done, "no display")


def test_scenarios_take_no_arguments(tmp_path: Path) -> None:
    done = run_cli("narrate", "producer-consumer", "--", "extra", cwd=tmp_path)
    assert_one_error(done, "scenarios take no arguments")


def test_export_refuses_a_file_type_it_cannot_write(tmp_path: Path) -> None:
    done = run_cli("export", "producer-consumer", "-o", tmp_path / "x.gif", cwd=tmp_path)
    assert_one_error(done, "must end in .png, .svg or .pdf")
    done = run_cli("export", "producer-consumer", "-o", tmp_path / "x.png", "--start", "2",
                   "--end", "1", cwd=tmp_path)
    assert_one_error(done, "--end must be later than --start")


# -- runs that end badly ---------------------------------------------------------------------


def test_a_script_that_raises_shows_its_traceback_and_keeps_the_trace(tmp_path: Path) -> None:
    script = _script(tmp_path, "raises.py", RAISES_SCRIPT)
    out = tmp_path / "raised.loopscope"
    done = run_cli("trace", script, "-o", out, cwd=tmp_path)
    # The program's own exit status: 1, as Python gives a script that raised.
    line = assert_one_error(done, "ValueError: boom", str(out), exit_code=1,
                            program_traceback=True)
    assert "saved" in line
    assert 'raise ValueError("boom")' in done.stderr
    assert done.stdout.splitlines() == ["got 1"]
    trace = load_native(out)
    printed = [trace.details[trace.detail[seq]]["text"] for seq in range(len(trace))
               if trace.code[seq] == Code.OUTPUT]
    assert printed == ["got 1"]
    assert trace.meta["status"] == "error"


def test_a_child_that_crashes(tmp_path: Path) -> None:
    script = _script(tmp_path, "crash.py", CRASH_SCRIPT)
    out = tmp_path / "crash.json"
    done = run_cli("trace", script, "-o", out, cwd=tmp_path)
    assert_one_error(done, "7", str(out), exit_code=7)  # its status passed on
    # Events still in the child's buffer die with it; what arrived is saved, with the ending.
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document["otherData"]["status"] == "crashed"
    assert document["otherData"]["exit_code"] == 7


def test_a_child_that_times_out(tmp_path: Path) -> None:
    script = _script(tmp_path, "slow.py", SLOW_SCRIPT)
    out = tmp_path / "slow.loopscope"
    began = time.monotonic()
    done = run_cli("trace", script, "-o", out, "--timeout", "1", cwd=tmp_path)
    assert time.monotonic() - began < 55  # stopped long before the program's own 60 s sleep
    assert_one_error(done, "did not finish within 1 s", str(out), exit_code=124)
    assert len(load_native(out)) > 0


def test_ctrl_c_stops_the_child_cleanly_and_keeps_the_trace(tmp_path: Path) -> None:
    script = _script(tmp_path, "slow.py", SLOW_SCRIPT)
    out = tmp_path / "interrupted.loopscope"
    cli = subprocess.Popen(
        [sys.executable, "-m", "loopscope", "trace", str(script), "-o", str(out)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    try:
        assert cli.stdout is not None
        first = cli.stdout.readline()
        assert first.startswith("started"), first
        child_pid = int(first.split()[1])
        cli.send_signal(signal.SIGINT)
        stdout, stderr = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    done = subprocess.CompletedProcess(cli.args, cli.returncode, first + stdout, stderr)
    assert_one_error(done, "interrupted", str(out), exit_code=130)
    with pytest.raises(ProcessLookupError):
        os.kill(child_pid, 0)
    trace = load_native(out)
    assert trace.meta["status"] == "stopped"
    assert any(trace.code[seq] == Code.OUTPUT for seq in range(len(trace)))


# -- what good runs produce ------------------------------------------------------------------


def test_trace_to_json_satisfies_the_chrome_contract(tmp_path: Path) -> None:
    out = tmp_path / "pc.json"
    done = run_cli("trace", "producer-consumer", "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    events = json.loads(out.read_text(encoding="utf-8"))["traceEvents"]
    threads = {e["tid"]: e["args"]["name"] for e in events
               if e["ph"] == "M" and e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    assert len(threads) >= 2
    assert {e["tid"] for e in slices} == set(threads)
    assert {e["name"] for e in slices} <= set(STATE_NAMES.values())
    starts = {e["id"]: e for e in events if e["ph"] == "s"}
    finishes = {e["id"]: e for e in events if e["ph"] == "f"}
    assert starts and starts.keys() == finishes.keys()
    assert all(starts[i]["tid"] != finishes[i]["tid"] for i in starts)


def test_trace_passes_the_program_output_and_arguments_through(tmp_path: Path) -> None:
    script = _script(tmp_path, "shout.py", GENERATOR_SCRIPT)
    out = tmp_path / "shout.loopscope"
    done = run_cli("trace", script, "-o", out, "--", "--loud", "twice", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["HI", "args ['--loud', 'twice']"]
    assert done.stderr.splitlines() == [
        f"loopscope: saved {len(load_native(out))} events on 2 lanes to {out}"
    ]


def test_narrate_a_script_prints_each_step_once(tmp_path: Path) -> None:
    script = _script(tmp_path, "shout.py", GENERATOR_SCRIPT)
    done = run_cli("narrate", script, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    sentences = [line.split(" s  ", 1)[1] for line in done.stdout.splitlines()]
    assert "HI" not in done.stdout.splitlines()  # printed lines are steps, not echoed
    hand_offs = [s for s in sentences if " sends " in s or " yields " in s or "prints" in s]
    assert hand_offs[-4:] == [
        "main sends 'hi' to shout",
        "shout yields 'HI' back to main",
        "main prints 'HI' at shout.py:13",  # each print at its own line of the script
        "main prints 'args []' at shout.py:14",
    ]


def test_narrate_a_saved_trace_runs_nothing_and_matches_the_library(tmp_path: Path) -> None:
    out = tmp_path / "pc.loopscope"
    assert run_cli("trace", "producer-consumer", "-o", out, cwd=tmp_path).returncode == 0
    done = run_cli("narrate", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.splitlines() == list(narrate(load_native(out)))
    converted = tmp_path / "pc.json"
    assert run_cli("trace", out, "-o", converted, cwd=tmp_path).returncode == 0
    assert json.loads(converted.read_text(encoding="utf-8"))["otherData"]["target"] == (
        "producer-consumer")


def test_the_cli_module_imports_no_qt(tmp_path: Path) -> None:
    code = "import sys, ui.cli; print('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=_env(), check=True)
    loaded = {name.split(".")[0] for name in done.stdout.split()}
    assert "ui" in loaded
    assert not loaded & {"PySide6", "shiboken6", "qasync", "gevent", "greenlet"}


@pytest.mark.gui
def test_export_writes_the_image_of_a_saved_trace(tmp_path: Path) -> None:
    saved = tmp_path / "pc.loopscope"
    assert run_cli("trace", "producer-consumer", "-o", saved, cwd=tmp_path).returncode == 0
    image = tmp_path / "pc.png"
    done = run_cli("export", saved, "-o", image, "--width", "640", "--height", "360",
                   "--theme", "dark", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert image.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_traced_script_keeps_its_own_import_path(tmp_path: Path) -> None:
    """Nothing of Loopscope's lands on the program's path: its own `ui` or `tracer` package
    is found, and none of ours is importable under a bare name."""
    (tmp_path / "ui").mkdir()
    (tmp_path / "ui" / "__init__.py").write_text("WHOSE = 'mine'\n")
    script = _script(tmp_path, "imports.py", """
        import importlib.util
        import ui
        print("ui", ui.WHOSE)
        for name in ("tracer", "scenarios"):
            print(name, importlib.util.find_spec(name) is None and "absent" or "found")
    """)
    env = {key: value for key, value in _env().items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "loopscope", "trace", str(script), "-o", "run.loopscope"],
        cwd=tmp_path, capture_output=True, text=True, timeout=90, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:3] == ["ui mine", "tracer absent", "scenarios absent"]


def test_the_command_line_starts_without_numpy() -> None:
    """Only `report`, `export` and the app need numpy; parsing any command line does not."""
    parse = ("import sys; from loopscope.ui import cli; cli.build_parser(); "
             "print('numpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", parse], capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.strip() == "False", done.stderr
    from loopscope.tracer.stalls import DEFAULT_THRESHOLD_NS
    from loopscope.ui.report_command import DEFAULT_STALL_MS

    assert DEFAULT_STALL_MS * 1e6 == DEFAULT_THRESHOLD_NS


def test_a_program_that_fails_with_no_file_descriptor_left_still_has_its_error_told(
        tmp_path: Path) -> None:
    # nothing can be imported any more: the error is told even without the traceback code
    script = _script(tmp_path, "leaks.py", """
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        leaked = []
        try:
            while True:
                leaked.append(open("/dev/null"))
        except OSError as error:
            raise RuntimeError(f"leaked {len(leaked)} files") from error
    """)
    done = run_cli("trace", script, "-o", tmp_path / "t.loopscope", cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # the program's own status, as Python gives it
    assert "loopscope: error: the program failed: RuntimeError: leaked " in done.stderr
    assert "Traceback" not in done.stderr  # Loopscope's own, of its failed import, before
    assert (tmp_path / "t.loopscope").is_file()
