"""What a process forked by the traced program inherits from Loopscope, and how it is let go.

A fork copies the child whole: its recorder with events not yet sent, the frame writer's
buffer, the event pipe, the SIGTERM handler that turns a stop into StopRequested, and the
instrumentation. Left alone, a forked worker would write a second copy of the stream into
the pipe (the parent sees a sequence gap and kills the run) and would answer its pool's
SIGTERM with Loopscope's stop (a StopRequested traceback, or a worker that never exits).

So in every forked process, right after the fork: the event pipe is pointed at /dev/null
(the inherited buffer drains there), the recorder is closed and sinks nothing, the step
gate is gone, SIGTERM is back to its default, and the tracing hooks Loopscope installed are
switched off. The forked process then runs untraced, exactly as it would without Loopscope;
the traced process goes on recording.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from loopscope.tracer.events import Batch
from loopscope.tracer.recorder import Recorder

TOOL_PREFIX = "loopscope"


class _Nowhere:
    """A batch sink that keeps nothing: what a forked process records goes here."""

    def write_batch(self, batch: Batch) -> None:
        return None


class ForkGuard:
    """Registered once per child with os.register_at_fork; `forked` tells the two apart."""

    def __init__(self, recorder: Recorder, pipe_fds: Sequence[int], writer: Any) -> None:
        self.recorder = recorder
        self.pipe_fds = tuple(pipe_fds)
        self.writer = writer
        self.owner_pid = os.getpid()

    def install(self) -> None:
        os.register_at_fork(after_in_child=self.after_fork_in_child)

    @property
    def forked(self) -> bool:
        """True in a process forked from the traced one."""
        return os.getpid() != self.owner_pid

    def after_fork_in_child(self) -> None:
        if not self.forked:
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in self.pipe_fds:
                with contextlib.suppress(OSError):
                    os.dup2(devnull, fd, inheritable=False)
        finally:
            os.close(devnull)
        self.writer.after_write = None
        recorder = self.recorder
        recorder.gate = None
        recorder.sink = _Nowhere()
        recorder.closed = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _switch_off_hooks()


def _ours(hook: object) -> bool:
    owner = getattr(hook, "__module__", None) or type(hook).__module__
    return isinstance(owner, str) and owner.startswith(TOOL_PREFIX)


def _switch_off_hooks() -> None:
    """Stops the tracing hooks the instrumentation installed in this (forked) process; the
    program's own (a debugger, coverage) stay."""
    if _ours(sys.gettrace()):
        sys.settrace(None)
    if _ours(sys.getprofile()):
        sys.setprofile(None)
    monitoring = getattr(sys, "monitoring", None)
    if monitoring is None:
        return
    every_event = [value for name, value in vars(monitoring.events).items()
                   if name.isupper() and isinstance(value, int) and value & (value - 1) == 0
                   and value]
    for tool in range(6):
        name = monitoring.get_tool(tool)
        if isinstance(name, str) and name.startswith(TOOL_PREFIX):
            monitoring.set_events(tool, 0)
            for event in every_event:
                monitoring.register_callback(tool, event, None)
            monitoring.free_tool_id(tool)
