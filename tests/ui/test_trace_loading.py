"""Opening a saved trace in the background: progress shown, the window's loop kept turning.

The file is real and read by the real loader (tracer.native). To make "the window stays
responsive while it loads" independent of the machine's speed, the loader's first progress
report is held on a gate the test opens: while the load is held mid-way, the window's event
loop must keep turning (a 0 ms timer counts its ticks) and the progress bar must show how far
the load got. Nothing is timed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from loopscope.tracer.events import NO_LANE, Code, LaneKind
from loopscope.tracer.native import load_native, save_native
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.main_window import MainWindow
from loopscope.ui.settings import AppSettings
from loopscope.ui.trace_loading import TraceLoading

pytestmark = pytest.mark.gui

TASKS = 8
TURNS = 5_000  # 6 events a turn: a trace of about 30,000 events


def _turns_trace() -> Trace:
    """A loop dispatching tasks that wake, run and sleep: spawns, then six events a turn."""
    details = [{}, {"name": "loop", "kind": LaneKind.LOOP},
               *({"name": f"task-{n}", "kind": LaneKind.TASK} for n in range(TASKS))]
    rows: list[tuple[int, int, int, int]] = [(0, Code.SPAWN, NO_LANE, 1)]
    rows += [(n, Code.SPAWN, 0, n + 1) for n in range(1, TASKS + 1)]
    for turn in range(TURNS):
        task = 1 + turn % TASKS
        rows += [(0, Code.DISPATCH, NO_LANE, 0), (task, Code.WAKE, 0, 0),
                 (task, Code.READY, NO_LANE, 0), (task, Code.RUNNING, NO_LANE, 0),
                 (task, Code.SLEEPING, NO_LANE, 0), (0, Code.POLL, NO_LANE, 0)]
    trace = Trace(details=details)
    trace.meta.update(target="turns", model="asyncio", kind="script", status="ok")
    columns = ([100 * seq for seq in range(len(rows))], [r[0] for r in rows],
               [int(r[1]) for r in rows], [r[2] for r in rows], [r[3] for r in rows],
               [0] * len(rows))
    trace.extend_columns(0, columns)
    return trace


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("loading") / "turns.loopscope"
    save_native(_turns_trace(), path)
    return path


@pytest.fixture
def window(qtbot, tmp_path: Path) -> Iterator[MainWindow]:
    main = MainWindow(AppSettings.at(tmp_path / "settings.ini"))
    qtbot.addWidget(main)
    main.show()
    yield main


class HeldLoader:
    """The real loader, held at its first progress report until `release()`."""

    def __init__(self) -> None:
        self.held = threading.Event()
        self._go = threading.Event()

    def __call__(self, path: str, progress: Callable[[float], None]) -> Trace:
        def report(fraction: float) -> None:
            progress(fraction)
            if not self.held.is_set():
                self.held.set()
                self._go.wait(30)  # the test opens the gate; never hang the suite

        return load_native(path, report)

    def release(self) -> None:
        self._go.set()


def test_a_loading_trace_shows_progress_while_the_window_keeps_turning(
    window: MainWindow, saved: Path, qtbot
) -> None:
    loader = HeldLoader()
    ticks: list[int] = []
    ticker = QTimer()
    ticker.setInterval(0)
    ticker.timeout.connect(lambda: ticks.append(1))

    loading = window.load_trace(str(saved), loader)

    assert loading is not None and window.loading is loading
    qtbot.waitUntil(loader.held.is_set)
    qtbot.waitUntil(lambda: window.load_progress.value() > 0)
    # held mid-way: the bar shows how far the load got, and the loop keeps turning
    assert window.load_progress.isVisible()
    assert 0 < window.load_progress.value() < window.load_progress.maximum()
    assert window.trace is None
    ticker.start()
    qtbot.waitUntil(lambda: len(ticks) >= 20)
    assert not loading.finished and window.loading is loading

    loader.release()
    qtbot.waitUntil(lambda: window.loading is None)
    ticker.stop()

    assert not window.load_progress.isVisible()
    trace = window.trace
    assert trace is not None and window.trace_path == str(saved)
    assert len(trace) == 9 + 6 * TURNS and len(trace.lanes) == 1 + TASKS
    # the spans folded on the worker thread are the pure fold's
    shown, pure = window.timeline.spans, derive_spans(load_native(saved))
    assert len(shown) == len(pure)
    for column in ("lane", "state", "start", "end", "start_seq"):
        assert list(getattr(shown, column)) == list(getattr(pure, column)), column
    assert window.windowTitle() == "turns.loopscope — Loopscope"


def test_progress_rises_to_the_end_through_reading_and_folding(qapp: QApplication,
                                                                 saved: Path, qtbot) -> None:
    loading = TraceLoading(str(saved), fold_piece=5_000)
    seen: list[float] = []
    loaded: list[Trace] = []
    loading.progressed.connect(seen.append)
    loading.loaded.connect(lambda trace, folded: loaded.append(trace))

    loading.start()
    qtbot.waitUntil(lambda: loading.finished)

    assert len(loaded) == 1 and len(loaded[0]) == 9 + 6 * TURNS
    assert seen == sorted(seen) and seen[-1] == 1.0
    # the fold reports piece by piece after the file is read
    assert len([f for f in seen if f > 0.6]) >= (9 + 6 * TURNS) // 5_000


def test_a_file_that_is_not_a_trace_fails_in_one_line_and_keeps_the_window(
    window: MainWindow, tmp_path: Path, qtbot
) -> None:
    garbage = tmp_path / "garbage.loopscope"
    garbage.write_bytes(b"this is not a trace\n")

    window.load_trace(str(garbage))
    qtbot.waitUntil(lambda: window.loading is None)

    assert window.trace is None and not window.load_progress.isVisible()
    box = window.error_box
    assert isinstance(box, QMessageBox) and box.isVisible()
    assert "garbage.loopscope is not a Loopscope trace" in box.text()


def test_a_newer_open_replaces_one_still_loading(window: MainWindow, saved: Path, qtbot,
                                                 tmp_path: Path) -> None:
    first = HeldLoader()
    other = tmp_path / "other.loopscope"
    small = Trace()
    small.meta.update(target="other", status="ok")
    save_native(small, other)

    replaced = window.load_trace(str(saved), first)
    qtbot.waitUntil(first.held.is_set)
    window.load_trace(str(other))
    qtbot.waitUntil(lambda: window.loading is None)
    assert window.trace_path == str(other)
    first.release()
    assert replaced is not None
    qtbot.waitUntil(lambda: replaced.finished)  # the replaced load, done late, changes nothing

    assert window.trace_path == str(other)
