"""What a held program is doing, read from its paused frame: sent beside the step gate's hold.

While the step gate holds the traced thread (tracer.step_gate), the program's innermost frame
is paused where it is. `held_view` reads it: the running asyncio task's innermost frame of
the program in its await chain when a task is current, else the innermost frame of the
program on the traced thread's stack (a generator, a greenlet, a select loop's handler).
It gives the frame's file, line and function and its local variables as short reprs, so the
parent can show them (the app's Details pane) without any object crossing the pipe.

A `__repr__` that raises, or runs long, must never stop or break the program: each repr is
reprlib's, bounded in length, and an exception from it is shown as such instead.
"""

from __future__ import annotations

import reprlib
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_LOCALS = 40
MAX_REPR = 120
# What a module-level frame's locals (its globals) hold besides the program's own values.
_NOT_VALUES = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type)

class _ShortRepr(reprlib.Repr):
    """reprlib's bounded reprs, saying what a raising __repr__ raised."""

    def repr_instance(self, x: Any, level: int) -> str:
        try:
            text = repr(x)
        except Exception as error:  # the program's __repr__, not ours: never let it out
            return f"<{type(x).__name__}: repr raised {type(error).__name__}>"
        if len(text) > self.maxother:
            half = max(0, (self.maxother - 3) // 2)
            text = text[:half] + "..." + text[len(text) - (self.maxother - 3 - half):]
        return text


_short = _ShortRepr()
_short.maxstring = MAX_REPR
_short.maxother = MAX_REPR
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxdict = 8
_short.maxlevel = 3
_program_files: Any = None  # a ProgramFiles, made at the first hold (the parent needs none)


@dataclass(frozen=True)
class HeldView:
    """The parent's copy of a held view, checked (a child's pipe is data from anywhere)."""

    seq: int  # the number of events recorded when the child was held
    lane: int  # the lane of the event it was held at
    where: tuple[str, int, str] | None  # the paused frame of the program: file, line, function
    locals: tuple[tuple[str, str], ...]  # (name, short repr)
    truncated: int = 0  # locals left out


def held_view_of(payload: dict[str, Any]) -> HeldView:
    """The HeldView a HELD frame's JSON describes; ValueError when it is not one."""
    seq, lane = payload.get("seq"), payload.get("lane")
    if not (isinstance(seq, int) and isinstance(lane, int) and _is_int(seq) and _is_int(lane)):
        raise ValueError("a held view without its seq and lane")
    where = payload.get("where")
    place: tuple[str, int, str] | None = None
    if where is not None:
        if not (isinstance(where, list) and len(where) == 3 and isinstance(where[0], str)
                and _is_int(where[1]) and isinstance(where[2], str)):
            raise ValueError("a held view's place is not [file, line, function]")
        place = (where[0], where[1], where[2])
    rows = payload.get("locals", [])
    if not isinstance(rows, list) or len(rows) > MAX_LOCALS or not all(
            isinstance(row, list) and len(row) == 2 and all(isinstance(t, str) for t in row)
            for row in rows):
        raise ValueError("a held view's locals are not [name, repr] pairs")
    truncated = payload.get("truncated", 0)
    if not (isinstance(truncated, int) and _is_int(truncated)):
        raise ValueError("a held view's count of left-out locals is not a number")
    return HeldView(seq, lane, place, tuple((name[:200], text[:MAX_REPR * 2])
                                            for name, text in rows), truncated)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def safe_repr(value: object) -> str:
    """A short repr of `value`; a __repr__ that raises gives a note of what it raised."""
    try:
        text = _short.repr(value)
    except Exception as error:  # the program's __repr__, not ours: never let it out
        return f"<{type(value).__name__}: repr raised {type(error).__name__}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 1] + "…"


def held_view(seq: int, lane: int) -> dict[str, Any]:
    """{"seq", "lane"} and, when a frame of the program is found, "where" ([file, line,
    function]) and "locals" ([[name, repr], ...] in definition order, at most MAX_LOCALS,
    then "truncated": how many more)."""
    view: dict[str, Any] = {"seq": seq, "lane": lane}
    frame = _program_frame()
    if frame is None:
        return view
    code = frame.f_code
    view["where"] = [code.co_filename, frame.f_lineno, getattr(code, "co_qualname", code.co_name)]
    at_module = code.co_name == "<module>"
    shown: list[list[str]] = []
    more = 0
    for name, value in list(frame.f_locals.items()):
        if name.startswith("__") or (at_module and isinstance(value, _NOT_VALUES)):
            continue
        if len(shown) >= MAX_LOCALS:
            more += 1
            continue
        shown.append([str(name), safe_repr(value)])
    view["locals"] = shown
    if more:
        view["truncated"] = more
    return view


def _program_frame() -> types.FrameType | None:
    global _program_files
    if _program_files is None:
        from loopscope.tracer.models._program_files import ProgramFiles

        _program_files = ProgramFiles()
    is_program = _program_files
    for frame in _task_frames():
        if is_program(frame.f_code.co_filename):
            return frame
    frame = sys._getframe(1)
    while frame is not None:
        if is_program(frame.f_code.co_filename):
            return frame
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _task_frames() -> Iterator[types.FrameType]:
    """The frames of the current asyncio task's await chain, innermost first."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop in this thread
        return
    if task is None:
        return
    frames: list[types.FrameType] = []
    awaitable: Any = task.get_coro()
    while awaitable is not None and len(frames) < 1000:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            break
        frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom",
                                                                    None)
    yield from reversed(frames)
