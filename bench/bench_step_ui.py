"""Step key -> repainted timeline, source and narration, with a 100,000-event trace loaded.

Baseline: a plain repaint of the same widgets without a step. Prints median and worst of
PRESSES presses for both, and their ratio. Goal: a step within 50 ms.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace
from loopscope.ui.main_window import MainWindow
from loopscope.ui.settings import AppSettings

EVENTS = 100_000
PRESSES = 50


def big_trace() -> Trace:
    """Eight generator lanes handing off round-robin, each hand-off at a source line."""
    trace = Trace()
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    trace.meta.update(target="bench", model="generator")
    lanes = [recorder.spawn(f"worker-{n}", LaneKind.GENERATOR) for n in range(8)]
    sources = [recorder.source(__file__, 20 + n, f"worker_{n}") for n in range(8)]
    turn = 0
    while len(trace) < EVENTS:
        clock.now_ns += 10_000
        now, after = lanes[turn % 8], lanes[(turn + 1) % 8]
        recorder.switch(now, after, ("via", "send", "value", turn))
        recorder.state(now, Code.READY)
        recorder.state(after, Code.RUNNING, source=sources[(turn + 1) % 8])
        turn += 1
    recorder.close()
    return trace


def repaint(window: MainWindow) -> None:
    window.timeline.repaint()
    window.source.code.viewport().repaint()
    window.narration.repaint()


def main() -> None:
    app = QApplication.instance() or QApplication([])
    window = MainWindow(AppSettings.at("/tmp/bench_step_ui.ini"))
    window.resize(1600, 1000)
    window.show()
    trace = big_trace()
    window._show_trace(trace, live=False, path=None)
    window.source.show_file(__file__)
    window.activateWindow()
    QTest.qWaitForWindowActive(window)
    window.timeline.setFocus()
    app.processEvents()
    # Start mid-trace at a deep zoom, as a learner would be.
    window.stepping.seek_time(trace.ts[EVENTS // 2])
    mid = trace.ts[EVENTS // 2]
    window.timeline.set_view_range(mid - 2_000_000, mid + 2_000_000)
    repaint(window)
    steps, plain = [], []
    for _ in range(PRESSES):
        started = time.perf_counter()
        repaint(window)
        plain.append(time.perf_counter() - started)
        before = window.stepping.cursor
        started = time.perf_counter()
        QTest.keyClick(window.timeline, Qt.Key.Key_Right)
        repaint(window)
        steps.append(time.perf_counter() - started)
        assert window.stepping.cursor > before, "the step key did not move the cursor"
    for name, values in (("plain repaint", plain), ("step + repaint", steps)):
        print(f"{name:15s} median {statistics.median(values) * 1e3:7.2f} ms   "
              f"worst {max(values) * 1e3:7.2f} ms")
    print(f"ratio (step / plain): median {statistics.median(steps) / statistics.median(plain):.2f}"
          f"   worst {max(steps) / max(plain):.2f}   goal: step median <= 50 ms")
    window.close()


if __name__ == "__main__":
    main()
