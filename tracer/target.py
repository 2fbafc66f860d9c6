"""What the user asked to run or open: a scenario id, a script with arguments, or a saved trace.

Resolution happens in the parent, before any child starts, so every bad input becomes one
clear `TargetError` line instead of a child that dies.
"""

# No `from __future__ import annotations` in this module: with it, a NamedTuple's field
# annotations are strings, and typing compiles each one (3.11-3.13) when the class is
# made, on every run's start-up (tests/cli/test_startup_imports.py).
import os
from pathlib import Path
from typing import NamedTuple

from loopscope.tracer.formats import is_trace_file
from loopscope.tracer.models import DEFAULT_MODEL, MODEL_NAMES, guess_model


class TargetError(Exception):
    """A target that cannot be run or opened; the message is the one line the user sees."""


class Target(NamedTuple):
    kind: str  # "scenario" | "script" | "trace"
    value: str  # scenario id, script path or trace path
    args: tuple[str, ...] = ()
    model: str = DEFAULT_MODEL
    module: str = ""  # the scenario's module

    @property
    def label(self) -> str:
        if self.kind == "script":
            return " ".join((self.value, *self.args))
        return self.value


def resolve_target(text: str, args: tuple[str, ...] = (), model: str | None = None) -> Target:
    if model is not None and model not in MODEL_NAMES:
        raise TargetError(f"unknown model '{model}' (choose from {', '.join(MODEL_NAMES)})")
    path = Path(text)
    looks_like_path = os.sep in text or text.endswith((".py", ".json", ".loopscope"))
    if not looks_like_path and not path.exists():
        from loopscope.scenarios import catalog  # read only for a scenario's id

        try:
            scenario = catalog.get(text)
        except catalog.UnknownScenarioError as exc:
            raise TargetError(str(exc)) from None
        if args:
            raise TargetError("scenarios take no arguments; arguments after -- are for scripts")
        if model is not None and model != scenario.model:
            raise TargetError(f"{scenario.id} is a {scenario.model} scenario; it cannot run "
                              f"as {model} (--model is for scripts)")
        return Target("scenario", scenario.id, (), scenario.model, scenario.module)
    if not path.exists():
        raise TargetError(f"no such file: {text}")
    if path.is_dir():
        raise TargetError(f"{text} is a directory, not a script or a trace")
    if not path.is_file():  # reading a FIFO would wait for a writer, a device forever
        raise TargetError(f"{text} is not a regular file (a FIFO, a device or a socket), "
                          "not a script or a trace")
    if not os.access(path, os.R_OK):
        raise TargetError(f"cannot read {text}: permission denied")
    if is_trace_file(path):
        if model is not None:
            raise TargetError(f"{text} is a saved trace; --model is for scripts")
        return Target("trace", str(path))
    if path.suffix != ".py":
        raise TargetError(f"{text} is neither a Python script (.py) nor a Loopscope trace")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"cannot read {text}: {exc}") from None
    return Target("script", str(path.resolve()), tuple(args), model or guess_model(source))
