"""Plain greenlets in-process: every switch() becomes an arrow, lanes named after functions."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import greenlet
import pytest

from loopscope.tracer.events import FakeClock
from loopscope.tracer.models import greenlet_model
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace

Row = tuple[str, str, str | None, dict[str, Any]]


def record(module: str) -> Trace:
    if module == "loopscope.scenarios.greenlet_manual":
        # A previous run left `first` suspended; dropping it now (untraced) lets greenlet kill
        # it here instead of in the middle of the next recording.
        import loopscope.scenarios.greenlet_manual

        loopscope.scenarios.greenlet_manual.greenlets.clear()
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1000))
    greenlet_model.run(recorder, Program(model="greenlet", scenario_module=module))
    recorder.close()
    return trace


def rows(trace: Trace) -> list[Row]:
    return [
        (event.kind, trace.lane_name(event.lane),
         trace.lane_name(event.other) if event.other >= 0 else None, event.detail)
        for event in trace.events()
        if event.kind != "output"
    ]


def test_manual_switches_in_order() -> None:
    trace = record("loopscope.scenarios.greenlet_manual")
    switch: dict[str, Any] = {"via": "switch"}
    assert rows(trace) == [
        ("spawn", "main", None, {"name": "main", "kind": "main"}),
        ("running", "main", None, {}),
        ("spawn", "first", "main", {"name": "first", "kind": "greenlet"}),
        ("switch", "main", "first", switch),
        ("blocked", "main", "first", {"on": "first"}),
        ("running", "first", None, {}),
        ("spawn", "second", "first", {"name": "second", "kind": "greenlet"}),
        ("switch", "first", "second", switch),
        ("blocked", "first", "second", {"on": "second"}),
        ("running", "second", None, {}),
        ("switch", "second", "first", switch),
        ("blocked", "second", "first", {"on": "first"}),
        ("running", "first", None, {}),
        ("switch", "first", "second", switch),
        ("blocked", "first", "second", {"on": "second"}),
        ("running", "second", None, {}),
        # second returns: control goes back to its parent, main; first stays suspended
        ("switch", "second", "main", switch),
        ("end", "second", None, {"result": "returned"}),
        ("running", "main", None, {}),
        ("end", "first", None, {"result": "never finished"}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_resumed_lanes_point_at_the_line_after_their_switch() -> None:
    trace = record("loopscope.scenarios.greenlet_manual")
    source = Path("scenarios/greenlet_manual.py").read_text().splitlines()
    resumed = [
        (trace.lane_name(event.lane), source[event.source[1] - 1].strip())
        for event in trace.events()
        if event.kind == "running" and event.source is not None
    ]
    assert resumed == [
        ("first", "def first() -> None:"),
        ("second", "def second() -> None:"),
        ("first", 'greenlets["second"].switch()'),
        ("second", 'greenlets["first"].switch()'),
        ("main", 'greenlets["first"].switch()'),
    ]


def test_throw_and_output_attribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "throwing_greenlets.py").write_text(textwrap.dedent("""
        from greenlet import greenlet, GreenletExit

        def waiter():
            try:
                greenlet.getcurrent().parent.switch()
            except GreenletExit:
                return "told to exit"

        def main():
            child = greenlet(waiter)
            child.switch()
            child.throw()
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "throwing_greenlets", raising=False)
    trace = record("throwing_greenlets")
    arrows = [row for row in rows(trace) if row[0] in ("switch", "end")]
    assert arrows == [
        ("switch", "main", "waiter", {"via": "switch"}),
        ("switch", "waiter", "main", {"via": "switch"}),
        ("switch", "main", "waiter", {"via": "throw"}),
        ("switch", "waiter", "main", {"via": "switch"}),
        ("end", "waiter", None, {"result": "returned"}),
        ("end", "main", None, {"result": "None"}),
    ]


def test_the_switch_trace_is_removed_even_when_the_program_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "failing_greenlets.py").write_text(textwrap.dedent("""
        from greenlet import greenlet

        def broken():
            raise KeyError("missing")

        def main():
            greenlet(broken).switch()
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "failing_greenlets", raising=False)
    before = greenlet.gettrace()
    with pytest.raises(KeyError):
        record("failing_greenlets")
    assert greenlet.gettrace() is before


def test_a_ping_pong_records_every_switch_and_where_each_side_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each greenlet switches from two different lines in turn: the line a lane resumes at
    # must follow, although the frame it resumes in is the same every time.
    (tmp_path / "ping_pong.py").write_text(textwrap.dedent("""
        from greenlet import greenlet

        def ping():
            for _ in range(50):
                pong_greenlet.switch()  # ping A
                pong_greenlet.switch()  # ping B

        def pong():
            while True:
                ping_greenlet.switch()  # pong A
                ping_greenlet.switch()  # pong B

        ping_greenlet = greenlet(ping)
        pong_greenlet = greenlet(pong)

        def main():
            ping_greenlet.switch()
    """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "ping_pong", raising=False)
    trace = record("ping_pong")
    source = (tmp_path / "ping_pong.py").read_text().splitlines()
    hand_offs = [row for row in rows(trace) if row[0] in ("switch", "blocked", "running")]
    # main running, main -> ping, ping -> pong (pong starts), then 199 switches between the two
    middle = hand_offs[7:7 + 3 * 199]
    assert middle == [
        row
        for origin, target in [("pong", "ping"), ("ping", "pong")] * 99 + [("pong", "ping")]
        for row in (("switch", origin, target, {"via": "switch"}),
                    ("blocked", origin, target, {"on": target}),
                    ("running", target, None, {}))
    ]
    resumed_comments = [
        source[event.source[1] - 1].split("#")[-1].strip()
        for event in trace.events()
        if event.kind == "running" and event.source is not None
    ][2:12]
    assert resumed_comments == ["ping A", "pong A", "ping B", "pong B"] * 2 + ["ping A", "pong A"]
