"""A large saved trace made directly in columns (no child run), for the loading benchmarks.

    .venv/bin/python bench/big_trace.py EVENTS PATH

The events are an asyncio-like run: one loop lane and `tasks` task lanes, the loop
dispatching a task that is woken, runs and sleeps, then polling again (six events a turn),
timestamps 100 ns apart. Written with numpy in a few seconds however many events it has.
"""

from __future__ import annotations

import sys
from array import array
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_trace(events: int, tasks: int = 100) -> object:
    """A Trace of about `events` events on 1 + `tasks` lanes."""
    from loopscope.tracer.events import NO_LANE, Code, LaneKind
    from loopscope.tracer.trace import DetailTable, Trace

    details = [{}, {"name": "asyncio loop", "kind": LaneKind.LOOP},
               *({"name": f"task-{n}", "kind": LaneKind.TASK} for n in range(tasks)),
               {"cause": "timer"}, {"delay_s": 0.001}]
    wake_detail, sleep_detail = len(details) - 2, len(details) - 1
    spawns = 1 + tasks
    turns = max(1, (events - spawns) // 6)
    count = spawns + 6 * turns
    lane = np.empty(count, np.int32)
    code = np.empty(count, np.int8)
    other = np.full(count, NO_LANE, np.int32)
    detail = np.zeros(count, np.int32)
    # the spawns: the loop, then each task with the loop as its parent
    lane[:spawns] = np.arange(spawns)
    code[:spawns] = Code.SPAWN
    other[1:spawns] = 0
    detail[:spawns] = np.arange(1, spawns + 1)
    # the turns: loop dispatch, wake(task by loop), ready, running, sleeping, loop poll
    task = 1 + np.arange(turns) % tasks
    body = slice(spawns, None)
    turn_lane = np.stack([np.zeros(turns, np.int32), task, task, task, task,
                          np.zeros(turns, np.int32)], axis=1)
    turn_code = np.array([Code.DISPATCH, Code.WAKE, Code.READY, Code.RUNNING, Code.SLEEPING,
                          Code.POLL], np.int8)
    turn_other = np.array([NO_LANE, 0, NO_LANE, NO_LANE, NO_LANE, NO_LANE], np.int32)
    turn_detail = np.array([0, wake_detail, 0, 0, sleep_detail, 0], np.int32)
    lane[body] = turn_lane.reshape(-1)
    code[body] = np.tile(turn_code, turns)
    other[body] = np.tile(turn_other, turns)
    detail[body] = np.tile(turn_detail, turns)
    ts = np.arange(count, dtype=np.int64) * 100
    trace = Trace(details=DetailTable(details))
    trace.meta.update(target="big-trace", model="asyncio", kind="script", status="ok")
    columns = (array("q", ts.tobytes()), array("i", lane.tobytes()), array("b", code.tobytes()),
               array("i", other.tobytes()), array("i", detail.tobytes()),
               array("i", np.zeros(count, np.int32).tobytes()))
    trace.extend_columns(0, columns)
    return trace


def write_trace(events: int, path: Path) -> int:
    """Saves a trace of about `events` events at `path`; returns how many it has."""
    from loopscope.tracer.native import save_native

    trace = make_trace(events)
    save_native(trace, path)  # type: ignore[arg-type]
    return len(trace)  # type: ignore[arg-type]


if __name__ == "__main__":
    made = write_trace(int(sys.argv[1]), Path(sys.argv[2]))
    print(f"{made:,} events in {sys.argv[2]}")
