"""Drives one tracer.runner.Run on the qasync loop and tells the window about it, coalesced.

The child's event pipe is read by asyncio on the GUI thread's loop; decoding a batch is cheap,
and the window hears about new events at most once per REFRESH_INTERVAL_MS, however fast they
come, so a child streaming flat out cannot starve the GUI of repaints and input.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from loopscope.tracer.trace import Trace

if TYPE_CHECKING:
    from loopscope.tracer.runner import Run, RunResult
    from loopscope.tracer.stepping import Stepper
    from loopscope.tracer.target import Target

REFRESH_INTERVAL_MS = 50


class LiveRun(QObject):
    """One run at a time: start it, hear about its events and output, stop it."""

    started = Signal()
    events_arrived = Signal()  # coalesced: the trace has grown since the last emission
    output_line = Signal(str)  # a line the program printed
    finished = Signal(object)  # the tracer.runner.RunResult

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.run: Run | None = None
        self.stepper: Stepper | None = None  # every run has one, so any run can be paused
        self.trace: Trace | None = None
        self.result: RunResult | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._active = False
        self.run_started = False  # the child is up and its pipes are being read
        self._refresh = QTimer(self)
        self._refresh.setSingleShot(True)
        self._refresh.setInterval(REFRESH_INTERVAL_MS)
        self._refresh.timeout.connect(self.events_arrived)

    @property
    def is_running(self) -> bool:
        """True from `start` until just before `finished` is emitted."""
        return self._active

    @property
    def elapsed_s(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else time.monotonic()
        return end - self.started_at

    def start(self, target: Target, paused: bool = False) -> Trace:
        """Starts the target in a child on the running asyncio loop; returns the trace it fills.
        Paused: the child holds before its first step, for the Stepper to let go."""
        from loopscope.tracer.runner import Run
        from loopscope.tracer.stepping import Stepper

        if self.is_running:
            raise RuntimeError("a run is already in progress")
        trace = Trace()
        trace.listeners.append(self._on_batch)
        self.trace = trace
        self.result = None
        self.run = Run(target, trace=trace, on_stdout=self._on_stdout, paused=paused)
        self.stepper = Stepper(self.run)
        self.started_at, self.ended_at = time.monotonic(), None
        self._active, self.run_started = True, False
        self._task = asyncio.ensure_future(self._drive(self.run))
        return trace

    async def _drive(self, run: Run) -> None:
        from loopscope.tracer.runner import RunResult

        try:
            await run.start()
            self.run_started = True
            self.started.emit()
            result = await run.wait()
        except Exception as exc:  # the child could not even start: report it, keep the app
            run.trace.meta.update(status="crashed", error=f"could not start the child: {exc}")
            result = RunResult(run.trace, "crashed", None, error=run.trace.meta["error"])
        except asyncio.CancelledError:
            run.kill()
            self._active = False
            raise
        self.ended_at = time.monotonic()
        self._active = False
        self.result = result
        self._refresh.stop()
        self.events_arrived.emit()
        self.finished.emit(result)

    def _on_batch(self, first_seq: int, count: int) -> None:
        if not self._refresh.isActive():
            self._refresh.start()

    def _on_stdout(self, text: str) -> None:
        self.output_line.emit(text.rstrip("\n"))

    async def stop(self) -> None:
        """Asks the child to stop (killed after the runner's grace period) and waits for the end."""
        if self.run is None or self._task is None:
            return
        await self.run.stop()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(self._task)

    def request_stop(self) -> None:
        """Stop from a Qt slot: schedules `stop` on the loop."""
        if self.is_running and (self._stop_task is None or self._stop_task.done()):
            self._stop_task = asyncio.ensure_future(self.stop())

    def kill_now(self) -> None:
        """Kills the child at once; for when the app is going away and cannot wait."""
        if self.run is not None:
            self.run.stopped = True
            # The child leads its own process group, so this also ends what the program started.
            self.run.kill()

