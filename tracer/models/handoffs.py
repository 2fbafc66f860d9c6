"""What the models that follow hand-offs share (generators, greenlets, gevent, select).

- `ProgramCode`: whether a code object is the traced program's own (not the standard library,
  an installed package or Loopscope's tracer), decided once per file.
- `c_handoffs`: the C hand-off hooks (`tracer._handoffs`), when they can be used.
- `fd_of`: the fd a waited-on object stands for, as select and trio would use it.
- `HandoffLanes`: the lanes of a hand-off model: unique names ("worker", "worker-2"), the
  per-lane tables its hooks read in place (grown as lanes are spawned), the switch detail of
  each way of handing over ("via"), the BLOCKED detail of a lane waiting on another, and the
  source line a frame resumes at, each interned once. (The generator model's C hooks read its
  tables in place to start a lane: `_name_counts`, `names`, `_blocked_details`,
  `_via_details`, `_sources_at`, `_blocked_base`.)
"""

from __future__ import annotations

from collections.abc import Callable
from types import CodeType, FrameType, ModuleType
from typing import Any, TypeVar

from loopscope.tracer.models._program_files import ProgramFiles
from loopscope.tracer.recorder import SPEEDUPS, Recorder, c_extension

Row = TypeVar("Row")
_ROWS_AHEAD = 256  # how many lanes' rows a per-lane table grows by at once


def c_handoffs(recorder: Recorder) -> ModuleType | None:
    """loopscope.tracer._handoffs, when it is built, the recorder has C columns to write to, and
    LOOPSCOPE_PURE_PYTHON does not ask for pure Python; else None (the Python hooks run)."""
    if SPEEDUPS is None or not isinstance(recorder, SPEEDUPS.RecorderCore):
        return None
    return c_extension("_handoffs")


def fd_of(obj: object) -> int:
    """The fd select would use for `obj`, or -1 when it has none (closed, not a file)."""
    if isinstance(obj, int):
        return obj
    try:
        fileno = obj.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return -1
    return fileno if isinstance(fileno, int) else -1


class ProgramCode:
    """Decides, once per code object's file, whether it belongs to the traced program
    (tracer.models._program_files says which files are)."""

    def __init__(self) -> None:
        self._files = ProgramFiles()

    def __call__(self, code: CodeType) -> bool:
        return self._files(code.co_filename)


class HandoffLanes:
    """Names, BLOCKED details and resume sources of the lanes of one hand-off model."""

    def __init__(self, recorder: Recorder, blocked_rows: bool = False) -> None:
        self.recorder = recorder
        # With blocked_rows, "BLOCKED on lane X" is a value row (X's name) on one interned
        # base, for models whose every lane is waited on once (100k generators): the parent
        # then takes them in bulk instead of decoding and checking an interned detail a lane.
        self._blocked_base = recorder.detail(("value_key", "on")) if blocked_rows else -1
        self.names: dict[int, str] = {}
        self._name_counts: dict[str, int] = {}
        self._blocked_details: dict[int, int] = {}
        self._via_details: dict[str, int] = {}
        # Caches per code object are keyed by id(code): a code object's hash is computed
        # afresh from its fields on every lookup, several times a lane. `codes` keeps every code
        # so keyed alive, so that no other code object can take its id.
        self.codes: dict[int, CodeType] = {}
        self._sources_at: dict[tuple[int, int], int] = {}
        self._tables: list[tuple[list[Any], Callable[[], Any]]] = []

    def table(self, new_row: Callable[[], Row]) -> list[Row]:
        """A list indexed by lane, one row per lane spawned from now on, each `new_row()` when
        its lane is spawned (lanes other models spawn in between get one too)."""
        rows: list[Row] = []
        self._tables.append((rows, new_row))
        return rows

    def unique_name(self, base: str) -> str:
        """`base` the first time, then "base-2", "base-3"..."""
        count = self._name_counts.get(base, 0) + 1
        self._name_counts[base] = count
        return base if count == 1 else f"{base}-{count}"

    def spawn(self, name: str, kind: str, parent: int, source: int,
              extra: tuple[object, ...] = ()) -> int:
        lane = self.recorder.spawn(name, kind, parent, source, extra)
        self.names[lane] = name
        for rows, new_row in self._tables:
            if len(rows) <= lane:
                # a chunk of rows ahead: a row per spawn, one at a time, cost a generator
                # program as much as the recorder's spawn itself
                rows.extend([new_row() for _ in range(lane + _ROWS_AHEAD - len(rows))])
        return lane

    def via_detail(self, via: str) -> int:
        """The detail of a switch handing over by `via` ("send", "switch"...), interned once."""
        detail = self._via_details.get(via)
        if detail is None:
            detail = self._via_details[via] = self.recorder.detail(("via", via))
        return detail

    def blocked_detail(self, other: int) -> int:
        """The detail of a lane BLOCKED on lane `other` ("on": its name), interned once."""
        detail = self._blocked_details.get(other)
        if detail is None:
            if self._blocked_base >= 0:
                detail = self.recorder.value_row(self._blocked_base, self.names[other])
            else:
                detail = self.recorder.detail(("on", self.names[other]))
            self._blocked_details[other] = detail
        return detail

    def source_at(self, frame: FrameType) -> int:
        """The source index of the line `frame` is at. f_lineno decodes the line table on every
        read; the instruction offset is cheap and maps to the same line every time."""
        code = frame.f_code
        key = (id(code), frame.f_lasti)
        index = self._sources_at.get(key)
        if index is None:
            self.codes[key[0]] = code
            index = self._sources_at[key] = self.recorder.source_of(code, frame.f_lineno)
        return index
