"""What the timeline writes and how it frames a run, checked structurally on the layout:
words on arrows, spans and polls, lane tags, folded library lanes, bundled arrows, the
"N more lanes" row, the concept window and the time axis's zero. No pixels here."""

from __future__ import annotations

import itertools

import pytest
from pytestqt.qtbot import QtBot

from loopscope.scenarios import catalog
from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.held_time import cut_held_time
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.framing import lesson_range, parse_window, window_range
from loopscope.ui.layout import (
    ARROW_BUNDLE_PX,
    BREAK_PX,
    GROUP_KIND,
    MORE_KIND,
    Primitives,
    TextLabel,
    Viewport,
    layout,
    time_ticks,
)
from loopscope.ui.timeline import TimelineWidget
from loopscope.ui.trace_notes import is_library_file, trace_notes
from tests.ui.conftest import MS, build_sample_trace

US = 1_000


def frame(trace: Trace, start: float, end: float, **options: object) -> Primitives:
    viewport = Viewport(start_ns=start, end_ns=end, width=1200, height=400, lane_height=40,
                        row_padding=8, **options)  # type: ignore[arg-type]
    return layout(trace, derive_spans(trace), viewport)


def hand_offs(pairs: int, gap_ns: int, reply_after_ns: int | None = None) -> Trace:
    """produce sends 1..pairs to consumer, which yields '200 OK' back each time: each send
    `gap_ns` after the last reply, each reply `reply_after_ns` (default: gap_ns) later."""
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    producer = recorder.spawn("produce", LaneKind.MAIN)
    recorder.state(producer, Code.RUNNING)
    consumer = recorder.spawn("consumer", LaneKind.GENERATOR, parent=producer)
    for item in range(1, pairs + 1):
        clock.advance(gap_ns)
        recorder.switch(producer, consumer, ("via", "send", "value", str(item)))
        recorder.state(producer, Code.BLOCKED, ("on", "consumer"), other=consumer)
        recorder.state(consumer, Code.RUNNING)
        clock.advance(gap_ns if reply_after_ns is None else reply_after_ns)
        recorder.switch(consumer, producer, ("via", "yield", "value", "'200 OK'"))
        recorder.state(consumer, Code.BLOCKED, ("on", "produce"), other=producer)
        recorder.state(producer, Code.RUNNING)
    clock.advance(gap_ns)
    recorder.end(consumer, result=None)
    recorder.end(producer, result=None)
    recorder.close()
    return trace


def texts_of(primitives: Primitives, kind: str) -> list[TextLabel]:
    return [label for label in primitives.texts if label.kind == kind]


def overlap(a: TextLabel, b: TextLabel) -> bool:
    return a.x < b.x + b.w and b.x < a.x + a.w and a.y < b.y + b.h and b.y < a.y + a.h


def test_hand_off_arrows_say_what_they_carry_beside_their_shafts() -> None:
    trace = hand_offs(5, 100 * US)
    primitives = frame(trace, 0, trace.duration_ns)

    words = texts_of(primitives, "arrow")
    assert [label.text for label in sorted(words, key=lambda label: label.x)] == [
        text for item in range(1, 6) for text in (f"send({item})", "'200 OK'")]
    arrows = {arrow.seq: arrow for arrow in primitives.arrows}
    plot = primitives.plot
    for label in words:
        arrow = arrows[label.seq]
        assert arrow.x < label.x < arrow.x + 10  # just right of its own shaft
        # In the gap before the head, inside the plot.
        assert min(arrow.y0, arrow.y1) <= label.y + label.h / 2 <= max(arrow.y0, arrow.y1)
        assert plot.x <= label.x and label.x + label.w <= plot.x + plot.w
    assert not any(overlap(a, b) for a, b in itertools.combinations(words, 2))


def test_crowded_arrows_keep_their_words_clear_of_other_shafts() -> None:
    # Each reply comes 20 us (about 11 px) after its send: its shaft would cross the words
    # on the send's right, which try its left instead; there only the first send has room
    # (the others would cover the reply before them), so the rest give way.
    trace = hand_offs(12, 150 * US, reply_after_ns=20 * US)
    primitives = frame(trace, 0, trace.duration_ns)

    words = texts_of(primitives, "arrow")
    assert sorted(label.text for label in words) == ["'200 OK'"] * 12 + ["send(1)"]
    arrows = {arrow.seq: arrow for arrow in primitives.arrows}
    send = next(label for label in words if label.text == "send(1)")
    assert send.x + send.w < arrows[send.seq].x  # left of its own shaft
    for label in words:
        for arrow in primitives.arrows:
            if arrow.seq != label.seq and label.x <= arrow.x <= label.x + label.w:
                assert (max(arrow.y0, arrow.y1) <= label.y
                        or min(arrow.y0, arrow.y1) >= label.y + label.h), (label, arrow)
    assert not any(overlap(a, b) for a, b in itertools.combinations(words, 2))


def test_wide_spans_name_their_state_and_what_they_wait_for_inside_themselves() -> None:
    trace = build_sample_trace()
    primitives = frame(trace, 0, 100 * MS)

    inside = {(trace.lane_name(int(primitives.rects.lane[i])), label.text)
              for label in texts_of(primitives, "span")
              for i in range(primitives.merged_from)
              if primitives.rects.x[i] <= label.x
              and label.x + label.w <= primitives.rects.x[i] + primitives.rects.w[i]
              and primitives.rects.y[i] == label.y}
    assert {("fetch", "io-wait: fd 7 readable"), ("nap", "sleeping 0.055 s"),
            ("join", "blocked on task fetch"), ("event loop", "ready: fetch")} <= inside


def select_like_trace() -> Trace:
    trace = Trace()
    trace.meta["model"] = "select"
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    loop = recorder.spawn("select loop", LaneKind.LOOP)
    listener = recorder.spawn("listener :5000", LaneKind.CONNECTION, loop, extra=("fd", 3))
    conn = recorder.spawn("conn 127.0.0.1:4242", LaneKind.CONNECTION, listener,
                          extra=("fd", 7))
    recorder.state(listener, Code.IO_WAIT, ("fd", 3, "mode", "read"))
    recorder.state(conn, Code.IO_WAIT, ("fd", 7, "mode", "read"))
    recorder.state(loop, Code.POLL, ("timeout_s", 5.0))
    clock.advance(40 * MS)
    recorder.annotate(loop, ("readable", (3, 7), "writable", ()))
    recorder.state(loop, Code.DISPATCH)
    recorder.wake(listener, loop, ("cause", "fd", "fd", 3, "mode", "read"))
    recorder.wake(conn, loop, ("cause", "fd", "fd", 7, "mode", "read"))
    clock.advance(40 * MS)
    recorder.end(conn, error=ConnectionResetError("peer went away"))
    recorder.end(listener)
    recorder.end(loop)
    recorder.close()
    return trace


def test_a_poll_names_the_lanes_that_came_back_and_socket_lanes_show_their_fd() -> None:
    trace = select_like_trace()
    primitives = frame(trace, 0, trace.duration_ns)

    assert [(row.name, row.tag) for row in primitives.lanes] == [
        ("select loop", "loop"), ("listener :5000", "fd 3"), ("conn 127.0.0.1:4242", "fd 7")]
    assert "ready: listener :5000, conn :4242" in {label.text for label in primitives.texts}
    assert {label.text for label in texts_of(primitives, "arrow")} == {"fd 3 readable",
                                                                        "fd 7 readable"}


def test_an_exception_gets_its_own_end_marker_and_legend_entry() -> None:
    trace = select_like_trace()
    primitives = frame(trace, 0, trace.duration_ns)

    ends = {(trace.lane_name(marker.lane), marker.kind) for marker in primitives.markers}
    assert ends == {("conn 127.0.0.1:4242", "error"), ("listener :5000", "end"),
                    ("select loop", "end")}
    assert {entry.label for entry in primitives.legend} >= {"end", "exception"}


def library_trace() -> Trace:
    """A loop, the program's main task, and a task that only ever runs asyncio's code."""
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    loop = recorder.spawn("asyncio loop", LaneKind.LOOP)
    main = recorder.spawn("main (Task-1)", LaneKind.TASK, loop)
    plumbing = recorder.spawn("_accept_connection2 (Task-2)", LaneKind.TASK, loop)
    recorder.state(loop, Code.DISPATCH)
    recorder.state(main, Code.RUNNING, source=recorder.source("/home/me/app.py", 3, "main"))
    clock.advance(10 * MS)
    recorder.state(main, Code.BLOCKED, ("on", "future"))
    recorder.state(plumbing, Code.RUNNING, source=recorder.source(
        "/usr/lib/python3.12/asyncio/selector_events.py", 200, "_accept_connection2"))
    clock.advance(10 * MS)
    recorder.wake(main, plumbing, ("cause", "future"))
    recorder.end(plumbing)
    clock.advance(5 * MS)
    # main resumes inside asyncio's own code (a gather finishing) before its own again
    recorder.state(main, Code.RUNNING, source=recorder.source(
        "/usr/lib/python3.12/asyncio/tasks.py", 310, "gather"))
    clock.advance(5 * MS)
    recorder.state(main, Code.RUNNING, source=recorder.source("/home/me/app.py", 4, "main"))
    recorder.end(main)
    recorder.close()
    return trace


def test_library_lanes_fold_into_one_group_row_that_keeps_their_spans_and_arrows() -> None:
    trace = library_trace()
    folded = trace_notes(trace).library_lanes(trace)
    assert folded == {2}

    primitives = frame(trace, 0, trace.duration_ns, folded_lanes=folded)
    rows = [(row.name, row.kind) for row in primitives.lanes]
    assert rows == [("asyncio loop", "loop"), ("main (Task-1)", "task"),
                    ("+ 1 library lanes", GROUP_KIND)]
    group = primitives.lanes[-1]
    plumbing_rects = [i for i in range(len(primitives.rects)) if primitives.rects.lane[i] == 2]
    assert plumbing_rects
    assert all(group.y <= primitives.rects.y[i] < group.y + group.height for i in plumbing_rects)
    (wake,) = [arrow for arrow in primitives.arrows if arrow.from_lane == 2]
    assert group.y <= wake.y0 <= group.y + group.height

    shown = frame(trace, 0, trace.duration_ns)
    assert [row.name for row in shown.lanes] == ["asyncio loop", "main (Task-1)",
                                                 "_accept_connection2 (Task-2)"]


@pytest.mark.parametrize(("path", "library"), [
    ("/usr/lib/python3.12/asyncio/base_events.py", True),
    ("/home/me/.venv/lib/python3.12/site-packages/aiohttp/web_protocol.py", True),
    ("/home/me/.venv/lib/python3.12/site-packages/loopscope/scenarios/round_robin.py", False),
    ("/home/me/project/server.py", False),
])
def test_library_files_are_the_standard_library_and_installed_packages(path: str,
                                                                       library: bool) -> None:
    assert is_library_file(path) is library


def test_dense_arrows_are_bundled_with_a_count_and_none_are_lost() -> None:
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    loop = recorder.spawn("loop", LaneKind.LOOP)
    server = recorder.spawn("server", LaneKind.TASK, loop)
    recorder.state(loop, Code.POLL)
    for _ in range(4000):
        clock.advance(37 * US)
        recorder.wake(server, loop, ("cause", "fd", "fd", 5, "mode", "read"))
        recorder.state(server, Code.RUNNING)
    recorder.close()

    primitives = frame(trace, 0, trace.duration_ns)
    assert primitives.arrows_hidden == 0
    assert sum(arrow.bundled for arrow in primitives.arrows) == 4000
    assert len(primitives.arrows) <= primitives.plot.w / ARROW_BUNDLE_PX + 1
    xs = sorted(arrow.x for arrow in primitives.arrows)
    assert min(b - a for a, b in itertools.pairwise(xs)) >= ARROW_BUNDLE_PX / 2
    times = "\N{MULTIPLICATION SIGN}"
    assert all(label.text.startswith(times) for label in texts_of(primitives, "arrow"))


def test_an_image_too_short_for_its_lanes_says_how_many_more_there_are() -> None:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1000))
    for number in range(200):
        lane = recorder.spawn(f"task {number}", LaneKind.TASK)
        recorder.state(lane, Code.RUNNING)
    recorder.close()

    primitives = frame(trace, 0, trace.duration_ns, overflow_row=True)
    *shown, last = primitives.lanes
    assert last.kind == MORE_KIND
    assert last.name == f"+ {200 - len(shown)} more lanes"
    assert last.y + last.height <= primitives.plot.y + primitives.plot.h


def test_every_scenario_window_parses_and_producer_consumer_frames_its_hand_offs() -> None:
    for scenario in catalog.all_scenarios():
        if scenario.window:
            parse_window(scenario.window)
    with pytest.raises(ValueError, match="not a concept window"):
        parse_window("switcheroo#2")

    trace = hand_offs(7, 100 * US)
    trace.meta.update(kind="scenario", target="producer-consumer")
    switches = [seq for seq in range(len(trace)) if trace.code[seq] == Code.SWITCH]
    # producer-consumer's window runs from its 3rd switch to its 12th.
    assert window_range(trace, catalog.get("producer-consumer").window) == (
        trace.ts[switches[2]], trace.ts[switches[11]])
    start, end = lesson_range(trace)
    assert start < trace.ts[switches[2]] and trace.ts[switches[11]] < end
    assert trace.ts[switches[1]] < start and end < trace.ts[switches[12]]
    assert lesson_range(trace, full=True)[0] < trace.ts[0] + 1


def test_the_axis_counts_from_the_programs_first_event() -> None:
    ticks, _ = time_ticks(50 * MS, 150 * MS, 100.0, 1000.0, origin_ns=50 * MS)
    assert ticks[0].label == "0 ms" and ticks[0].ns == 50 * MS
    assert ticks[0].x == pytest.approx(100.0)
    assert [t.label for t in ticks[1:3]] == ["20 ms", "40 ms"]


def test_state_at_a_hand_off_is_the_same_live_and_recorded() -> None:
    from loopscope.tracer.spans import SpanBuilder
    from loopscope.ui.layout import span_index, states_at

    trace = hand_offs(3, 100 * US)
    first_send = next(seq for seq in range(len(trace)) if trace.code[seq] == Code.SWITCH)
    # Live, up to the consumer's start: the producer's blocked span is still open.
    live = SpanBuilder()
    live.feed(trace, first_send + 3)
    at = trace.ts[first_send]
    recorded = derive_spans(trace)
    expected = {0: Code.BLOCKED, 1: Code.RUNNING}
    assert states_at(span_index(trace, live.spans), live, [0, 1], at) == expected
    assert states_at(span_index(trace, recorded), None, [0, 1], at) == expected


def test_fd_owners_follow_reuse_and_come_out_the_same_in_one_go_or_slice_by_slice() -> None:
    from loopscope.ui.trace_notes import TraceNotes

    trace = Trace()
    clock = FakeClock(tick_ns=1000)
    recorder = Recorder(trace, clock=clock)
    loop = recorder.spawn("select loop", LaneKind.LOOP)
    first = recorder.spawn("conn :1111", LaneKind.CONNECTION, loop, extra=("fd", 7))
    recorder.state(first, Code.IO_WAIT, ("fd", 7, "mode", "read"))
    recorder.end(first)
    clock.advance(MS)
    reused_at = clock.now_ns
    second = recorder.spawn("conn :2222", LaneKind.CONNECTION, loop, extra=("fd", 7))
    other = recorder.spawn("client", LaneKind.CONNECTION, loop)
    recorder.state(other, Code.IO_WAIT, ("fd", 9, "mode", "write"))
    recorder.state(other, Code.IO_WAIT, ("fd", 8, "mode", "read"))
    recorder.close()

    whole = TraceNotes()
    whole.update(trace)
    sliced = TraceNotes()
    for stop in range(1, len(trace) + 1):
        sliced.scanned = stop - 1
        partial = Trace(ts=trace.ts[:stop], lane=trace.lane[:stop], code=trace.code[:stop],
                        other=trace.other[:stop], detail=trace.detail[:stop],
                        source=trace.source[:stop], details=trace.details,
                        sources=trace.sources)
        sliced.update(partial)
    for notes in (whole, sliced):
        assert notes.lane_of_fd(7, reused_at - 1) == first
        assert notes.lane_of_fd(7, reused_at + 1) == second
        assert notes.lane_fd == {first: 7, second: 7, other: 9}  # a lane's first fd


def test_a_held_stretch_is_drawn_as_a_pause_across_the_lanes() -> None:
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    hub = recorder.spawn("gevent hub", LaneKind.LOOP)
    recorder.state(hub, Code.POLL)
    clock.advance(10 * MS)
    clock.advance(3_000 * MS)  # the learner held the run for 3 s; gevent's clock went on
    recorder.record(hub, Code.MARK, detail=recorder.detail(
        ("text", "paused 3.0 s", "paused_ns", 3_000 * MS)))
    clock.advance(10 * MS)
    recorder.end(hub)
    recorder.close()

    primitives = frame(trace, 0, trace.duration_ns)
    (pause,) = primitives.pauses
    assert pause.text == "held 3.00 s"
    assert pause.x == pytest.approx(primitives.x_of(10 * MS))
    assert pause.x + pause.w == pytest.approx(primitives.x_of(3_010 * MS))
    assert (pause.y, pause.h) == (primitives.plot.y, primitives.plot.h)
    assert frame(trace, 3_015 * MS, trace.duration_ns).pauses == []  # out of view


@pytest.mark.gui
def test_held_time_cut_out_is_drawn_as_a_break_with_its_time_in_the_tooltip(
    qtbot: QtBot,
) -> None:
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    hub = recorder.spawn("gevent hub", LaneKind.LOOP)
    recorder.state(hub, Code.POLL)
    clock.advance(10 * MS)
    clock.advance(3_000 * MS)  # held 3 s while gevent's clock went on
    recorder.record(hub, Code.MARK, detail=recorder.detail(
        ("text", "paused 3.0 s", "paused_ns", 3_000 * MS)))
    clock.advance(10 * MS)
    recorder.end(hub)
    recorder.close()

    cut = cut_held_time(trace)
    assert cut.duration_ns == 20 * MS  # the run is as wide as it ran
    primitives = frame(cut, 0, cut.duration_ns)
    (held,) = primitives.pauses
    assert (held.kind, held.text) == ("break", "held 3.00 s")
    assert held.x + held.w / 2 == pytest.approx(primitives.x_of(10 * MS))
    assert held.w == BREAK_PX
    assert (held.y, held.h) == (primitives.plot.y, primitives.plot.h)

    widget = TimelineWidget()
    qtbot.addWidget(widget)
    widget.resize(1000, 300)
    widget.set_trace(cut, live=False)
    shown = widget.primitives()
    (drawn,) = shown.pauses
    tip = widget.tooltip_at(drawn.x + drawn.w / 2, drawn.y + drawn.h / 2)
    assert "held 3.00 s" in tip and "cut out" in tip
