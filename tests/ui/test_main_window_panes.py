"""Panes that agree: what the window shows after an open, a new run and a held start, driven
as a user would with real child processes (see test_main_window)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import qasync

from loopscope.tracer.native import load_native, save_native
from loopscope.ui.framing import lesson_range
from loopscope.ui.main_window import MainWindow
from tests.ui.test_main_window import (  # noqa: F401 (fixtures)
    loop,
    run_scenario,
    run_until,
    settings_path,
    window,
)

pytestmark = pytest.mark.gui

GOLDEN = Path(__file__).parent / "golden"


def test_an_opened_trace_shows_its_scenario_and_its_concept_window(
    window: MainWindow, tmp_path: Path,  # noqa: F811 (a fixture)
) -> None:
    path = tmp_path / "pc.loopscope"
    shutil.copyfile(GOLDEN / "producer-consumer.loopscope", path)
    window.browser.select("select-server")

    assert window.open_trace(str(path))

    current = window.browser.current
    assert current is not None and current.id == "producer-consumer"
    assert window.timeline.view_range == pytest.approx(lesson_range(window.trace))

    # A trace that is no scenario's leaves no scenario's description on show.
    trace = load_native(path)
    trace.meta.update(kind="script", target="my_program.py")
    script_trace = tmp_path / "script.loopscope"
    save_native(trace, script_trace)
    assert window.open_trace(str(script_trace))
    assert window.browser.current is None
    assert "Pick a scenario" in window.browser.description.toPlainText()


def test_a_new_run_clears_the_previous_runs_details(
    window: MainWindow, loop: qasync.QEventLoop,  # noqa: F811 (fixtures)
) -> None:
    run_scenario(window, loop, "producer-consumer")
    trace = window.trace
    assert trace is not None
    window._on_lane_selected(0)
    assert "produce" in window.details.toPlainText()

    async def start_again() -> None:
        window.run_action.trigger()

    loop.run_until_complete(start_again())
    assert "Pick a scenario" in window.details.toPlainText()  # nothing of the last run
    run_until(loop, lambda: not window.live.is_running, what="the second run to finish")


def test_held_before_the_first_step_says_held_and_continue_lets_it_go(
    window: MainWindow, loop: qasync.QEventLoop,  # noqa: F811 (fixtures)
) -> None:
    assert window.browser.select("producer-consumer")

    async def start_held() -> None:
        window.step_through_action.trigger()

    loop.run_until_complete(start_held())
    run_until(loop, lambda: window.stepping.held, what="the child to hold")
    run_until(loop, lambda: window.state_label.text() == "held", what="the status to say held")
    assert window.continue_action.isEnabled() and not window.pause_action.isEnabled()
    edge = window.timeline.live_edge_ns()

    async def wait_a_little() -> None:
        import asyncio

        await asyncio.sleep(0.3)

    loop.run_until_complete(wait_a_little())
    assert window.timeline.live_edge_ns() == edge  # held: the program's time stands still

    async def go_on() -> None:
        window.continue_action.trigger()

    loop.run_until_complete(go_on())
    run_until(loop, lambda: not window.live.is_running, what="the run to finish")
    assert window.status == "ok"
