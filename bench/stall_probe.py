"""What the GUI thread was doing during each long stall, and whether it was running at all.

Used by bench_gui_loop.py and bench_open_trace.py with --probe. Two views of one stall:

- the GUI thread's own CPU time during the gap between two ticks of the 1 ms timer (read by
  the timer on the GUI thread: time.thread_time), against the gap's wall time. A gap whose CPU
  is close to its wall time was the GUI thread's own work; a gap with little CPU was spent
  waiting, for the GIL (another thread running Python or a C call that keeps it) or for a core;
- the stacks of every thread, sampled every SAMPLE_S by a thread of its own while the timer is
  late: where the GUI thread was, and what the other threads ran meanwhile.

This is a diagnostic: it takes the GIL itself every few milliseconds while a stall lasts.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

LATE_S = 0.015  # the timer is this late: sample
SAMPLE_S = 0.002
DEPTH = 4  # innermost frames kept per sample


def _where(frame: FrameType | None, depth: int = DEPTH) -> str:
    parts = []
    while frame is not None and len(parts) < depth:
        code = frame.f_code
        name = code.co_filename.rsplit("/", 1)[-1]
        parts.append(f"{code.co_name}@{name}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(parts)


@dataclass
class Stall:
    wall_ms: float
    cpu_ms: float  # the GUI thread's own CPU time in it
    gui: collections.Counter[str] = field(default_factory=collections.Counter)
    others: collections.Counter[str] = field(default_factory=collections.Counter)


class StallProbe:
    """Attach to a StallMeter (its `_last` tick time); `start()` on the GUI thread."""

    def __init__(self, meter: object, longer_than_ms: float = 30.0) -> None:
        self.meter = meter
        self.longer_than_ms = longer_than_ms
        self.stalls: list[Stall] = []
        self._gui_ident = threading.get_ident()
        self._running = False
        self._current: Stall | None = None
        self._last_cpu = time.thread_time()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._running = True
        self._last_cpu = time.thread_time()
        self._thread = threading.Thread(target=self._sample, name="stall-probe", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join()

    def ticked(self, gap_ms: float) -> None:
        """Called by the meter's tick, on the GUI thread."""
        cpu = time.thread_time()
        cpu_ms, self._last_cpu = (cpu - self._last_cpu) * 1000, cpu
        current, self._current = self._current, None
        if gap_ms >= self.longer_than_ms:
            stall = current or Stall(0.0, 0.0)
            stall.wall_ms, stall.cpu_ms = gap_ms, cpu_ms
            self.stalls.append(stall)

    def _sample(self) -> None:
        while self._running:
            time.sleep(SAMPLE_S)
            last = getattr(self.meter, "_last", 0.0)
            if time.perf_counter() - last < LATE_S:
                continue
            frames = sys._current_frames()
            stall = self._current
            if stall is None:
                stall = self._current = Stall(0.0, 0.0)
            for ident, frame in frames.items():
                if ident == threading.get_ident():
                    continue
                if ident == self._gui_ident:
                    stall.gui[_where(frame, 8)] += 1
                else:
                    stall.others[_where(frame)] += 1

    def print(self, top: int = 8) -> None:
        stalls = sorted(self.stalls, key=lambda stall: -stall.wall_ms)[:top]
        print(f"  the {len(stalls)} longest of {len(self.stalls)} stalls over "
              f"{self.longer_than_ms:.0f} ms (GUI thread's CPU in each; its stacks, others'):")
        for stall in stalls:
            print(f"    {stall.wall_ms:6.1f} ms wall, {stall.cpu_ms:6.1f} ms GUI CPU")
            for where, count in stall.gui.most_common(3):
                print(f"       gui {count:3} {where}")
            for where, count in stall.others.most_common(3):
                print(f"     other {count:3} {where}")
