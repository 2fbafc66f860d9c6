"""Chrome Trace Event JSON: the contract of DESIGN.md, checked on hand-built and real traces."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from loopscope.tracer.events import STATE_NAMES, Code, FakeClock, LaneKind, ended_cancelled
from loopscope.tracer.export_chrome import micros, save_chrome_json, thread_id, write_chrome_json
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.runner import RunResult
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace


def _export(trace: Trace) -> dict[str, Any]:
    out = io.StringIO()
    write_chrome_json(trace, out)
    document: dict[str, Any] = json.loads(out.getvalue())
    return document


def _of(document: dict[str, Any], ph: str) -> list[dict[str, Any]]:
    return [event for event in document["traceEvents"] if event["ph"] == ph]


def _hand_built() -> Trace:
    """main sleeps, the loop polls and wakes it on a timer, main sends 3 into a generator."""
    trace = Trace(meta={"target": "demo.py"})
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    main = rec.spawn("main", LaneKind.MAIN)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    rec.state(main, Code.RUNNING, source=rec.source("/src/demo.py", 3, "main"))
    clock.advance(1000)
    rec.state(main, Code.SLEEPING, ("delay_s", 0.0000025, "deadline_ns", 3500))
    rec.state(loop, Code.POLL, ("timeout_s", 0.000002))
    clock.advance(2000)
    rec.annotate(loop, ("readable", (), "writable", ()))
    rec.state(loop, Code.DISPATCH)
    clock.advance(500)
    rec.wake(main, loop, ("cause", "timer", "deadline_ns", 3500))
    clock.advance(500)
    rec.state(main, Code.RUNNING, source=rec.source("/src/demo.py", 4, "main"))
    clock.advance(500)
    rec.record(main, Code.OUTPUT, detail=rec.detail(("text", 'say "hi"')))
    gen = rec.spawn("numbers", LaneKind.GENERATOR, parent=main)
    clock.advance(500)
    rec.switch(main, gen, ("via", "send", "value", "3"))
    clock.advance(100)
    rec.state(main, Code.BLOCKED, ("on", "numbers"), other=gen)
    clock.advance(100)
    rec.state(gen, Code.RUNNING)
    clock.advance(800)
    rec.end(gen, result=None)
    rec.state(main, Code.RUNNING)
    clock.advance(1000)
    rec.end(main, result=42)
    rec.close()
    return trace


def test_each_lane_is_a_named_thread_loop_lanes_first() -> None:
    document = _export(_hand_built())
    names = {e["tid"]: e["args"]["name"] for e in _of(document, "M")
             if e["name"] == "thread_name"}
    order = {e["tid"]: e["args"]["sort_index"] for e in _of(document, "M")
             if e["name"] == "thread_sort_index"}
    assert names == {1: "main", 2: "asyncio loop", 3: "numbers"}
    assert sorted(order, key=order.__getitem__) == [2, 1, 3]
    process = [e for e in _of(document, "M") if e["name"] == "process_name"]
    assert [e["args"]["name"] for e in process] == ["loopscope: demo.py"]


def test_each_state_span_is_one_complete_slice_with_its_detail() -> None:
    document = _export(_hand_built())
    slices = sorted((
        (e["tid"], e["name"], round(e["ts"] * 1000), round(e["dur"] * 1000), e["args"])
        for e in _of(document, "X")
    ), key=lambda row: (row[0], row[2]))
    source_3 = {"source": "/src/demo.py:3", "function": "main"}
    source_4 = {"source": "/src/demo.py:4", "function": "main"}
    assert slices == [
        (1, "running", 0, 1000, source_3),
        (1, "sleeping", 1000, 2500, {"delay_s": 0.0000025, "deadline_ns": 3500}),
        (1, "ready", 3500, 500, {"cause": "timer", "deadline_ns": 3500}),
        (1, "running", 4000, 1100, source_4),
        (1, "blocked", 5100, 900, {"on": "numbers"}),
        (1, "running", 6000, 1000, {}),
        (2, "poll", 1000, 2000, {"timeout_s": 0.000002, "readable": [], "writable": []}),
        (2, "dispatch", 3000, 4000, {}),
        (3, "running", 5200, 800, {}),
    ]


def test_wakes_and_switches_are_flows_bound_inside_their_slices() -> None:
    document = _export(_hand_built())
    starts = {e["id"]: e for e in _of(document, "s")}
    finishes = {e["id"]: e for e in _of(document, "f")}
    assert starts.keys() == finishes.keys() and len(starts) == 2
    flows = sorted(
        (starts[i]["name"], starts[i]["tid"], round(starts[i]["ts"] * 1000),
         finishes[i]["tid"], round(finishes[i]["ts"] * 1000), finishes[i]["bp"])
        for i in starts
    )
    assert flows == [
        # the loop's dispatch slice wakes main's ready slice
        ("switch", 1, 5000, 3, 5201, "e"),
        # main's running slice sends into the generator's running slice
        ("wake", 2, 3500, 1, 3501, "e"),
    ]
    wake = next(e for e in starts.values() if e["name"] == "wake")
    assert wake["args"] == {"cause": "timer", "deadline_ns": 3500}
    assert all(starts[i]["cat"] == finishes[i]["cat"] == starts[i]["name"] for i in starts)


def test_prints_and_ends_are_thread_instants() -> None:
    document = _export(_hand_built())
    instants = [(e["name"], e["tid"], round(e["ts"] * 1000), e["s"], e["args"])
                for e in _of(document, "i")]
    assert instants == [
        ("output", 1, 4500, "t", {"text": 'say "hi"'}),
        ("end", 3, 6000, "t", {"result": "None"}),
        ("end", 1, 7000, "t", {"result": "42"}),
    ]


def test_micros_is_exact_to_the_nanosecond() -> None:
    assert micros(0) == "0.000"
    assert micros(999) == "0.999"
    assert micros(1_234_567_891) == "1234567.891"
    assert micros(-1500) == "-1.500"
    assert thread_id(0) == 1


def _slice_at(slices: list[dict[str, Any]], tid: int, ts: float) -> dict[str, Any]:
    """The one slice of thread `tid` enclosing `ts` (a flow event binds to it)."""
    enclosing = [s for s in slices if s["tid"] == tid and s["ts"] <= ts <= s["ts"] + s["dur"]]
    assert enclosing, f"no slice on tid {tid} encloses {ts}"
    strictly = [s for s in enclosing if s["ts"] < ts < s["ts"] + s["dur"]]
    return (strictly or enclosing)[0]


def _starts_a_span_after(trace: Trace, lane: int, seq: int) -> bool:
    return any(
        trace.lane[later] == lane and trace.code[later] < Code.SPAWN
        for later in range(seq + 1, len(trace))
    )


def test_a_real_child_trace_satisfies_the_contract(
    record_scenario: Callable[..., RunResult], tmp_path: Path
) -> None:
    trace = record_scenario("producer-consumer").trace
    spans = derive_spans(trace)
    path = tmp_path / "pc.json"
    save_chrome_json(trace, path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["otherData"]["target"] == "producer-consumer"

    names = {e["tid"]: e["args"]["name"] for e in _of(document, "M")
             if e["name"] == "thread_name"}
    assert names == {thread_id(info.id): info.name for info in trace.lanes}

    slices = _of(document, "X")
    assert len(slices) == len(spans)
    assert {s["name"] for s in slices} <= set(STATE_NAMES.values())
    for tid in names:
        mine = sorted((s["ts"], s["ts"] + s["dur"]) for s in slices if s["tid"] == tid)
        assert all(a[1] <= b[0] + 1e-9 for a, b in itertools.pairwise(mine)), (
            "a lane overlaps itself")

    starts = {e["id"]: e for e in _of(document, "s")}
    finishes = {e["id"]: e for e in _of(document, "f")}
    switches = [seq for seq in range(len(trace)) if trace.code[seq] == Code.SWITCH]
    assert len(switches) > 4 and starts.keys() == finishes.keys() == set(switches)
    for seq in switches:
        start, finish = starts[seq], finishes[seq]
        assert (start["tid"], finish["tid"]) == (thread_id(trace.lane[seq]),
                                                 thread_id(trace.other[seq]))
        assert start["ts"] <= finish["ts"]
        _slice_at(slices, start["tid"], start["ts"])
        target = _slice_at(slices, finish["tid"], finish["ts"])
        if _starts_a_span_after(trace, trace.other[seq], seq):
            assert target["ts"] * 1000 >= trace.ts[seq] - 1  # the slice the hand-off leads into
        # else the target ends without running again (3.13's close() of a suspended
        # generator): the arrow lands in the target's last slice, which it ends.


# -- the streamed export against the whole-trace reference -------------------------------------

def _reference_events(trace: Trace) -> list[dict[str, Any]]:
    """The export as the contract defines it, computed the plain way from the whole fold
    (tracer.spans.derive_spans): a slice per span, a flow per arrow bound to the span open at
    it on the source lane and the next span on the target lane, the lane metadata, the
    instants. (What the export wrote before it streamed, in another order.)"""
    from bisect import bisect_left, bisect_right

    from loopscope.tracer.query import lane_order

    spans = derive_spans(trace)
    events: list[dict[str, Any]] = [{"ph": "M", "name": "process_name", "pid": 1, "tid": 0,
                                     "args": {"name": f"loopscope: {trace.meta['target']}"}}]
    for position, (lane, name, _kind) in enumerate(lane_order(trace, spans)):
        events.append({"ph": "M", "name": "thread_name", "pid": 1, "tid": lane + 1,
                       "args": {"name": name}})
        events.append({"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": lane + 1,
                       "args": {"sort_index": position}})

    def args_of(detail: dict[str, Any], source: int) -> dict[str, Any]:
        args = dict(detail)
        if source:
            filename, line, function = trace.sources[source]
            args.update(source=f"{filename}:{line}", function=function)
        return args

    for index in range(len(spans)):
        events.append({"ph": "X", "name": STATE_NAMES[spans.state[index]], "cat": "state",
                       "pid": 1, "tid": spans.lane[index] + 1,
                       "ts": float(micros(spans.start[index])),
                       "dur": float(micros(spans.end[index] - spans.start[index])),
                       "args": args_of(spans.detail_of(index, trace), spans.source[index])})
    starts = {lane: [spans.start_seq[i] for i in indices]
              for lane, indices in spans.by_lane.items()}

    def inside(index: int, ts: int) -> int:
        start, end = spans.start[index], spans.end[index]
        return start if end - start < 2 else min(max(ts, start + 1), end - 1)

    for seq in spans.arrow_seq:
        wake = trace.code[seq] == Code.WAKE
        source = trace.other[seq] if wake else trace.lane[seq]
        target = trace.lane[seq] if wake else trace.other[seq]
        if source < 0 or target < 0 or not starts.get(source) or not starts.get(target):
            continue
        at = bisect_right(starts[source], seq) - 1
        after = bisect_left(starts[target], seq + 1)
        if after == len(starts[target]):
            after = bisect_right(starts[target], seq) - 1
        if at < 0 or after < 0:
            continue
        source_span, target_span = spans.by_lane[source][at], spans.by_lane[target][after]
        begin = inside(source_span, trace.ts[seq])
        finish = max(begin, inside(target_span, spans.start[target_span]))
        name = "wake" if wake else "switch"
        events.append({"ph": "s", "id": seq, "name": name, "cat": name, "pid": 1,
                       "tid": source + 1, "ts": float(micros(begin)),
                       "args": trace.details[trace.detail[seq]]})
        events.append({"ph": "f", "bp": "e", "id": seq, "name": name, "cat": name, "pid": 1,
                       "tid": target + 1, "ts": float(micros(finish))})
    for seq, code in enumerate(trace.code):
        if code in (Code.OUTPUT, Code.END, Code.MARK):
            name = {Code.OUTPUT: "output", Code.END: "end", Code.MARK: "mark"}[Code(code)]
            events.append({"ph": "i", "s": "t", "name": name, "cat": name, "pid": 1,
                           "tid": trace.lane[seq] + 1, "ts": float(micros(trace.ts[seq])),
                           "args": trace.details[trace.detail[seq]]})
    return events


def _scrambled(seed: int, lanes: int = 9, events: int = 3000) -> Trace:
    """A seeded jumble of every kind of event across a few lanes: states, wakes and switches
    both ways (some from lanes with no span yet, or ended), annotations, value rows, prints,
    marks and ends."""
    import random

    chance = random.Random(seed)
    trace = Trace(meta={"target": f"scrambled {seed}"})
    clock = FakeClock()
    rec = Recorder(trace, clock=clock, batch_size=64)
    ids = [rec.spawn(f"lane-{n}", LaneKind.GENERATOR if n % 3 else LaneKind.LOOP)
           for n in range(lanes)]
    sent = rec.detail(("via", "send"))
    keyed = rec.detail(("value_key", "text", "stream", "stderr"))
    # a sleep's detail and its timer's wake as asyncio records them: value rows holding an int
    slept = rec.detail(("delay_s", 0.25, "int_key", "deadline_ns"))
    timer = rec.detail(("cause", "timer", "int_key", "deadline_ns"))
    for step in range(events):
        clock.advance(chance.choice((0, 1, 2, 3, 700, 5000)))
        lane, other = chance.choice(ids), chance.choice(ids)
        roll = chance.random()
        if roll < 0.4:
            state = chance.choice((Code.RUNNING, Code.READY, Code.IO_WAIT, Code.BLOCKED))
            rec.state(lane, state, ("fd", step % 5),
                      source=rec.source("/src/s.py", 1 + step % 7, "f") if step % 2 else 0)
        elif roll < 0.55:
            rec.wake(lane, other, ("cause", "timer"))
        elif roll < 0.75:
            rec.handoff(lane, other, rec.value_row(sent, f"'v{step}' \"q\" ü"), Code.BLOCKED,
                        0, 0)
        elif roll < 0.8:
            rec.annotate(lane, ("readable", (step,)))
        elif roll < 0.85:
            rec.record(lane, Code.OUTPUT, detail=rec.value_row(keyed, f"line {step}"))
        elif roll < 0.86:
            deadline = "not a number" if step % 50 == 0 else str(step * 1_000_003)
            rec.record(lane, Code.SLEEPING, detail=rec.value_row(slept, deadline))
            rec.record(lane, Code.WAKE, other, rec.value_row(timer, deadline))
        elif roll < 0.88:
            rec.record(lane, Code.MARK, detail=rec.detail(("text", "paused")))
        elif roll < 0.9:
            rec.end(lane, result=step)
        else:
            rec.switch(lane, other, ("via", "next"))
    rec.close()
    return trace


def _canonical(events: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(event, sort_keys=True) for event in events)


@pytest.mark.parametrize("window", [1, 7, 64, 1 << 16])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_streamed_export_writes_exactly_the_events_of_the_whole_fold(
    window: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folded a window at a time, with arrows waiting across windows for their slices, the
    export holds the same events as the reference computed from the whole fold at once."""
    import loopscope.tracer.export_chrome as export_chrome

    monkeypatch.setattr(export_chrome, "_WINDOW", window)
    for trace in (_scrambled(seed), _hand_built()):
        document = _export(trace)
        assert _canonical(document["traceEvents"]) == _canonical(_reference_events(trace))


# -- real runs of every kind against the reference ---------------------------------------------

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"
_REAL_RUNS = {
    # (what to run, model): a scenario id, or a program of tests/programs
    "asyncio": ("asyncio-echo", None),
    "asyncio timeouts": (str(PROGRAMS / "asyncio_timeouts.py"), None),
    "asyncio cancelled and failed": (str(PROGRAMS / "asyncio_cancel_and_fail.py"), None),
    "gevent": ("gevent-sockets", None),
    "generators": (str(PROGRAMS / "gen_pipeline.py"), "generator"),
    "generator failed": (str(PROGRAMS / "raises_in_generator.py"), "generator"),
    "select": ("select-server", None),
}


@pytest.mark.parametrize("window", [5, 1 << 16])
@pytest.mark.parametrize("run", sorted(_REAL_RUNS))
def test_real_runs_export_exactly_the_events_of_the_whole_fold(
    run: str, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Recorded runs of each concurrency kind, including tasks cancelled and failed, export
    the reference's events, whole or in windows of a few events (every span and arrow then
    crosses windows)."""
    import loopscope.tracer.export_chrome as export_chrome
    from loopscope.tracer.runner import record_sync
    from loopscope.tracer.target import resolve_target

    what, model = _REAL_RUNS[run]
    trace = _recorded(what, model, record_sync, resolve_target)
    monkeypatch.setattr(export_chrome, "_WINDOW", window)
    assert len(trace) > 20
    if run == "asyncio cancelled and failed":
        errors = [trace.details[trace.detail[seq]].get("error")
                  for seq in range(len(trace)) if trace.code[seq] == Code.END]
        assert any(error and ended_cancelled({"error": error}) for error in errors)
        assert any(error and not ended_cancelled({"error": error}) for error in errors)
    assert _canonical(_export(trace)["traceEvents"]) == _canonical(_reference_events(trace))


_RECORDED: dict[tuple[str, str | None], Trace] = {}


def _recorded(what: str, model: str | None, record_sync: Any, resolve_target: Any) -> Trace:
    """The run's trace, recorded once per session (a program that fails on purpose counts)."""
    if (what, model) not in _RECORDED:
        result = record_sync(resolve_target(what, (), model), timeout=60.0)
        if result.status not in ("ok", "error"):
            pytest.fail(f"{what}: {result.status} {result.error}\n{result.stderr}")
        _RECORDED[what, model] = result.trace
    return _RECORDED[what, model]


def test_a_trace_with_held_time_cut_exports_the_events_of_the_whole_fold() -> None:
    from loopscope.tracer.held_time import HELD_CUT_NS, cut_held_time
    from tests.tracer.test_held_time import _held_twice

    trace, _hub, _task = _held_twice()
    trace.meta["target"] = "held"
    cut = cut_held_time(trace)
    assert cut.meta[HELD_CUT_NS] > 0
    assert _canonical(_export(cut)["traceEvents"]) == _canonical(_reference_events(cut))
