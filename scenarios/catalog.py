"""Finds the built-in scenarios and reads their metadata without running them."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from loopscope.scenarios import Scenario

_HERE = Path(__file__).resolve().parent
_NOT_SCENARIOS = {"__init__", "catalog"}


class UnknownScenarioError(LookupError):
    pass


def _read_metadata(path: Path) -> Scenario | None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "SCENARIO" for t in node.targets)
            and isinstance(node.value, ast.Call)
        ):
            fields = {kw.arg: ast.literal_eval(kw.value) for kw in node.value.keywords if kw.arg}
            return Scenario(**fields, module=f"loopscope.scenarios.{path.stem}")
    return None


@functools.cache
def all_scenarios() -> tuple[Scenario, ...]:
    """Every scenario, in the order of DESIGN.md's table (the `ORDER` below), then by id."""
    found = [
        scenario
        for path in sorted(_HERE.glob("*.py"))
        if path.stem not in _NOT_SCENARIOS and (scenario := _read_metadata(path)) is not None
    ]
    rank = {sid: i for i, sid in enumerate(ORDER)}
    return tuple(sorted(found, key=lambda s: (rank.get(s.id, len(rank)), s.id)))


def get(scenario_id: str) -> Scenario:
    for scenario in all_scenarios():
        if scenario.id == scenario_id:
            return scenario
    known = ", ".join(s.id for s in all_scenarios())
    raise UnknownScenarioError(f"unknown scenario '{scenario_id}' (known: {known})")


ORDER = (
    "producer-consumer",
    "round-robin",
    "gevent-switching",
    "greenlet-manual",
    "gevent-sockets",
    "select-server",
    "selectors-server",
    "asyncio-hello",
    "asyncio-no-await",
    "asyncio-wget",
    "asyncio-echo",
    "aiohttp-requests",
    "blocking-call",
    "zero-copy",
    "trio-hello",
    "trio-echo",
)
