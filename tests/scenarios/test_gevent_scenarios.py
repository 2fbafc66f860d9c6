"""What the greenlet and gevent scenarios must show; gevent runs only in child processes."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from loopscope.tracer.events import Code
from loopscope.tracer.query import lane_named, lanes, span_rows
from loopscope.tracer.runner import RunResult, record_sync
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace

Recorder = Callable[..., RunResult]


def arrows(trace: Trace) -> list[tuple[str, str, str]]:
    """(from, to, kind) of every switch and wake arrow, in order."""
    found = []
    for e in trace.events():
        if e.code == Code.SWITCH:
            found.append((trace.lane_name(e.lane), trace.lane_name(e.other), "switch"))
        elif e.code == Code.WAKE:
            found.append((trace.lane_name(e.other), trace.lane_name(e.lane), "wake"))
    return found


def end_seq(trace: Trace, name: str) -> int:
    lane = lane_named(trace, name).id
    return next(e.seq for e in trace.events() if e.code == Code.END and e.lane == lane)


def test_greenlet_manual_switches_follow_the_program(record_scenario: Recorder) -> None:
    trace = record_scenario("greenlet-manual").trace
    assert arrows(trace) == [
        ("main", "first", "switch"),
        ("first", "second", "switch"),
        ("second", "first", "switch"),
        ("first", "second", "switch"),
        ("second", "main", "switch"),
    ]
    first = lane_named(trace, "first").id
    assert [e.detail for e in trace.events() if e.code == Code.END and e.lane == first] == [
        {"result": "never finished"}]


def test_gevent_switching_overlaps_the_sleeps(record_scenario: Recorder) -> None:
    trace = record_scenario("gevent-switching").trace
    assert end_seq(trace, "bar") < end_seq(trace, "foo")
    # the two sleeps overlap: about 2 s from the first greenlet's start to the last one's end,
    # not 3 s (counted on their lanes, so start-up on a loaded machine does not count)
    ids = {lane_named(trace, name).id for name in ("foo", "bar")}
    stamps = [trace.ts[seq] for seq in range(len(trace)) if trace.lane[seq] in ids]
    assert 2e9 <= max(stamps) - min(stamps) < 2.9e9
    spans = derive_spans(trace)
    sleeps = {
        name: [row for row in span_rows(trace, spans, lane_named(trace, name).id)
               if row.state == "sleeping"]
        for name in ("foo", "bar")
    }
    assert [row.detail["delay_s"] for row in sleeps["foo"]] == [2.0]
    assert [row.detail["delay_s"] for row in sleeps["bar"]] == [1.0]
    # bar's whole sleep lies inside foo's
    assert sleeps["foo"][0].start <= sleeps["bar"][0].start
    assert sleeps["bar"][0].end <= sleeps["foo"][0].end
    hub = lane_named(trace, "gevent hub")
    assert hub.kind == "loop"
    hub_polls = [row for row in span_rows(trace, spans, hub.id) if row.state == "poll"]
    assert any(row.start <= sleeps["bar"][0].start + 1e8 and row.end >= sleeps["bar"][0].end
               - 1e8 for row in hub_polls)


def test_gevent_switches_go_through_the_hub(record_scenario: Recorder) -> None:
    trace = record_scenario("gevent-switching").trace
    between_greenlets = [(a, b, kind) for a, b, kind in arrows(trace)
                         if {a, b} & {"foo", "bar"}]
    assert between_greenlets
    assert all("gevent hub" in (a, b) for a, b, _ in between_greenlets)
    wakes = [
        (trace.lane_name(e.lane), e.detail["cause"])
        for e in trace.events() if e.code == Code.WAKE and e.detail["cause"] == "timer"
    ]
    assert wakes == [("bar", "timer"), ("foo", "timer")]


def test_gevent_sockets_wait_on_fds_and_wake_on_them(record_scenario: Recorder) -> None:
    trace = record_scenario("gevent-sockets").trace
    spans = derive_spans(trace)
    clients = lanes(trace, kind="greenlet", name="client")
    assert len(clients) == 3
    for client in clients:
        waits = [row.detail for row in span_rows(trace, spans, client.id)
                 if row.state == "io-wait"]
        assert {"read"} <= {detail["mode"] for detail in waits}
        fds = {detail["fd"] for detail in waits}
        assert len(fds) == 1 and all(isinstance(fd, int) and fd > 2 for fd in fds)
        fd_wakes = [e.detail for e in trace.events()
                    if e.code == Code.WAKE and e.lane == client.id and e.detail["cause"] == "fd"]
        assert fd_wakes and {wake["fd"] for wake in fd_wakes} == fds
    client_fds = {
        row.detail["fd"] for client in clients for row in span_rows(trace, spans, client.id)
        if row.state == "io-wait"
    }
    assert len(client_fds) == 3
    # the server's handlers sleep while the clients wait on their sockets
    handlers = lanes(trace, kind="greenlet", name="handle")
    assert len(handlers) == 3
    assert sum(row.state == "poll" for row in span_rows(
        trace, spans, lane_named(trace, "gevent hub").id)) >= 2


def test_a_users_gevent_script(tmp_path: Path) -> None:
    script = tmp_path / "my_gevent_script.py"
    script.write_text(textwrap.dedent("""
        import gevent

        def ticker(name, pause):
            for tick in range(2):
                gevent.sleep(pause)
                print(name, tick)
            return name

        jobs = [gevent.spawn(ticker, "slow", 0.05), gevent.spawn(ticker, "fast", 0.01)]
        gevent.joinall(jobs)
    """), encoding="utf-8")
    result = record_sync(resolve_target(str(script), model="gevent"))
    assert result.ok, result.stderr
    trace = result.trace
    assert [(lane.name, lane.kind) for lane in trace.lanes] == [
        ("main", "main"), ("gevent hub", "loop"), ("ticker", "greenlet"),
        ("ticker-2", "greenlet")]
    assert result.stdout.splitlines() == ["fast 0", "fast 1", "slow 0", "slow 1"]
    ticker_sleeps = [
        e.detail["delay_s"] for e in trace.events()
        if e.code == Code.SLEEPING and trace.lane_name(e.lane).startswith("ticker")
    ]
    assert sorted(ticker_sleeps) == [0.01, 0.01, 0.05, 0.05]
