"""The program a child process runs: a scenario's `main` or a user's script, with its argv."""

# No `from __future__ import annotations` in this module: with it, a NamedTuple's field
# annotations are strings, and typing compiles each one (3.11-3.13) when the class is
# made, on every run's start-up (tests/cli/test_startup_imports.py).

import importlib
import io
import os
import runpy
import sys
from collections.abc import Callable, Sequence
from importlib._bootstrap_external import MAGIC_NUMBER  # importlib.util's, without its import
from types import CodeType, ModuleType
from typing import Any, NamedTuple


class Program(NamedTuple):
    model: str
    scenario_module: str | None = None
    script: str | None = None
    argv: Sequence[str] = ()

    @property
    def label(self) -> str:
        return self.script or self.scenario_module or "?"

    def scenario_main(self) -> Callable[..., Any]:
        """Imports the scenario module (after the model's set-up, e.g. gevent's patching)."""
        assert self.scenario_module is not None
        module = importlib.import_module(self.scenario_module)
        main: Callable[..., Any] = module.main
        return main

    def run_plain(self) -> object:
        """Runs a program of a model without an event loop of asyncio's: the scenario's
        `main()` (returning what it returns) or the script (returning None)."""
        if self.scenario_module is not None:
            return self.scenario_main()()
        self.run_script()
        return None

    def run_script(self) -> None:
        """Runs the script as `python script.py ARGS` would: as __main__, its folder on the
        path, and its module left in sys.modules as __main__ when it ends, as the
        interpreter leaves it: its exit hooks find it there, and the interpreter's teardown
        clears it, so that what it left open is closed (a file's last writes flushed) as
        untraced. (runpy.run_path, for a zip, a folder or a compiled file, puts back the
        __main__ it found.)"""
        assert self.script is not None
        sys.argv = [self.script, *self.argv]
        sys.path.insert(0, os.path.dirname(os.path.realpath(self.script)))
        code = script_code(self.script)
        run_code = getattr(runpy, "_run_code", None)
        if code is None or run_code is None:
            runpy.run_path(self.script, run_name="__main__")
        else:  # what run_path does with a plain script's code, in a __main__ that stays
            main = ModuleType("__main__")
            sys.modules["__main__"] = main
            run_code(code, main.__dict__, None, "__main__", None, "", self.script)


def script_code(path: str) -> CodeType | None:
    """The code of the script at `path` as runpy.run_path compiles a plain source file
    (`compile_script`); None when run_path is to run it as it always did: for a path that is
    a zip or a folder, or a compiled file."""
    if _path_importer(path) is not None:
        return None
    with io.open_code(os.path.abspath(os.fsdecode(path))) as script_file:
        source = script_file.read()
    return None if source[:4] == MAGIC_NUMBER else compile_script(source, path)


def compile_script(source: bytes, filename: str) -> CodeType:
    """compile(source, filename, "exec") as runpy compiles a script (no future flags of ours
    inherited), in C where the extension is built: without building the ast module's types,
    which the builtin does the first time it runs in a process (_speedups.compile_script: a
    few milliseconds of every traced run's start-up, which `python script.py` never pays).
    Source with a NUL byte gets the builtin's own error."""
    from loopscope.tracer.recorder import SPEEDUPS

    if SPEEDUPS is None or b"\0" in source:
        return compile(source, filename, "exec", dont_inherit=True)
    code: CodeType = SPEEDUPS.compile_script(source, filename)
    return code


def _path_importer(path: str) -> object:
    """pkgutil.get_importer(path) (run_path asks it first), without importing pkgutil."""
    path = os.fsdecode(path)
    try:
        return sys.path_importer_cache[path]
    except KeyError:
        pass
    for path_hook in sys.path_hooks:
        try:
            importer = path_hook(path)
        except ImportError:
            continue
        sys.path_importer_cache.setdefault(path, importer)
        return importer
    return None
