"""The asyncio scenarios, each recorded in a real child: DESIGN.md's observation on the trace.

Durations are only bounded with the slack the programs' own sleeps give (e.g. two overlapping
one-second sleeps must take less than the two-second sum, whatever the machine's load).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import pytest

from loopscope.tracer.events import Code, LaneKind
from loopscope.tracer.narrate import narration_line
from loopscope.tracer.query import SpanRow, lane_named, lanes, span_rows
from loopscope.tracer.runner import RunResult, record_sync
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.step_lines import lane_lines
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace

pytestmark = pytest.mark.slow

Recorded = Callable[..., RunResult]
S = 1_000_000_000


def spans_of(trace: Trace, lane: int, state: str | None = None) -> list[SpanRow]:
    return [
        row for row in span_rows(trace, derive_spans(trace), lane)
        if state is None or row.state == state
    ]


def outputs(trace: Trace) -> list[tuple[str, str]]:
    """(lane name, text) of every printed line, in order."""
    return [(trace.lane_name(e.lane), e.detail["text"]) for e in trace.events()
            if e.kind == "output"]


def wakes_onto(trace: Trace, lane: int) -> list[tuple[str, dict[str, object]]]:
    """(waker name, cause detail) of every wake arrow into a lane."""
    return [(trace.lane_name(e.other), e.detail) for e in trace.events()
            if e.kind == "wake" and e.lane == lane]


def lanes_window_ns(trace: Trace, lane_ids: set[int]) -> int:
    """From the first to the last event of these lanes: the run's own time for them, without
    the start-up (imports, a server starting) that a loaded machine stretches."""
    stamps = [trace.ts[seq] for seq in range(len(trace)) if trace.lane[seq] in lane_ids]
    return max(stamps) - min(stamps)


def all_overlap(rows: list[SpanRow]) -> bool:
    """Whether one instant lies inside every one of the spans."""
    return max(r.start for r in rows) < min(r.end for r in rows)


def test_asyncio_hello_both_print_before_either_resumes_in_about_one_second(
    record_scenario: Recorded,
) -> None:
    trace = record_scenario("asyncio-hello").trace
    first, second = lane_named(trace, "hello-1"), lane_named(trace, "hello-2")

    printed = [text for _, text in outputs(trace)]
    befores = [printed.index(f"Hello from {who}!") for who in ("first", "second")]
    afters = [printed.index(f"Hello again from {who}!") for who in ("first", "second")]
    assert max(befores) < min(afters)

    sleeps = [spans_of(trace, lane.id, "sleeping") for lane in (first, second)]
    assert [len(s) for s in sleeps] == [1, 1]
    assert all(s[0].detail["delay_s"] == 1 for s in sleeps)
    assert all_overlap([sleeps[0][0], sleeps[1][0]])
    for lane in (first, second):
        assert [cause["cause"] for _, cause in wakes_onto(trace, lane.id)] == ["timer"]
    # both sleep 1 s at once: about 1 s from the first task's start to the last one's end
    assert 1 * S <= lanes_window_ns(trace, {first.id, second.id}) < 1.9 * S


def test_asyncio_no_await_tasks_run_one_after_another(record_scenario: Recorded) -> None:
    trace = record_scenario("asyncio-no-await").trace
    counters = [lane_named(trace, f"count-{i}") for i in (1, 2, 3)]

    running = [spans_of(trace, lane.id, "running") for lane in counters]
    assert [len(r) for r in running] == [1, 1, 1]
    steps = [r[0] for r in running]
    assert steps[0].end <= steps[1].start and steps[1].end <= steps[2].start
    for lane in counters:
        assert wakes_onto(trace, lane.id) == []
        assert {row.state for row in spans_of(trace, lane.id)} == {"ready", "running"}

    printed = [(lane, text) for lane, text in outputs(trace) if lane.startswith("count-")]
    assert printed == [(f"count-{i}", f"count-{i}: {n}") for i in (1, 2, 3) for n in (1, 2, 3)]


def test_asyncio_wget_io_waits_overlap_and_the_total_is_the_slowest(
    record_scenario: Recorded,
) -> None:
    trace = record_scenario("asyncio-wget").trace
    hosts = ["www.sina.com.cn", "www.sohu.com", "www.163.com"]
    fetches = [lane_named(trace, host) for host in hosts]

    longest_waits = []
    for lane in fetches:
        waits = spans_of(trace, lane.id, "io-wait")
        assert waits, f"{lane.name} never waited for its socket"
        assert all(w.detail["mode"] in ("read", "write") and "fd" in w.detail for w in waits)
        assert any(w.detail.get("peer", "").startswith("127.0.0.1:") for w in waits)
        longest_waits.append(max(waits, key=lambda w: w.duration))
        assert any(cause["cause"] == "fd" for _, cause in wakes_onto(trace, lane.id))
    # the three long waits for the servers' answers are in progress at the same time
    assert all_overlap(longest_waits)
    fds = {w.detail["fd"] for w in longest_waits}
    assert len(fds) == 3

    ends = {trace.lane_name(e.lane): e.ts for e in trace.events() if e.kind == "end"}
    assert ends[hosts[0]] < ends[hosts[1]] < ends[hosts[2]]
    # the slowest is 0.9 s, the sum 1.8 s
    assert 0.9 * S <= lanes_window_ns(trace, {lane.id for lane in fetches}) < 1.7 * S


def test_asyncio_echo_clients_and_handlers_wait_on_their_fds_and_fd_readiness_wakes_them(
    record_scenario: Recorded,
) -> None:
    trace = record_scenario("asyncio-echo").trace
    clients = [lane_named(trace, f"client-{i}") for i in (1, 2, 3)]
    handlers = lanes(trace, kind=LaneKind.TASK, name="echo")
    assert len(handlers) == 3

    client_fds = []
    for lane in [*clients, *handlers]:
        reads = [w for w in spans_of(trace, lane.id, "io-wait") if w.detail["mode"] == "read"]
        assert len(reads) >= 3, f"{lane.name} waited to read {len(reads)} times"
        fds = {w.detail["fd"] for w in reads}
        assert len(fds) == 1, f"{lane.name} read from several fds: {fds}"
        if lane in clients:
            client_fds.append(fds.pop())
        fd_wakes = [(waker, c) for waker, c in wakes_onto(trace, lane.id) if c["cause"] == "fd"]
        assert len(fd_wakes) >= 3
        assert all(waker == "asyncio loop" for waker, _ in fd_wakes)
    assert len(set(client_fds)) == 3

    # every fd wake follows a poll that returned that fd ready in that mode
    ready: dict[str, set[int]] = {"read": set(), "write": set()}
    for event in trace.events():
        if event.kind == "annotate" and "readable" in event.detail:
            ready = {"read": set(event.detail["readable"]),
                     "write": set(event.detail["writable"])}
        elif event.kind == "wake" and event.detail["cause"] == "fd":
            assert event.detail["fd"] in ready[str(event.detail["mode"])]

    printed = [text for lane, text in outputs(trace) if lane.startswith("client-")]
    assert len(printed) == 9


def test_aiohttp_requests_overlap_on_the_handler_lanes(record_scenario: Recorded) -> None:
    trace = record_scenario("aiohttp-requests").trace

    handler_sleeps = [
        row
        for lane in lanes(trace, kind=LaneKind.TASK)
        for row in spans_of(trace, lane.id, "sleeping")
        if row.detail["delay_s"] == 0.5
    ]
    assert len(handler_sleeps) == 4
    assert len({row.lane for row in handler_sleeps}) == 4, "handlers must run on their own lanes"
    # each handler lane says the request it serves and the function that serves it
    assert sorted(trace.lane_name(lane).split(" (")[0]
                  for lane in {row.lane for row in handler_sleeps}) == [
        "GET / → index", "GET /hello/alice → hello", "GET /hello/bob → hello",
        "GET /hello/carol → hello"]
    assert all_overlap(handler_sleeps)

    answered = [text for _, text in outputs(trace) if "-> 200" in text]
    assert len(answered) == 4
    # four half-second handlers: together about half a second, well under the 2 s sum
    assert 0.5 * S <= lanes_window_ns(trace, {row.lane for row in handler_sleeps}) < 1.5 * S


def handler_await_line(function: Callable[..., object]) -> tuple[str, int]:
    """(file name, line) of the `await asyncio.sleep(...)` in a scenario's handler."""
    lines, first = inspect.getsourcelines(function)
    offset = next(i for i, text in enumerate(lines) if "await asyncio.sleep" in text)
    return Path(inspect.getfile(function)).name, first + offset


def test_aiohttp_handler_lanes_step_at_the_handlers_await_not_in_aiohttp(
        record_scenario: Recorded) -> None:
    from loopscope.scenarios import aiohttp_requests

    trace = record_scenario("aiohttp-requests").trace
    handlers = {info.id: info.name.split(" (")[0] for info in trace.lanes
                if " → " in info.name}
    assert len(handlers) == 4
    expected = {"index": handler_await_line(aiohttp_requests.index),
                "hello": handler_await_line(aiohttp_requests.hello)}
    for lane, name in handlers.items():
        steps = [(e.kind, (Path(e.source[0]).name, e.source[1])
                  if e.source is not None else None)
                 for e in trace.events() if e.lane == lane and e.kind in (
                     "running", "sleeping", "end")]
        # The first step starts in aiohttp's _handle_request, before the handler is called;
        # the step after the sleep resumes in the user's handler, at its await.
        await_at = expected[name.rsplit(" → ", 1)[1]]
        assert [kind for kind, _ in steps] == ["running", "sleeping", "running", "end"], name
        assert steps[0][1] is not None and steps[0][1][0] == "web_protocol.py"
        assert steps[2][1] == await_at, name
        # the source pane: while the handler sleeps, its lane is on the handler's await line
        lines = lane_lines(trace)
        sleeping = next(e.seq for e in trace.events() if e.lane == lane and e.kind == "sleeping")
        run = next(r for at_lane, r in lines.at(sleeping) if at_lane == lane)
        assert (Path(lines.line_at(lane, run, sleeping)[0]).name,
                lines.line_at(lane, run, sleeping)[1]) == await_at
    told = [narration_line(trace, seq) or "" for seq in range(len(trace))
            if trace.lane[seq] in handlers and trace.code[seq] == Code.RUNNING]
    assert sum(f"runs at aiohttp_requests.py:{expected['hello'][1]}: await asyncio.sleep"
               in sentence for sentence in told) == 3


def test_an_unseen_asyncio_script_with_arguments_is_traced(tmp_path: Path) -> None:
    script = tmp_path / "greeters.py"
    script.write_text(
        "import asyncio\n"
        "import sys\n"
        "\n"
        "async def greet(name: str) -> str:\n"
        "    await asyncio.sleep(0.05)\n"
        "    print(f'hello {name}')\n"
        "    return name.upper()\n"
        "\n"
        "async def main(names: list[str]) -> None:\n"
        "    tasks = [asyncio.create_task(greet(n), name=f'greet-{n}') for n in names]\n"
        "    print(await asyncio.gather(*tasks))\n"
        "\n"
        "asyncio.run(main(sys.argv[1:]))\n",
        encoding="utf-8",
    )
    target = resolve_target(str(script), ("ann", "bob"))
    assert target.model == "asyncio"

    result = record_sync(target, timeout=60)

    assert result.ok, result.error
    trace = result.trace
    for name in ("ann", "bob"):
        lane = lane_named(trace, f"greet-{name}")
        assert len(spans_of(trace, lane.id, "sleeping")) == 1
        assert (f"greet-{name}", f"hello {name}") in outputs(trace)
    assert ("main (Task-1)", "['ANN', 'BOB']") in outputs(trace)
