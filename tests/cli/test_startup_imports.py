"""What `loopscope trace` of an empty script imports, in its two real processes.

The fixed cost of tracing a one-liner is two interpreters' start-ups and whatever each one
imports (docs/benchmarks.md, "The fixed cost"). These tests fail when a heavy module that the
start-up path was freed of comes back: the parent (the command line) runs its run without
asyncio, and the child starts the program without asyncio, dataclasses, argparse and the rest.
Each list is of modules that run does not need; a model or a failing program still imports
what it needs when it needs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli import _env, _script

# Neither process of the run needs any of these for an empty script.
NEVER = {"asyncio", "dataclasses", "inspect", "ast", "ssl", "socket", "concurrent.futures",
         "logging", "platform", "secrets", "PySide6", "numpy"}
# The child, besides: it parses its own command line, writes but never decodes frames (so
# never imports the trace and its checks), and imports the traceback machinery only for a
# program that fails.
# (pathlib counts where the interpreter does not load it anyway: an editable install's
# import finder does, an installed package does not.)
NOT_IN_CHILD = NEVER | {"argparse", "shutil", "traceback", "textwrap", "tokenize", "pathlib",
                        "loopscope.tracer.held_frame", "loopscope.tracer.runner",
                        "loopscope.tracer.tracebacks",
                        # sysconfig is loaded before the program's first line on purpose:
                        # a stop that lands in its lazy set-up (3.14+) leaves it broken
                        # the decoding half of the stream: the parent's
                        "loopscope.tracer.trace", "loopscope.tracer.trace_checks",
                        "loopscope.tracer.samples"}
# The parent: the run is driven by a selector (tracer.blocking_run), not asyncio's runner,
# digests the script with the interpreter's own SHA-256, not OpenSSL's (_hashlib), and asks
# to adopt the run's orphans in C (tracer.descendants), not through ctypes.
NOT_IN_PARENT = NEVER | {"loopscope.tracer.runner", "loopscope.tracer.held_frame", "subprocess",
                         "loopscope.tracer.recorder", "_hashlib", "ctypes"}

# What the interpreter loads as it starts and the standard library itself loads for the
# modules a process does need (on 3.14, argparse's colours load dataclasses, and typing's
# annotations load ast): not ours to avoid.
_STANDARD_NEEDS = """
import sys, typing
for name in sys.argv[1:]:
    __import__(name)
class Probe(typing.NamedTuple):
    field: int
if "argparse" in sys.modules:
    sys.modules["argparse"].ArgumentParser(prog="probe").parse_args([])
print("\\n".join(sys.modules))
"""
CHILD_NEEDS = ("array", "json", "select", "signal", "struct", "threading")
PARENT_NEEDS = ("argparse", "json", "selectors", "signal", "threading", "zlib")


def _pulled_in_by_the_standard_library(needs: tuple[str, ...]) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _STANDARD_NEEDS, *needs], capture_output=True,
                          text=True, timeout=60, check=True)
    return set(done.stdout.split())


# The command line as the `loopscope` command runs it (its child started early, so no
# subprocess), then the modules it loaded.
_PARENT = """
import json, sys
from loopscope.ui.cli import main
from loopscope.ui.start import early_child_for
status = main(sys.argv[2:], early_child_for(sys.argv[2:]))
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
sys.exit(status)
"""


def test_the_child_of_an_empty_script_starts_it_without_heavy_imports(tmp_path: Path) -> None:
    # The program's first statement sees the modules the child loaded before it ran it.
    seen = tmp_path / "child-modules.json"
    script = _script(tmp_path, "empty.py", f"""
        import sys
        with open({str(seen)!r}, "w") as out:
            out.write("\\n".join(sorted(sys.modules)))
        """)
    done = subprocess.run(
        [sys.executable, "-m", "loopscope", "trace", str(script), "-o",
         str(tmp_path / "t.loopscope")],
        cwd=tmp_path, capture_output=True, text=True, timeout=90, env=_env())
    assert done.returncode == 0, done.stderr
    loaded = set(seen.read_text(encoding="utf-8").split())
    assert "loopscope.tracer.recorder" in loaded  # it is the child's view indeed
    heavy = (loaded & NOT_IN_CHILD) - _pulled_in_by_the_standard_library(CHILD_NEEDS)
    assert not heavy, sorted(heavy)


def test_the_command_line_records_a_run_without_asyncio(tmp_path: Path) -> None:
    seen = tmp_path / "parent-modules.json"
    script = _script(tmp_path, "empty.py", "pass\n")
    done = subprocess.run(
        [sys.executable, "-c", _PARENT, str(seen), "trace", str(script), "-o",
         str(tmp_path / "t.loopscope")],
        cwd=tmp_path, capture_output=True, text=True, timeout=90, env=_env())
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(seen.read_text(encoding="utf-8")))
    assert "loopscope.tracer.native" in loaded  # it saved the trace
    heavy = (loaded & NOT_IN_PARENT) - _pulled_in_by_the_standard_library(PARENT_NEEDS)
    assert not heavy, sorted(heavy)


def test_the_command_line_is_parsed_without_loading_argparse_s_colours() -> None:
    # 3.14's argparse loads _colorize (and dataclasses and inspect with it) for every parser
    # it builds; ours puts that off until help is printed, so the run's child is told what to
    # run 15 ms sooner (ui.cli._Formatter)
    probe = ("import sys; from loopscope.ui.cli import build_parser; "
             "build_parser().parse_args(['trace', 'prog.py', '-o', 't.loopscope']); "
             "print(sorted({'_colorize', 'dataclasses', 'inspect'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True, env=_env())
    assert done.stdout.strip() == "[]"


def test_help_keeps_argparse_s_colours_where_it_has_them() -> None:
    help_text = {}
    for setting in ("FORCE_COLOR", "NO_COLOR"):
        env = {**_env(), setting: "1"}
        env.pop("NO_COLOR" if setting == "FORCE_COLOR" else "FORCE_COLOR", None)
        env.pop("PYTHON_COLORS", None)  # which 3.14 reads before either
        help_text[setting] = subprocess.run(
            [sys.executable, "-m", "loopscope", "trace", "--help"], capture_output=True,
            text=True, timeout=60, check=True, env=env).stdout
    assert "usage: loopscope trace" in help_text["NO_COLOR"]
    assert "\x1b[" not in help_text["NO_COLOR"]
    # colours came with 3.14's argparse
    assert ("\x1b[" in help_text["FORCE_COLOR"]) == (sys.version_info >= (3, 14))


def test_the_command_starts_a_run_before_importing_its_command_line() -> None:
    # `loopscope` (and `python -m loopscope`) starts a run's child first (loopscope.ui.start,
    # tracer.early_child): by then it has imported nothing of the standard library that the
    # interpreter had not, so the child's start-up overlaps all of the command line's.
    probe = ("import sys; before = set(sys.modules); import loopscope.ui.start; "
             "print('\\n'.join(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True, env=_env())
    added = set(done.stdout.split()) - {"__future__"}
    assert {name for name in added if not name.startswith("loopscope")} == set(), added
    assert "loopscope.ui.start" in added


# Counts the compile() calls made while the modules named on the command line are imported,
# by the module that made each (typing's for a NamedTuple's string annotations: 3.11-3.13
# compile each field's as the class is made in a module with `from __future__ import
# annotations`); the import system's own, for a module whose cached bytecode is stale, are not
# the code's doing.
_COMPILED = """
import sys, typing
compiled = []
def watch(frame, event, arg):
    if event == "c_call" and arg is compile and "importlib" not in frame.f_code.co_filename:
        while frame is not None and frame.f_code.co_filename == typing.__file__:
            frame = frame.f_back  # out of typing: the module whose class it is
        compiled.append(frame.f_code.co_filename if frame is not None else "?")
sys.setprofile(watch)
for name in sys.argv[1:]:
    __import__(name)
sys.setprofile(None)
print("\\n".join(compiled))
"""


def test_the_run_s_two_processes_import_themselves_without_compiling() -> None:
    # The first compile() in a process builds the ast module's types (13M instructions on
    # 3.13), and each NamedTuple field with a string annotation costs more on 3.11-3.13:
    # neither the child nor the command line needs either (docs/benchmarks.md, perf9). The
    # child compiles the program's script without them (tracer.program.compile_script).
    imported = ("loopscope.tracer.child", "loopscope.ui.start", "loopscope.tracer.descendants",
                "loopscope.ui.cli", "loopscope.tracer.blocking_run", "loopscope.tracer.native")
    done = subprocess.run([sys.executable, "-c", _COMPILED, *imported],
                          capture_output=True, text=True, timeout=60, check=True, env=_env())
    assert done.stdout.split() == []
