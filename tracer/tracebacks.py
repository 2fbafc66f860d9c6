"""The traced program's tracebacks as it would have seen them without Loopscope.

A script runs under the child, a model and runpy, so a raw traceback starts with their
frames, and an exception raised inside a wrapped call (select, a socket method) passes
through the wrapper. Those frames say nothing to the user; they are left out here, in every
exception of a chain or group. A traceback made only of such frames, or one whose error
was raised by Loopscope's own code (an AttributeError in a model: a bug of Loopscope's), is
kept whole: hiding it would hide the bug.
"""

from __future__ import annotations

import os
import runpy
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import traceback

_TRACER_ROOT = os.path.dirname(os.path.realpath(__file__)) + "/"
_RUNPY = {runpy.__file__, os.path.realpath(runpy.__file__ or "")}


def is_harness_file(filename: str) -> bool:
    """True for a frame of Loopscope's tracer, runpy or the frozen import machinery."""
    return (
        filename.startswith(_TRACER_ROOT)
        or filename in _RUNPY
        or filename.startswith("<frozen runpy")
        or filename.startswith("<frozen importlib")
    )


# Errors that mean a bug where they were raised, rather than an error passing through (an
# OSError from a wrapped select, the program's own exception unwinding through a hook).
_BUG_TYPES = frozenset({"AttributeError", "TypeError", "KeyError", "IndexError", "NameError",
                        "UnboundLocalError", "AssertionError", "SystemError"})


def _type_name(summary: traceback.TracebackException) -> str:
    named = getattr(summary, "exc_type_str", None)  # 3.13+, where exc_type is deprecated
    if isinstance(named, str):
        return named
    return summary.exc_type.__name__ if summary.exc_type is not None else ""


def _raised_by_harness(summary: traceback.TracebackException) -> bool:
    return (bool(summary.stack) and summary.stack[-1].filename.startswith(_TRACER_ROOT)
            and _type_name(summary) in _BUG_TYPES)


def _trim(summary: traceback.TracebackException, seen: set[int]) -> None:
    if id(summary) in seen:
        return
    seen.add(id(summary))
    own = [frame for frame in summary.stack if not is_harness_file(frame.filename)]
    if own and not _raised_by_harness(summary):
        summary.stack[:] = own  # StackSummary is a list: the formatted traceback follows it
    for linked in (summary.__cause__, summary.__context__):
        if linked is not None:
            _trim(linked, seen)
    for member in getattr(summary, "exceptions", None) or ():
        _trim(member, seen)


def program_traceback(error: BaseException) -> str:
    """The formatted traceback of `error`, starting at the program's own code."""
    import traceback  # here: only a program that fails needs it (and textwrap, linecache)

    summary = traceback.TracebackException.from_exception(error)
    _trim(summary, set())
    return "".join(summary.format())
