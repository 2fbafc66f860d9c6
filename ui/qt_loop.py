"""The asyncio loop the app runs on: qasync's, with itself as the running loop in every callback.

qasync 0.28 runs callbacks from Qt timers, and Qt processes events when asyncio has no
running loop: in the last event round `run_until_complete` runs after `run_forever` has
cleared it, and in any `processEvents` between runs. A task step there fails on 3.14, which
refuses to step a task unless its loop is the running loop ("... is not the running loop"),
and on every Python whatever the step calls that asks for the running loop fails too
(`asyncio.wait`: "no running event loop"): a live run that ended in that round was reported
as a child that could not start (qasync issue 176, open). Here each timer callback runs with
this loop set as the running loop when no loop is. Remove this module, and use
`qasync.QEventLoop` directly, once a qasync release fixes the issue upstream.
"""

from __future__ import annotations

from asyncio import events
from typing import Any

import qasync  # type: ignore[import-untyped]

NEEDS_RUNNING_LOOP_FIX = hasattr(qasync, "_SimpleTimer")


class _TimerRunningItsLoop(qasync._SimpleTimer):  # type: ignore[misc]
    """qasync's callback timer, setting its loop as the running one around each callback."""

    def __init__(self, loop: Any) -> None:
        super().__init__()
        self._owner = loop

    def timerEvent(self, event: Any) -> None:  # a Qt override
        if events._get_running_loop() is not None:
            super().timerEvent(event)
            return
        events._set_running_loop(self._owner)
        try:
            super().timerEvent(event)
        finally:
            events._set_running_loop(None)


class QtEventLoop(qasync.QEventLoop):  # type: ignore[misc]
    """qasync.QEventLoop, with itself the running loop in its callbacks (the module's doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if NEEDS_RUNNING_LOOP_FIX:
            replaced: Any = getattr(self, "_timer")  # noqa: B009  (untyped in qasync)
            replaced.stop()
            setattr(self, "_timer", _TimerRunningItsLoop(self))  # noqa: B010
