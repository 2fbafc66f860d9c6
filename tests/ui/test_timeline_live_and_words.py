"""The timeline widget's live edge (moved by an injected clock), its folded library lanes,
the tooltips of arrows and markers, and the narration line that elides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtCore import QPoint, Qt
from pytestqt.qtbot import QtBot

from loopscope.tracer.spans import derive_spans
from loopscope.ui.eliding_label import ElidingLabel
from loopscope.ui.layout import GROUP_KIND, OPEN_SPAN
from loopscope.ui.timeline import TimelineWidget
from tests.ui.conftest import MS, build_sample_trace
from tests.ui.test_timeline import partial_copy
from tests.ui.test_timeline_words import library_trace, select_like_trace

pytestmark = pytest.mark.gui


class FakeWallClock:
    def __init__(self) -> None:
        self.now_ns = 0

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture
def timeline(qtbot: QtBot) -> Iterator[TimelineWidget]:
    widget = TimelineWidget()
    qtbot.addWidget(widget)
    widget.resize(1000, 400)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget


def open_span_right_edges(timeline: TimelineWidget) -> set[float]:
    primitives = timeline.primitives()
    rects = primitives.rects
    return {round(float(rects.x[i] + rects.w[i]), 3) for i in range(len(rects))
            if rects.span[i] == OPEN_SPAN}


def test_the_live_edge_moves_on_between_events_and_stands_still_while_held(
    timeline: TimelineWidget,
) -> None:
    clock = FakeWallClock()
    timeline.set_wall_clock(clock)
    full = build_sample_trace()
    live = partial_copy(full, next(seq for seq in range(len(full)) if full.ts[seq] >= 20 * MS))
    timeline.set_trace(live, live=True)
    last = live.duration_ns
    assert timeline.live_edge_ns() == last

    clock.now_ns += 30 * MS  # the program sleeps quietly for 30 ms
    assert timeline.live_edge_ns() == last + 30 * MS
    timeline.set_view_range(0, 100 * MS)
    edge_x = round(timeline.primitives().x_of(last + 30 * MS), 3)
    assert open_span_right_edges(timeline) == {edge_x}  # open spans grow to the edge
    timeline.zoom_to_fit()
    assert timeline.view_range[1] == pytest.approx(last + 30 * MS)  # and the fit takes it

    timeline.hold_live_edge(True)
    clock.now_ns += 500 * MS  # held: the program's clock stands still
    assert timeline.live_edge_ns() == last + 30 * MS
    timeline.hold_live_edge(False)
    clock.now_ns += 10 * MS
    assert timeline.live_edge_ns() == last + 40 * MS

    timeline.finish_live()
    assert timeline.live_edge_ns() == live.duration_ns


def test_library_lanes_fold_by_default_and_a_click_on_their_row_shows_them(
    timeline: TimelineWidget, qtbot: QtBot,
) -> None:
    timeline.set_trace(library_trace())
    group = timeline.primitives().lanes[-1]
    assert (group.kind, group.name) == (GROUP_KIND, "+ 1 library lanes")
    assert "library lanes" in timeline.tooltip_at(20, group.y + group.height / 2)

    with qtbot.waitSignal(timeline.folding_changed) as changed:
        qtbot.mouseClick(timeline, Qt.MouseButton.LeftButton,
                         pos=QPoint(20, int(group.y + group.height / 2)))
    assert changed.args == [False]
    assert [row.name for row in timeline.primitives().lanes][-1] == \
        "_accept_connection2 (Task-2)"
    timeline.set_fold_library(True)
    assert timeline.primitives().lanes[-1].kind == GROUP_KIND


def test_arrows_and_markers_explain_themselves_on_hover(timeline: TimelineWidget) -> None:
    trace = select_like_trace()
    timeline.set_trace(trace)
    primitives = timeline.primitives()

    arrow = next(a for a in primitives.arrows if trace.lane_name(a.to_lane) == "listener :5000")
    text = timeline.tooltip_at(arrow.x, (arrow.y0 + arrow.y1) / 2)
    assert "<b>wake</b>: select loop → listener :5000" in text
    assert "fd 3 readable" in text and "at 40.0 ms" in text

    error = next(m for m in primitives.markers if m.kind == "error")
    text = timeline.tooltip_at(error.x, error.y + error.height / 2)
    assert "raised <b>ConnectionResetError: peer went away</b>" in text


def test_span_times_count_from_the_first_event(timeline: TimelineWidget) -> None:
    trace = build_sample_trace()
    shifted = partial_copy(trace, len(trace))
    shifted.ts = type(trace.ts)("q", [ts + 500 * MS for ts in trace.ts])
    timeline.set_trace(shifted)
    spans = derive_spans(shifted)
    fetch_io = next(i for i in range(len(spans)) if spans.start[i] == 510 * MS)
    timeline.select_span(fetch_io)
    primitives = timeline.primitives()
    box = primitives.highlight
    assert box is not None
    assert "start 10.0 ms" in timeline.tooltip_at(box.x + box.w / 2, box.y + box.h / 2)
    assert primitives.ticks[0].label.startswith("0 ")


def test_a_long_narration_line_elides_instead_of_asking_for_room(qtbot: QtBot) -> None:
    label = ElidingLabel()
    qtbot.addWidget(label)
    label.resize(200, 20)
    sentence = "consumer yields '200 OK' back to produce " * 10
    label.setText(sentence)

    assert label.minimumSizeHint().width() == 0
    assert label.text() == sentence  # the whole line, for whoever reads it
    assert label.toolTip() == sentence
    shown = super(ElidingLabel, label).text()
    assert shown.endswith("…") and len(shown) < len(sentence)


def test_a_step_key_with_nothing_left_says_so(qtbot: QtBot) -> None:
    from loopscope.ui.stepping import StepController

    stepping = StepController()
    stepping.attach(build_sample_trace())
    stepping.last()
    at_end = stepping.cursor
    with qtbot.waitSignal(stepping.notice) as said:
        stepping.step("switch")
    assert stepping.cursor == at_end
    assert said.args == ["No switch to another lane after this one: the recording ends"]


def test_stepping_passes_over_library_lanes_unless_they_are_shown(qtbot: QtBot) -> None:
    from loopscope.ui.stepping import StepController

    def stepped_on(mine_only: bool) -> tuple[set[int], set[str]]:
        """The lanes the steps land on, and the files of the running steps."""
        stepping = StepController()
        stepping.mine_only = mine_only
        trace = library_trace()
        stepping.attach(trace)
        lanes: set[int] = set()
        files: set[str] = set()
        ended: list[str] = []
        stepping.notice.connect(ended.append)
        while not ended:
            stepping.step()
            if stepping.cursor >= 0:
                lanes.add(trace.lane[stepping.cursor])
                if trace.source[stepping.cursor]:
                    files.add(trace.sources[trace.source[stepping.cursor]][0])
        return lanes, files

    lanes, files = stepped_on(mine_only=True)
    assert lanes == {0, 1}
    assert files == {"/home/me/app.py"}  # never a step into asyncio's own code
    lanes, files = stepped_on(mine_only=False)
    assert lanes == {0, 1, 2}
    assert "/usr/lib/python3.12/asyncio/tasks.py" in files


def test_the_live_edge_waits_for_the_first_event(timeline: TimelineWidget,
                                                 qtbot: QtBot) -> None:
    from tests.ui.test_timeline import grow

    clock = FakeWallClock()
    timeline.set_wall_clock(clock)
    full = build_sample_trace()
    live = partial_copy(full, 0)
    timeline.set_trace(live, live=True)
    clock.now_ns += 300 * MS  # the child starts up: no program time passes yet
    assert timeline.live_edge_ns() == 0

    grow(live, full, 5)
    timeline.refresh()
    assert timeline.spans is not None  # reading the spans folds what arrived, at once
    assert timeline.live_edge_ns() == live.duration_ns
    clock.now_ns += 7 * MS
    assert timeline.live_edge_ns() == live.duration_ns + 7 * MS


def test_the_lane_filter_and_per_lane_hide_fold_the_rest_into_the_last_row(
    timeline: TimelineWidget, qtbot: QtBot,
) -> None:
    trace = select_like_trace()
    timeline.set_trace(trace)

    timeline.set_lane_filter("fd 7")  # by fd, as the lanes' tags say
    rows = [(row.name, row.kind) for row in timeline.primitives().lanes]
    assert rows == [("select loop", "loop"), ("conn 127.0.0.1:4242", "connection"),
                    ("+ 1 other lanes", GROUP_KIND)]
    timeline.set_lane_filter("LISTENER")  # by name, whatever the case
    assert [row.name for row in timeline.primitives().lanes][1] == "listener :5000"

    timeline.set_lane_filter("")
    timeline.hide_lane(1)
    assert [row.name for row in timeline.primitives().lanes] == [
        "select loop", "conn 127.0.0.1:4242", "+ 1 other lanes"]
    with qtbot.waitSignal(timeline.lanes_shown):
        timeline.show_all_lanes()
    assert [row.name for row in timeline.primitives().lanes] == [
        "select loop", "listener :5000", "conn 127.0.0.1:4242"]
