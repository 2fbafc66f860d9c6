"""Names for the program's locks, queues and events, from the line that made each one.

`lock = threading.Lock()` at bank.py:6 is "lock (bank.py:6)"; the third of several locks one
line made (a list of them) is "lock #3 (bank.py:6)"; a primitive whose line assigns it to
nothing is named by its kind ("Semaphore (app.py:9)"). Threads' waits (tracer.thread_waits)
and greenlets' (tracer.models._gevent_primitives) name their primitives alike.
"""

from __future__ import annotations

import os
import re

# `name = ...`, `self.name = ...`, `name: "Queue[int]" = ...`, not `name == ...`
_ASSIGNED = re.compile(r"^\s*(?:self\.)?([A-Za-z_][\w.]*)\s*(?::[^=]*)?=(?!=)")

Made = tuple[str, int, str, int]  # (file, line, kind, serial among the line's primitives)


class PrimitiveNames:
    """Counts the primitives each line of the program made, and names them."""

    def __init__(self) -> None:
        self.made_at: dict[tuple[str, int], int] = {}

    def made(self, filename: str, line: int, kind: str) -> Made:
        """One more primitive of `kind` made at `filename`:`line`: its place and serial."""
        where = (filename, line)
        serial = self.made_at[where] = self.made_at.get(where, 0) + 1
        return filename, line, kind, serial

    def name(self, made: Made) -> str:
        """The primitive's name, read from the line that made it."""
        import linecache  # here: it imports tokenize, which a run's start-up does not need

        filename, line, kind, serial = made
        assigned = _ASSIGNED.match(linecache.getline(filename, line)) if line else None
        label = assigned.group(1) if assigned else kind
        if self.made_at.get((filename, line), 0) > 1:
            label += f" #{serial}"  # one of several made by that line (a list of locks)
        return f"{label} ({os.path.basename(filename)}:{line})" if line else label
