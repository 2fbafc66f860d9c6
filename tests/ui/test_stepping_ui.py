"""Stepping in the window, driven by its keys: real children held and let go by the Stepper,
and recordings scrubbed back and forth."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest

from loopscope.scenarios import aiohttp_requests
from loopscope.tracer.events import Code
from loopscope.tracer.native import save_native
from loopscope.tracer.runner import record_sync
from loopscope.tracer.source_files import source_line
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.step_lines import body_start
from loopscope.tracer.stepping import step_lines
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace
from loopscope.ui.layout import Viewport, layout, span_index, states_at
from loopscope.ui.main_window import MainWindow
from tests.ui import test_main_window as main_window_tests
from tests.ui.conftest import MS

# The window, its settings file and the qasync loop, as the main window's tests make them.
loop = main_window_tests.loop
settings_path = main_window_tests.settings_path
window = main_window_tests.window
run_until = main_window_tests.run_until

TIME = re.compile(r"\d+\.\d+ s")
PORT = re.compile(r":\d{2,5}\b")


def sentence(line: str) -> str:
    """A narration line without what differs between runs: times and ports."""
    return PORT.sub(":PORT", TIME.sub("T s", line.strip().split("  ", 1)[-1]))


_recorded: dict[str, Trace] = {}


def recorded(scenario: str) -> Trace:
    if scenario not in _recorded:
        current = asyncio.get_event_loop_policy().get_event_loop()
        result = record_sync(resolve_target(scenario))  # its own loop, closed when done
        asyncio.set_event_loop(current)  # the window's qasync loop stays the current one
        assert result.status == "ok", result.error
        _recorded[scenario] = result.trace
    return _recorded[scenario]


def press(window: MainWindow, loop: qasync.QEventLoop, key: Qt.Key,
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """A key pressed on the timeline, as a user would; waits until the step has been taken."""
    async def click() -> None:  # pressed while the loop runs, as in the app
        QTest.keyClick(window.timeline, key, modifier)

    loop.run_until_complete(click())
    run_until(loop, lambda: not window.stepping.busy, what="the step to be taken")


def shown(window: MainWindow) -> tuple[int, str, float | None, int, tuple[int, ...]]:
    """Everything a step shows: cursor, narration, timeline cursor, source lines."""
    code = window.source.code
    return (window.stepping.cursor, window.narration.sentence.text(), window.timeline.cursor_ns,
            code.highlighted_line, code.faint_lines)


def last_running_line(trace: Trace, cursor: int) -> int:
    """The line the lane that ran last is on at the cursor: where it resumed (its last
    RUNNING event with a source), or once it has stopped (a switch, a wait, its end) where
    it stopped, which is where it resumes next; before it stops, the line of its last print
    since it resumed; a first step at its `def` is on the body's first line."""
    for seq in range(cursor, -1, -1):
        if trace.code[seq] == Code.RUNNING and trace.source[seq]:
            lane = trace.lane[seq]
            stopped = any(trace.lane[later] == lane and trace.code[later] != Code.RUNNING
                          and (trace.code[later] < Code.SPAWN
                               or trace.code[later] in (Code.SWITCH, Code.END))
                          for later in range(seq + 1, cursor + 1))
            following = next((later for later in range(seq + 1, len(trace))
                              if trace.lane[later] == lane and trace.code[later] == Code.RUNNING
                              and trace.source[later]), None)
            if stopped and following is not None:
                return trace.sources[trace.source[following]][1]
            printed = [later for later in range(seq + 1, cursor + 1)
                       if trace.lane[later] == lane and trace.code[later] == Code.OUTPUT
                       and trace.source[later]]
            if not stopped and printed:
                return trace.sources[trace.source[printed[-1]]][1]
            filename, line, _ = trace.sources[trace.source[seq]]
            first = all(not (trace.lane[earlier] == lane and trace.code[earlier] == Code.RUNNING)
                        for earlier in range(seq))
            text = source_line(trace.meta, filename, line).strip()
            if first and text.startswith(("def ", "async def ")):
                return body_start(trace.meta, filename, line) or line
            return line
    return 0


def focus_timeline(window: MainWindow) -> None:
    """Keys reach the window's shortcuts only once it is the active window."""
    window.activateWindow()
    assert QTest.qWaitForWindowActive(window)
    window.timeline.setFocus()


def start_held(window: MainWindow, loop: qasync.QEventLoop, scenario: str) -> None:
    assert window.browser.select(scenario)
    focus_timeline(window)

    async def start() -> None:  # the loop keeps running until the child is up
        QTest.keyClick(window.timeline, Qt.Key.Key_F6)
        while window.live.is_running and not window.live.run_started:
            await asyncio.sleep(0.02)

    loop.run_until_complete(start())
    assert window.live.is_running
    assert window.stepping.stepper is not None and window.stepping.stepper.run.paused


@pytest.mark.parametrize("scenario", ["producer-consumer", "asyncio-hello"])
def test_n_steps_in_the_app_are_the_first_n_narrated_steps(
    window: MainWindow, loop: qasync.QEventLoop, scenario: str
) -> None:
    expected = [sentence(line) for _, line in step_lines(recorded(scenario))]
    start_held(window, loop, scenario)
    steps = 9
    seen = []
    for _ in range(steps):
        press(window, loop, Qt.Key.Key_N)
        seen.append(sentence(window.narration.sentence.text()))
        trace, cursor = window.trace, window.stepping.cursor
        assert trace is not None
        # The source pane is at the line the lane that ran last is on, as recorded, or,
        # held inside that lane's function, at the paused frame's own line.
        lines = {last_running_line(trace, cursor)}
        view = window.stepping.held_view()
        if view is not None and view.where is not None:
            lines.add(view.where[1])
        assert window.source.code.highlighted_line in lines
        assert window.timeline.cursor_ns == trace.ts[cursor]
    assert seen == expected[:steps]
    assert window.live.is_running and window.stepping.held  # the child waits for the next
    window.stop_action.trigger()
    run_until(loop, lambda: not window.live.is_running, what="the stop")
    assert window.status == "stopped"


def test_while_held_details_shows_the_paused_frames_local_variables(
    window: MainWindow, loop: qasync.QEventLoop
) -> None:
    start_held(window, loop, "producer-consumer")
    seen = []
    for _ in range(16):
        press(window, loop, Qt.Key.Key_N)
        seen.append(window.details.toPlainText())
        if "Held in consumer()" in seen[-1] and "item" in seen[-1]:
            break
    text = seen[-1]
    assert "Held in consumer()" in text, seen
    # Held at its print, the source pane is on the print's line (the recording alone knows
    # only the line the consumer resumed at).
    assert "consumer prints" in window.narration.sentence.text()
    assert "print(" in source_line(None, window.source.path or "",
                                   window.source.code.highlighted_line)
    assert "Local variables" in text and "reply" in text
    assert any("Held in produce()" in shown and "worker" in shown for shown in seen)
    window.stop_action.trigger()
    run_until(loop, lambda: not window.live.is_running, what="the stop")


@pytest.mark.parametrize("scenario", ["gevent-switching", "select-server"])
def test_gevent_and_select_step_then_continue_to_the_end(
    window: MainWindow, loop: qasync.QEventLoop, scenario: str
) -> None:
    start_held(window, loop, scenario)
    cursors = []
    for key in (Qt.Key.Key_N, Qt.Key.Key_N, Qt.Key.Key_T, Qt.Key.Key_I, Qt.Key.Key_F10):
        press(window, loop, key)
        cursors.append(window.stepping.cursor)
        assert re.match(r"^ *\d+\.\d{3} s  \S", window.narration.sentence.text())
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)
    press(window, loop, Qt.Key.Key_C)
    run_until(loop, lambda: not window.live.is_running, timeout=60, what=f"{scenario} to end")
    assert window.status == "ok" and window.state_label.text() == "finished"
    # What was stepped through is now a recording: Home goes back to its first step.
    press(window, loop, Qt.Key.Key_Home)
    assert window.trace is not None
    assert window.stepping.cursor == step_lines(window.trace)[0][0]


def test_stepping_aiohttp_by_io_shows_which_request_each_readiness_wakes(
    window: MainWindow, loop: qasync.QEventLoop
) -> None:
    start_held(window, loop, "aiohttp-requests")
    woken = set()
    for _ in range(80):  # bounded: the four requests' sockets are woken within the first few
        press(window, loop, Qt.Key.Key_I)
        found = re.search(r"fd \d+ (?:readable|writable): wakes (GET /\S*)",
                          window.narration.sentence.text())
        if found:
            woken.add(found.group(1))
        if len(woken) == 4:
            break
    assert woken == {"GET /", "GET /hello/alice", "GET /hello/bob", "GET /hello/carol"}
    press(window, loop, Qt.Key.Key_C)
    run_until(loop, lambda: not window.live.is_running, timeout=60, what="aiohttp to end")
    assert window.status == "ok"


@pytest.fixture
def recording(window: MainWindow, tmp_path: Path) -> Trace:
    path = tmp_path / "pc.loopscope"
    save_native(recorded("producer-consumer"), str(path))
    assert window.open_trace(str(path))
    focus_timeline(window)
    assert window.trace is not None
    return window.trace


def test_scrubbing_back_then_forward_returns_to_the_same_step(
    window: MainWindow, loop: qasync.QEventLoop, recording: Trace
) -> None:
    steps = [seq for seq, _ in step_lines(recording)]
    for _ in range(12):
        press(window, loop, Qt.Key.Key_Right)
    assert window.stepping.cursor == steps[11]
    there = shown(window)
    assert there[1] == dict(step_lines(recording))[steps[11]]
    assert there[3] == last_running_line(recording, steps[11])
    for _ in range(5):
        press(window, loop, Qt.Key.Key_Left)
    assert window.stepping.cursor == steps[6]
    assert shown(window) != there
    for _ in range(5):
        press(window, loop, Qt.Key.Key_Right)
    assert shown(window) == there

    press(window, loop, Qt.Key.Key_End)
    assert window.stepping.cursor == steps[-1]
    press(window, loop, Qt.Key.Key_Home)
    assert window.stepping.cursor == steps[0]
    press(window, loop, Qt.Key.Key_Left)  # nothing before the first step
    assert window.stepping.cursor == steps[0]


def test_switch_and_io_keys_move_between_lanes_and_waits(
    window: MainWindow, loop: qasync.QEventLoop, recording: Trace
) -> None:
    press(window, loop, Qt.Key.Key_T)
    first = window.stepping.cursor
    press(window, loop, Qt.Key.Key_T)
    second = window.stepping.cursor
    assert recording.code[first] == recording.code[second] == Code.RUNNING
    assert recording.lane[first] != recording.lane[second]
    press(window, loop, Qt.Key.Key_T, Qt.KeyboardModifier.ShiftModifier)
    assert window.stepping.cursor == first


def test_clicking_the_time_axis_puts_the_cursor_on_the_step_there(
    window: MainWindow, loop: qasync.QEventLoop, recording: Trace
) -> None:
    steps = [seq for seq, _ in step_lines(recording)]
    target = steps[len(steps) // 2]
    primitives = window.timeline.primitives()
    x = primitives.x_of(recording.ts[target]) + 0.5
    QTest.mouseClick(window.timeline, Qt.MouseButton.LeftButton, pos=QPoint(
        round(x), round(primitives.axis.y + primitives.axis.h / 2)))
    cursor = window.stepping.cursor
    # The last step at or before the time clicked: within the pixel clicked.
    assert cursor in steps
    assert abs(recording.ts[cursor] - recording.ts[target]) <= primitives.viewport.ns_per_px * 2
    assert window.timeline.primitives().cursor_x is not None


def test_continue_plays_a_recording_back_and_pause_stops_it(
    window: MainWindow, loop: qasync.QEventLoop, recording: Trace
) -> None:
    window.narration.speed.setCurrentIndex(window.narration.speed.count() - 1)  # fastest
    press(window, loop, Qt.Key.Key_C)
    assert window.stepping.playing
    run_until(loop, lambda: window.stepping.cursor >= 0, what="playback to move")
    press(window, loop, Qt.Key.Key_P)
    assert not window.stepping.playing
    stopped_at = window.stepping.cursor
    run_until(loop, lambda: True)
    assert window.stepping.cursor == stopped_at


def test_each_lane_state_at_the_cursor(sample_trace: Trace) -> None:
    spans = derive_spans(sample_trace)
    index = span_index(sample_trace, spans)
    names = {info.name: info.id for info in sample_trace.lanes}
    at_30 = states_at(index, None, list(names.values()), 30 * MS)
    assert {name: at_30[lane] for name, lane in names.items()} == {
        "event loop": Code.POLL, "fetch": Code.IO_WAIT, "nap": Code.SLEEPING,
        "join": Code.BLOCKED,
    }
    vp = Viewport(start_ns=0, end_ns=100 * MS, width=1000, height=400, cursor_ns=30 * MS)
    primitives = layout(sample_trace, spans, vp)
    assert primitives.cursor_x == pytest.approx(primitives.x_of(30 * MS))
    assert primitives.cursor_states == at_30
    outside = layout(sample_trace, spans, Viewport(start_ns=40 * MS, end_ns=100 * MS,
                                                   width=1000, height=400, cursor_ns=30 * MS))
    assert outside.cursor_x is None


TICKING_SCRIPT = """\
import asyncio


async def tick(name):
    for _ in range(100):
        await asyncio.sleep(0.05)


async def main():
    await asyncio.gather(tick("a"), tick("b"))


asyncio.run(main())
"""


def test_step_after_continue_holds_the_run_further_on_not_back_at_an_old_step(
    window: MainWindow, loop: qasync.QEventLoop, tmp_path: Path
) -> None:
    script = tmp_path / "ticking.py"
    script.write_text(TICKING_SCRIPT)
    focus_timeline(window)

    async def start() -> None:
        window.run_target(resolve_target(str(script)), paused=True)
        while window.live.is_running and not window.live.run_started:
            await asyncio.sleep(0.02)

    loop.run_until_complete(start())
    for _ in range(4):
        press(window, loop, Qt.Key.Key_N)
    held_at = window.stepping.cursor
    press(window, loop, Qt.Key.Key_C)
    assert window.live.is_running and not window.stepping.held  # 5 s of ticks to go
    press(window, loop, Qt.Key.Key_N)
    # N holds the running program where it has got to: later than where it was held before.
    assert window.live.is_running and window.stepping.held
    assert window.stepping.cursor > held_at
    assert window.stepping.cursor == window.stepping.stepper.position  # type: ignore[union-attr]
    window.stop_action.trigger()
    run_until(loop, lambda: not window.live.is_running, what="the stop")


def test_a_step_before_any_line_ran_shows_no_stale_line_in_the_source(
    window: MainWindow, loop: qasync.QEventLoop, recording: Trace
) -> None:
    steps = [seq for seq, _ in step_lines(recording)]
    assert last_running_line(recording, steps[0]) == 0  # the first step: nothing ran yet
    for _ in range(3):
        press(window, loop, Qt.Key.Key_Right)
    assert window.source.code.highlighted_line == last_running_line(recording, steps[2]) > 0
    press(window, loop, Qt.Key.Key_Home)
    assert window.stepping.cursor == steps[0]
    assert window.source.code.highlighted_line == 0
    assert window.source.code.faint_lines == ()


def test_arrow_home_and_end_keys_stay_with_the_tree_and_the_source_when_they_have_focus(
    window: MainWindow, loop: qasync.QEventLoop, recording: Trace
) -> None:
    tree = window.browser.tree
    group = tree.topLevelItem(0)
    tree.setCurrentItem(group)
    tree.collapseItem(group)
    tree.setFocus()
    QTest.keyClick(tree, Qt.Key.Key_Right)  # expands the model's group of scenarios
    assert group.isExpanded()
    code = window.source.code
    code.setFocus()
    QTest.keyClick(code, Qt.Key.Key_End)  # the source pane's own key
    assert window.stepping.cursor == -1  # no step was taken
    focus_timeline(window)
    press(window, loop, Qt.Key.Key_End)
    assert window.stepping.cursor == step_lines(recording)[-1][0]


def test_closing_the_window_while_a_run_is_held_stops_the_child(
    window: MainWindow, loop: qasync.QEventLoop
) -> None:
    start_held(window, loop, "gevent-switching")
    press(window, loop, Qt.Key.Key_N)
    assert window.stepping.held
    process = main_window_tests.close_while_running(window, loop, timeout=10)
    assert process.returncode == 0  # the held child let go and stopped itself, not killed
    assert window.live.result is not None and window.live.result.status == "stopped"


def test_stepping_aiohttp_shows_the_scenarios_lines_never_aiohttps(
    window: MainWindow, loop: qasync.QEventLoop, tmp_path: Path
) -> None:
    path = tmp_path / "aiohttp.loopscope"
    save_native(recorded("aiohttp-requests"), str(path))
    assert window.open_trace(str(path))
    focus_timeline(window)
    trace = window.trace
    assert trace is not None
    shown_files, handler_lines = set(), set()
    last = -1
    for _ in range(400):  # bounded: every step of the recording, then the cursor stays put
        press(window, loop, Qt.Key.Key_N)
        if window.stepping.cursor == last:
            break
        last = window.stepping.cursor
        if window.source.path is not None:
            shown_files.add(Path(window.source.path).name)
        said = window.narration.sentence.text()
        if " → " in said and " sleeps " in said:  # a handler lane begins its sleep
            handler_lines.add(window.source.code.highlighted_line)
    # library lanes (aiohttp's RequestHandler.start) are passed over and the pane stays
    # with the program's lanes: the handlers at their await, the client at its request
    assert shown_files == {"aiohttp_requests.py"}
    scenario = Path(aiohttp_requests.__file__).read_text().splitlines()
    assert handler_lines == {number for number, text in enumerate(scenario, 1)
                             if text.strip() == "await asyncio.sleep(HANDLER_DELAY)"}
