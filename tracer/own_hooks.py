"""The program's own trace functions see the program, not Loopscope.

A debugger, a coverage tool or the program itself may call `sys.settrace` (or
`threading.settrace`) while it runs under Loopscope. Its trace function would then be called
for Loopscope's own frames too -- the event loop's tracing overrides, the recorder, the output
recorder -- which it never asked about. While the run lasts, the trace function the program
installs is wrapped: a call into one of Loopscope's frames, or into library code one of them
called, is not passed on (and that frame is not traced line by line); everything else is,
unchanged. `sys.gettrace()` still returns the program's own function. Loopscope's own calls
to settrace pass straight through.
"""

from __future__ import annotations

import os
import sys
import sysconfig
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from loopscope.tracer.early_child import command_line_files

_TRACER_ROOT = os.path.dirname(os.path.realpath(__file__)) + "/"

TraceFunction = Callable[[FrameType, str, Any], Any]


def _ours(filename: str) -> bool:
    # (a forked child's command line frames, below the program's, are Loopscope's too)
    return filename.startswith(_TRACER_ROOT) or filename in command_line_files()


# How far up the stack a call is checked for having come from Loopscope through library code.
CALLER_DEPTH = 12


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    return tuple(os.path.realpath(root) + "/" for root in roots)


_LIBRARY_ROOTS = _library_roots()
_verdicts: dict[str, int] = {}  # filename -> 1 ours, 0 a library's, -1 the program's
_OURS, _LIBRARY, _PROGRAM = 1, 0, -1


def _owner(filename: str) -> int:
    verdict = _verdicts.get(filename)
    if verdict is None:
        if _ours(filename):
            verdict = _OURS
        elif filename.startswith("<frozen") or os.path.realpath(filename).startswith(
                _LIBRARY_ROOTS):
            verdict = _LIBRARY
        else:
            verdict = _PROGRAM
        _verdicts[filename] = verdict
    return verdict


def _called_by_us(frame: FrameType | None) -> bool:
    """Whether `frame` is Loopscope's, or library code Loopscope called (json, the asyncio
    internals its loop calls into); a program frame on the way up ends the search."""
    depth = 0
    while frame is not None and depth < CALLER_DEPTH:
        owner = _owner(frame.f_code.co_filename)
        if owner != _LIBRARY:
            return owner == _OURS
        frame = frame.f_back
        depth += 1
    return False


class _ProgramTrace:
    """The program's trace function, blind to Loopscope's frames and what they call."""

    def __init__(self, function: TraceFunction) -> None:
        self.function = function

    def __call__(self, frame: FrameType, event: str, arg: Any) -> Any:
        if _called_by_us(frame):
            return None
        return self.function(frame, event, arg)


class ProgramTraceFilter:
    """Installs the wrapping settrace/gettrace for the run; `uninstall` puts the originals back."""

    def __init__(self) -> None:
        self._settrace = sys.settrace
        self._gettrace = sys.gettrace
        self._threading_settrace = threading.settrace

    def install(self) -> None:
        settrace, gettrace = self._settrace, self._gettrace

        def program_settrace(function: TraceFunction | None) -> None:
            if (function is None or isinstance(function, _ProgramTrace)
                    or _ours(sys._getframe(1).f_code.co_filename)):
                settrace(function)
            else:
                settrace(_ProgramTrace(function))

        def program_gettrace() -> Any:
            current = gettrace()
            return current.function if isinstance(current, _ProgramTrace) else current

        def program_threading_settrace(function: TraceFunction | None) -> None:
            self._threading_settrace(  # type: ignore[arg-type]
                None if function is None else _ProgramTrace(function))

        sys.settrace = program_settrace  # type: ignore[assignment]
        sys.gettrace = program_gettrace
        threading.settrace = program_threading_settrace  # type: ignore[assignment]

    def uninstall(self) -> None:
        sys.settrace = self._settrace
        sys.gettrace = self._gettrace
        threading.settrace = self._threading_settrace
