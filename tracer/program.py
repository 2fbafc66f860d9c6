"""The program a child process runs: a scenario's `main` or a user's script, with its argv."""

from __future__ import annotations

import importlib
import os
import runpy
import sys
from collections.abc import Callable, Sequence
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
        """Runs the script as `python script.py ARGS` would: as __main__, its folder on the path."""
        assert self.script is not None
        sys.argv = [self.script, *self.argv]
        sys.path.insert(0, os.path.dirname(os.path.realpath(self.script)))
        runpy.run_path(self.script, run_name="__main__")
