"""From process start to a painted main window (warm start), against a bare QWidget app.

    .venv/bin/python bench/bench_startup.py [--runs N]

One process run, side by side: each round starts a fresh interpreter for the baseline (a bare
QWidget app started the same way) and one for Loopscope (`ui.app.launch`), and times from just
before the process is spawned to the moment the first frame has been painted (the first paint
event, then the paint pass finishing). A warm-up round runs first so both read from a warm disk
cache. Goal: Loopscope's median is at most 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 1.5
PAINTED = "painted"

# Installed before the window exists: on the first paint of any widget, wait for the paint
# pass to finish (a zero timer runs after it), then say so and leave at once.
_WATCH_FIRST_PAINT = f"""
PAINTED = {PAINTED!r}
import os, sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication

app = QApplication(["bench"])

class FirstPaint(QObject):
    seen = False
    def eventFilter(self, obj, event):
        if event.type() == QEvent.Type.Paint and not self.seen:
            self.seen = True
            QTimer.singleShot(0, self.report)
        return False
    def report(self):
        print(PAINTED, flush=True)
        os._exit(0)

watcher = FirstPaint()
app.installEventFilter(watcher)
"""

BASELINE = _WATCH_FIRST_PAINT + """
from PySide6.QtWidgets import QWidget
window = QWidget()
window.setWindowTitle("baseline")
window.resize(1400, 860)
window.show()
app.exec()
"""

LOOPSCOPE = _WATCH_FIRST_PAINT + """
from loopscope.ui.app import launch
launch(None)
"""


def time_to_paint(program: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", program], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    elapsed = time.perf_counter() - started
    _, stderr = child.communicate(timeout=30)
    if line != PAINTED:
        raise SystemExit(f"the app did not paint: {stderr.strip().splitlines()[-1:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    settings = Path(tempfile.mkdtemp(prefix="loopscope-bench-")) / "settings.ini"
    env = {
        **os.environ,
        "LOOPSCOPE_SETTINGS": str(settings),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", ""))
                                      if p),
    }
    if not env.get("DISPLAY"):
        env.setdefault("QT_QPA_PLATFORM", "offscreen")
    time_to_paint(BASELINE, env)  # warm-up round
    time_to_paint(LOOPSCOPE, env)
    baseline, loopscope = [], []
    for _ in range(options.runs):  # interleaved, so load on the machine hits both alike
        baseline.append(time_to_paint(BASELINE, env))
        loopscope.append(time_to_paint(LOOPSCOPE, env))
    base, ours = statistics.median(baseline), statistics.median(loopscope)
    platform = env.get("QT_QPA_PLATFORM") or "default (DISPLAY=" + env.get("DISPLAY", "") + ")"
    print(f"process start to painted window, warm, median of {options.runs} "
          f"(platform {platform}):")
    print(f"  bare QWidget app (baseline) {base:6.3f} s   "
          f"(min {min(baseline):.3f}, max {max(baseline):.3f})")
    print(f"  Loopscope main window       {ours:6.3f} s   "
          f"(min {min(loopscope):.3f}, max {max(loopscope):.3f})")
    verdict = "meets" if ours <= GOAL_S else "MISSES"
    print(f"  ratio Loopscope / baseline: {ours / base:.2f}x; {ours:.3f} s {verdict} "
          f"the {GOAL_S} s goal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
