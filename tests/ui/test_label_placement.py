"""Where words go on the timeline, checked structurally on real traces: no two placed words
overlap, and no word covers a bar of a lane it is not about (a span's words are about its
lane, an arrow's about the two lanes it joins), in exports and in the app's frames alike.
Also: rows too thin for arrows' words get none, and lane names in thin rows never overlap."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pytestqt.qtbot import QtBot

from loopscope.tracer.held_time import cut_held_time
from loopscope.tracer.native import load_native
from loopscope.tracer.runner import RunResult
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.image_export import export_viewport
from loopscope.ui.layout import Primitives, TextLabel, Viewport, arrow_at, layout
from loopscope.ui.paint import label_width_for, lane_name_boxes, text_measure
from loopscope.ui.theme import get_theme

pytestmark = pytest.mark.gui

GOLDEN = Path(__file__).parent / "golden"
GOLDEN_SCENARIOS = ["aiohttp-requests", "gevent-switching", "producer-consumer",
                    "select-server"]
# Recorded in this session: dense wake-ups (echo servers, a copy loop) and plain sleeps.
LIVE_SCENARIOS = ["asyncio-echo", "zero-copy", "selectors-server", "blocking-call"]


def exported(trace: Trace, **options: object) -> Primitives:
    trace = cut_held_time(trace)
    theme = get_theme("light")
    viewport = export_viewport(trace, width=1600,  # the CLI's default
                               label_width=label_width_for(trace, theme, 1600),
                               **options)  # type: ignore[arg-type]
    return layout(trace, derive_spans(trace), viewport)


def app_frame(trace: Trace, lane_height: float) -> Primitives:
    """The whole run as the app's timeline lays it out at this row height."""
    width, height = text_measure(get_theme("light"))
    rows = len(trace.lanes)
    viewport = Viewport(float(trace.first_event_ns), float(trace.duration_ns), 1400,
                        int(56 + rows * lane_height), lane_height=lane_height,
                        row_padding=max(3.0, lane_height * 0.15), text_width=width,
                        text_height=height)
    return layout(trace, derive_spans(trace), viewport)


TOUCH = 1e-6  # edges that meet do not cross (two sums of floats may differ in the last bit)


def boxes_cross(a: TextLabel, b: TextLabel) -> bool:
    return (a.x + TOUCH < b.x + b.w and b.x + TOUCH < a.x + a.w
            and a.y + TOUCH < b.y + b.h and b.y + TOUCH < a.y + a.h)


def own_lanes(primitives: Primitives, label: TextLabel) -> set[int]:
    if label.kind == "arrow":
        arrow = next(arrow for arrow in primitives.arrows if arrow.seq == label.seq)
        return {arrow.from_lane, arrow.to_lane}
    # A span's words (and a poll's note) lie in their own lane's band.
    rects = primitives.rects
    inside = np.nonzero((rects.y <= label.y) & (label.y < rects.y + rects.h)
                        & (rects.x < label.x + label.w) & (label.x < rects.x + rects.w))[0]
    return {int(rects.lane[i]) for i in inside}


def row_of_lane(primitives: Primitives) -> dict[int, float]:
    """Each drawn lane's row top (folded lanes share their group's)."""
    return {row.lane: row.y for row in primitives.strip_rows}


def assert_words_are_clear(primitives: Primitives) -> None:
    words = list(primitives.texts)
    assert words, "nothing to check: the frame placed no words"
    for a, b in itertools.combinations(words, 2):
        assert not boxes_cross(a, b), (a, b)
    rects = primitives.rects
    rows = row_of_lane(primitives)
    for label in words:
        own_rows = {rows[lane] for lane in own_lanes(primitives, label) if lane in rows}
        crossing = np.nonzero((rects.x + TOUCH < label.x + label.w)
                              & (label.x + TOUCH < rects.x + np.maximum(rects.w, 1.0))
                              & (rects.y + TOUCH < label.y + label.h)
                              & (label.y + TOUCH < rects.y + rects.h))[0]
        others = [int(rects.lane[i]) for i in crossing
                  if rows.get(int(rects.lane[i])) not in own_rows]
        assert not others, (label, [primitives.viewport.title, others])
    plot = primitives.plot
    for label in words:
        assert plot.x <= label.x and label.x + label.w <= plot.x + plot.w + 1e-6, label


@pytest.mark.parametrize("scenario", GOLDEN_SCENARIOS)
def test_exported_words_never_cover_each_other_or_other_lanes_bars(qtbot: QtBot,
                                                                   scenario: str) -> None:
    trace = load_native(GOLDEN / f"{scenario}.loopscope")
    assert_words_are_clear(exported(trace))
    assert_words_are_clear(exported(trace, full=True, all_lanes=True))


@pytest.mark.parametrize("scenario", LIVE_SCENARIOS)
def test_words_stay_clear_on_scenarios_recorded_now(
    qtbot: QtBot, record_scenario: Callable[..., RunResult], scenario: str,
) -> None:
    trace = record_scenario(scenario).trace
    primitives = exported(trace)
    assert any(label.kind == "arrow" for label in primitives.texts)
    assert_words_are_clear(primitives)
    for lane_height in (24.0, 40.0):  # the app's rows, at their least and most
        assert_words_are_clear(app_frame(trace, lane_height))


def test_words_that_would_hide_a_lane_are_left_out_and_still_hoverable(qtbot: QtBot) -> None:
    # select-server's first wake arrows come out of one poll at once: beside each there is
    # room for few words, and the rest are left out, their arrows still found by hovering.
    trace = load_native(GOLDEN / "select-server.loopscope")
    primitives = exported(trace)
    with_words = {label.seq for label in primitives.texts if label.kind == "arrow"}
    without = [arrow for arrow in primitives.arrows if arrow.seq not in with_words]
    assert with_words and without
    for arrow in without:
        middle = (arrow.y0 + arrow.y1) / 2
        found = arrow_at(primitives, arrow.x, middle)
        assert found is not None and found.x == pytest.approx(arrow.x, abs=4.0)


def test_rows_too_thin_for_a_line_get_no_arrow_words_and_spaced_names(qtbot: QtBot) -> None:
    trace = load_native(GOLDEN / "aiohttp-requests.loopscope")
    roomy = exported(trace, all_lanes=True)
    thin = exported(trace, all_lanes=True, height=360)  # 10 px rows
    assert any(label.kind == "arrow" for label in roomy.texts)
    assert not any(label.kind == "arrow" for label in thin.texts)
    assert not any(label.kind == "span" for label in thin.texts)

    named = lane_name_boxes(thin, get_theme("light"))
    assert 1 < len(named) < len(thin.lanes)  # every other row, not none and not all
    for (_, upper), (_, lower) in itertools.pairwise(named):
        assert upper.y() + upper.height() <= lower.y()
    # Roomy rows each get their name, in the row itself.
    named = lane_name_boxes(roomy, get_theme("light"))
    assert [row for row, _ in named] == roomy.lanes
    assert all(box.y() == row.y and box.height() == row.height for row, box in named)


def test_the_app_and_the_export_place_words_by_the_same_measure(qtbot: QtBot) -> None:
    trace = load_native(GOLDEN / "producer-consumer.loopscope")
    measured = exported(trace)
    estimated = layout(trace, derive_spans(trace),
                       replace(measured.viewport, text_width=None))
    width, _ = text_measure(get_theme("light"))
    for label in measured.texts:
        if label.kind == "arrow":
            assert label.w == pytest.approx(width(label.text) + 6)
    # The estimate (7 px a character) is wider than DejaVu's small text: different boxes.
    assert [label.w for label in measured.texts] != [label.w for label in estimated.texts]
