"""A trace's rows as the rest of Loopscope reads them one at a time: an event, a lane.

Their own module, without `from __future__ import annotations` (tracer.trace has it): with
it, a NamedTuple's field annotations are strings, and typing compiles each one (3.11-3.13)
when the class is made, which costs every traced run's command line its start-up
(tests/cli/test_startup_imports.py).
"""

from typing import Any, NamedTuple

from loopscope.tracer.events import CODE_NAMES, Source


class Event(NamedTuple):
    seq: int
    ts: int
    lane: int
    code: int
    other: int
    detail: dict[str, Any]
    source: Source | None

    @property
    def kind(self) -> str:
        return CODE_NAMES.get(self.code, f"code-{self.code}")


class LaneInfo(NamedTuple):
    id: int
    name: str
    kind: str
    parent: int
    spawn_seq: int
    spawn_ts: int
