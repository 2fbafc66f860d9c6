"""Trace.lanes read from the SPAWN events on demand: the same LaneInfos, in spawn order, as
the recorder spawned, through every way consumers read them."""

from __future__ import annotations

import pytest

from loopscope.tracer.events import NO_LANE, Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import LaneInfo, SpawnedLanes, Trace


def recorded() -> Trace:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    loop = recorder.spawn("asyncio loop", LaneKind.LOOP)
    first = recorder.spawn("main (Task-1)", LaneKind.TASK, parent=loop)
    recorder.record(first, Code.RUNNING)
    recorder.flush()  # the next lanes arrive in a later batch
    recorder.spawn("worker (Task-2)", LaneKind.TASK, parent=first)
    recorder.spawn("worker (Task-2)", LaneKind.TASK, parent=first)  # a taken name
    recorder.close()
    return trace


def test_the_lanes_are_the_spawns_in_order() -> None:
    trace = recorded()
    assert isinstance(trace.lanes, SpawnedLanes)
    names = [(info.id, info.name, info.kind, info.parent) for info in trace.lanes]
    assert names == [
        (0, "asyncio loop", "loop", NO_LANE),
        (1, "main (Task-1)", "task", 0),
        (2, "worker (Task-2)", "task", 1),
        (3, "worker (Task-2) #2", "task", 1),
    ]
    for info in trace.lanes:
        assert trace.code[info.spawn_seq] == Code.SPAWN
        assert trace.ts[info.spawn_seq] == info.spawn_ts


def test_the_lanes_of_some_kinds_are_read_without_building_the_others() -> None:
    trace = recorded()
    lanes = trace.lanes
    assert isinstance(lanes, SpawnedLanes)
    assert [info.name for info in lanes.of_kinds({LaneKind.LOOP})] == ["asyncio loop"]
    assert list(lanes.of_kinds({LaneKind.GENERATOR})) == []
    assert len(lanes._built) == 1  # only the loop's LaneInfo was built
    tasks = [info.id for info in lanes.of_kinds({LaneKind.TASK, LaneKind.GENERATOR})]
    assert tasks == [1, 2, 3]


def test_indexing_slicing_and_equality_read_as_a_list_would() -> None:
    trace = recorded()
    as_list: list[LaneInfo] = list(trace.lanes)
    assert trace.lanes == as_list and as_list == trace.lanes
    assert trace.lanes[-1] == as_list[-1] and trace.lanes[1] == as_list[1]
    assert trace.lanes[1:3] == as_list[1:3]
    assert trace.lanes[1] is trace.lanes[1]  # built once, then kept
    with pytest.raises(IndexError):
        trace.lanes[4]
    with pytest.raises(IndexError):
        trace.lanes[-5]
    assert trace.lane_name(3) == "worker (Task-2) #2" and trace.lane_name(9) == "lane 9"
    assert Trace().lanes == []


def test_the_lanes_of_some_kinds_are_found_as_they_arrive_batch_by_batch() -> None:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    lanes = trace.lanes
    assert isinstance(lanes, SpawnedLanes)
    assert list(lanes.of_kinds({LaneKind.TASK})) == []  # no lanes yet
    loop = recorder.spawn("asyncio loop", LaneKind.LOOP)
    recorder.flush()
    assert [info.name for info in lanes.of_kinds({LaneKind.LOOP})] == ["asyncio loop"]
    assert list(lanes.of_kinds({LaneKind.TASK})) == []
    for number in range(3):
        recorder.spawn(f"task {number}", LaneKind.TASK, parent=loop)
        recorder.flush()
        assert [info.name for info in lanes.of_kinds({LaneKind.TASK})] == [
            f"task {n}" for n in range(number + 1)]
    recorder.spawn("gen", LaneKind.GENERATOR, extra=("role", "producer"))
    recorder.close()
    assert [info.id for info in lanes.of_kinds({LaneKind.GENERATOR, LaneKind.LOOP})] == [0, 4]


def test_lanes_spawned_with_interned_details_are_read_by_kind_too() -> None:
    # a trace from before lane names were value rows: each SPAWN's detail an interned dict
    trace = recorded()
    trace.details.append({"name": "old worker", "kind": LaneKind.TASK})
    trace.details.append({"name": "old loop", "kind": LaneKind.LOOP})
    seq = len(trace)
    trace.extend_columns(seq, ([seq + 10, seq + 11], [4, 5], [Code.SPAWN, Code.SPAWN],
                               [0, NO_LANE], [len(trace.details) - 2, len(trace.details) - 1],
                               [0, 0]))
    lanes = trace.lanes
    assert isinstance(lanes, SpawnedLanes)
    assert [info.name for info in lanes.of_kinds({LaneKind.LOOP})] == ["asyncio loop", "old loop"]
    assert [info.name for info in lanes.of_kinds({LaneKind.TASK})][-1] == "old worker"


def test_reading_the_first_lane_works_out_only_the_first_texts_ends() -> None:
    trace = recorded()
    values = trace.details.values
    assert trace.lane_name(0) == "asyncio loop"
    assert len(values._ends) == 1  # one row's end, not all four
    assert trace.lane_name(3) == "worker (Task-2) #2"
    assert len(values.ends) == len(values) == 4
