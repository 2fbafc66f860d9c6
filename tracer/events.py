"""The event vocabulary shared by every concurrency model: codes, lane kinds and the clock.

An event is six integers: timestamp (ns from the run's start), lane, code, other lane,
detail index and source index. Its sequence number is its position in the run. Details and
source locations are interned into tables so that a repeated detail costs four bytes.
"""

# No `from __future__ import annotations` in this module: with it, a NamedTuple's field
# annotations are strings, and typing compiles each one (3.11-3.13) when the class is
# made, on every run's start-up (tests/cli/test_startup_imports.py).

import time
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import Any, NamedTuple

NO_LANE = -1
NO_DETAIL = 0
NO_SOURCE = 0


class Code(IntEnum):
    """What an event says. Codes below 16 start a state span on their lane."""

    # lane states
    RUNNING = 0
    READY = 1
    IO_WAIT = 2
    SLEEPING = 3
    BLOCKED = 4
    # loop-lane states
    POLL = 5
    DISPATCH = 6
    # instants
    SPAWN = 16  # lane = the new lane, other = its parent; detail has "name" and "kind"
    WAKE = 17  # lane = woken, other = waker; detail is the cause
    SWITCH = 18  # lane = origin, other = target; detail carries values handed over
    END = 19  # lane ends; detail has "result" or "error"
    ANNOTATE = 20  # detail is merged into the lane's open span (e.g. a poll's ready fds)
    OUTPUT = 21  # the lane wrote to stdout; detail has "text"
    MARK = 22  # a marker on the lane (e.g. "paused"); detail has "text"



FIRST_INSTANT = 16


class CodeInfo(NamedTuple):
    """Everything the rest of Loopscope needs to know about one code, in one row.

    `name` is what exports, narration and the UI call it. `colour` is the key a theme draws it
    with: a state's own code (`Theme.states`), or the name of the theme colour an instant is
    drawn in (None: it is never drawn by itself). `merge_rank` orders states for the pixel
    columns where several merge: the highest shown wins. Narration (tracer.narrate) and the
    themes (ui.theme) have one entry per code too; tests/test_codes.py holds them to this table.
    """

    code: Code
    name: str
    colour: int | str | None
    merge_rank: int | None = None  # states only


CODES: tuple[CodeInfo, ...] = (
    CodeInfo(Code.RUNNING, "running", Code.RUNNING, merge_rank=6),
    CodeInfo(Code.READY, "ready", Code.READY, merge_rank=4),
    CodeInfo(Code.IO_WAIT, "io-wait", Code.IO_WAIT, merge_rank=3),
    CodeInfo(Code.SLEEPING, "sleeping", Code.SLEEPING, merge_rank=1),
    CodeInfo(Code.BLOCKED, "blocked", Code.BLOCKED, merge_rank=2),
    CodeInfo(Code.POLL, "poll", Code.POLL, merge_rank=0),
    CodeInfo(Code.DISPATCH, "dispatch", Code.DISPATCH, merge_rank=5),
    CodeInfo(Code.SPAWN, "spawn", None),  # the lane's first row, not a marker
    CodeInfo(Code.WAKE, "wake", "wake"),
    CodeInfo(Code.SWITCH, "switch", "switch"),
    CodeInfo(Code.END, "end", "end"),
    CodeInfo(Code.ANNOTATE, "annotate", None),  # merged into the span it annotates
    CodeInfo(Code.OUTPUT, "output", "output"),
    CodeInfo(Code.MARK, "mark", "mark"),
)
CODE_INFO: dict[int, CodeInfo] = {info.code: info for info in CODES}


class MarkerInfo(NamedTuple):
    """A marker the timeline draws for an instant. `kind` names it (ui.paint draws each kind
    its own shape), `code` is the instant it marks, `colour` the name of the theme colour it
    is drawn in, `legend` its word in the legend. An END has one per way a lane can end
    (`end_marker`); tests/test_codes.py holds the painter and the themes to this table."""

    kind: str
    code: Code
    colour: str
    legend: str


MARKERS: tuple[MarkerInfo, ...] = (
    MarkerInfo("output", Code.OUTPUT, "output", "output"),
    MarkerInfo("end", Code.END, "end", "end"),
    MarkerInfo("mark", Code.MARK, "mark", "mark"),
    MarkerInfo("error", Code.END, "error", "exception"),  # the lane raised
    MarkerInfo("cancelled", Code.END, "cancelled", "cancelled"),  # the lane was cancelled
)

# The names used in exports, narration and the UI, indexed by code.
STATE_NAMES: dict[int, str] = {i.code: i.name for i in CODES if i.code < FIRST_INSTANT}
INSTANT_NAMES: dict[int, str] = {i.code: i.name for i in CODES if i.code >= FIRST_INSTANT}
CODE_NAMES: dict[int, str] = {**STATE_NAMES, **INSTANT_NAMES}
# States in the order merged pixel columns rank them: the last one present is shown.
STATES_BY_MERGE_RANK: tuple[int, ...] = tuple(
    i.code for i in sorted((i for i in CODES if i.merge_rank is not None),
                           key=lambda i: i.merge_rank or 0))


class LaneKind:
    """The value of a spawn event's "kind" detail."""

    LOOP = "loop"  # asyncio loop, gevent hub, select loop
    TASK = "task"  # asyncio Task
    GREENLET = "greenlet"
    GENERATOR = "generator"
    CONNECTION = "connection"  # one connection of a select/selectors server
    MAIN = "main"  # the program's main flow of control (a driver, the main greenlet)
    THREAD = "thread"  # work handed to a thread pool (to_thread, run_in_executor)

    LOOP_KINDS = frozenset({LOOP})


def followed(model: str | None, lane_kinds: Iterable[str]) -> str | None:
    """What a run's header names: "threads" when every lane is a thread (the model a threaded
    script runs under, asyncio by default, followed nothing of it), else the model."""
    kinds = set(lane_kinds)
    return "threads" if kinds == {LaneKind.THREAD} else model


# A detail as recorded: a flat tuple of alternating keys and values, hashable so it can be
# interned cheaply on the hot path, e.g. ("fd", 9, "mode", "read"). Values are str, int,
# float, bool, None or tuples of those.
Detail = tuple[Any, ...]
# A source location: (filename, line number, function name).
Source = tuple[str, int, str]


class Batch(NamedTuple):
    """A run of events as a recorder hands it to its sink (tracer.recorder.BatchSink), with
    the table rows its events are the first to name."""

    first_seq: int
    columns: tuple[Sequence[int], ...]  # ts, lane, code, other, detail, source: one length
    new_details: list[Detail]
    new_sources: list[Source]
    new_values: bytes = b""  # a section of new value rows (tracer.values), or b"" for none

Clock = Callable[[], int]
"""Returns a time in nanoseconds; only differences matter. The recorder subtracts its origin."""


def monotonic_clock() -> int:
    return time.perf_counter_ns()


class FakeClock:
    """A clock for tests: starts at zero and advances only when told to (or by `tick` per read)."""

    def __init__(self, tick_ns: int = 0) -> None:
        self.now_ns = 0
        self.tick_ns = tick_ns

    def __call__(self) -> int:
        now = self.now_ns
        self.now_ns += self.tick_ns
        return now

    def advance(self, ns: int) -> None:
        self.now_ns += ns


def detail_to_dict(detail: Detail) -> dict[str, Any]:
    """("fd", 9, "mode", "read") -> {"fd": 9, "mode": "read"}; tuples become lists."""
    return {
        str(detail[i]): list(v) if isinstance(v := detail[i + 1], tuple) else v
        for i in range(0, len(detail) - 1, 2)
    }


def short_repr(value: object, limit: int = 40) -> str:
    """A repr short enough for a tooltip or a narration line."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ in the traced program must not stop tracing
        text = f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


CANCELLATIONS = ("CancelledError", "Cancelled")  # asyncio's, trio's


def ended_cancelled(detail: dict[str, Any]) -> bool:
    """Whether an END detail says the lane was cancelled rather than failed: its error is a
    cancellation ("CancelledError", "CancelledError: reason")."""
    error = detail.get("error")
    return isinstance(error, str) and error.split(":", 1)[0] in CANCELLATIONS


def end_marker(detail: dict[str, Any]) -> str:
    """The kind of marker (MARKERS) an END with this detail draws: "cancelled" for a
    cancellation, "error" for any other exception, "end" for a lane that returned."""
    if "error" not in detail:
        return "end"
    return "cancelled" if ended_cancelled(detail) else "error"
