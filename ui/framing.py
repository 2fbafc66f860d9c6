"""What a first view and an exported figure show: the part of the run where the lesson is
(a scenario's concept window), and an image tall enough for its lanes and no taller.

No Qt here: the app's timeline and the image export both ask this module.
"""

from __future__ import annotations

import re

import numpy as np

from loopscope.scenarios.catalog import UnknownScenarioError, get
from loopscope.tracer.events import CODE_NAMES
from loopscope.tracer.trace import Trace

_WINDOW = re.compile(r"^(?P<kind>[a-z-]+)(?:#(?P<nth>[1-9][0-9]*))?$")
_CODE_OF_NAME = {name: code for code, name in CODE_NAMES.items()}
# Room left and right of what a view shows, as a fraction of it, so the first span and the
# last marker are not cut by the edges.
LEFT_MARGIN = 0.02
RIGHT_MARGIN = 0.08

# Exported figures: rows this tall for few lanes, thinner for many.
FIGURE_ROW_HEIGHTS = ((8, 44.0), (16, 32.0), (40, 24.0))
FIGURE_MIN_ROW = 14.0
FIGURE_MAX_HEIGHT = 2400


def parse_window(spec: str) -> list[tuple[int, int]]:
    """"switch#3..switch#12" -> [(SWITCH, 3), (SWITCH, 12)]: where the window starts and,
    optionally, where it ends. ValueError for anything else."""
    ends = spec.split("..")
    if len(ends) > 2:
        raise ValueError(f"not a concept window: {spec!r} (at most one '..')")
    parsed = []
    for end in ends:
        found = _WINDOW.match(end.strip())
        if found is None or found["kind"] not in _CODE_OF_NAME:
            raise ValueError(f"not a concept window: {spec!r} (an event kind such as 'switch' "
                             f"or 'poll', optionally followed by '#N', and optionally '..' "
                             f"and another)")
        parsed.append((_CODE_OF_NAME[found["kind"]], int(found["nth"] or 1)))
    return parsed


def window_range(trace: Trace, spec: str) -> tuple[float | None, float | None]:
    """When the lesson starts and ends: the times of the events the spec names, each None
    when the spec has no such end or the trace no such event (the run ended before it)."""
    if not spec:
        return None, None
    found: list[float | None] = []
    codes = np.frombuffer(trace.code, dtype=np.int8) if len(trace) else np.empty(0, np.int8)
    for code, nth in parse_window(spec):
        matches = np.flatnonzero(codes == code)
        found.append(float(trace.ts[int(matches[nth - 1])]) if len(matches) >= nth else None)
    del codes  # a view of the trace's column, which must be free to grow again
    start = found[0]
    end = found[1] if len(found) > 1 else None
    if start is not None and end is not None and end <= start:
        end = None
    return start, end


def scenario_window(trace: Trace) -> str:
    """The concept window declared by the scenario this trace ran, or ""."""
    if trace.meta.get("kind") != "scenario":
        return ""
    try:
        return get(str(trace.meta.get("target", ""))).window
    except UnknownScenarioError:
        return ""


def lesson_range(trace: Trace, *, full: bool = False) -> tuple[float, float]:
    """The range a first view and a figure show: from the scenario's concept window (or the
    first event, with `full` or without a window) to the last event, with a margin either
    side."""
    if not len(trace):
        return 0.0, 0.0
    start = float(trace.first_event_ns)
    end = float(trace.duration_ns)
    if not full:
        begins, stops = window_range(trace, scenario_window(trace))
        start = begins if begins is not None else start
        end = stops if stops is not None else end
    width = end - start
    return max(start - width * LEFT_MARGIN, 0.0), end + width * RIGHT_MARGIN


def figure_row_height(rows: int) -> float:
    for most, height in FIGURE_ROW_HEIGHTS:
        if rows <= most:
            return height
    return FIGURE_ROW_HEIGHTS[-1][1]


def figure_height(rows: int, chrome_px: float) -> int:
    """An image height that fits `rows` lanes at a readable height below `chrome_px` of
    title, axis and legend; at most FIGURE_MAX_HEIGHT (the rest are told as "N more")."""
    wanted = chrome_px + max(rows, 1) * figure_row_height(rows)
    return int(min(max(wanted, chrome_px + 3 * FIGURE_MIN_ROW), FIGURE_MAX_HEIGHT))


__all__ = [
    "figure_height",
    "figure_row_height",
    "lesson_range",
    "parse_window",
    "scenario_window",
    "window_range",
]
