"""Driving a run to its end without an event loop: the command line's way.

`loopscope trace` (and narrate, export, report) only waits for its child while reading the
child's pipes; asyncio's import alone cost its command line more CPU than the rest of what it
does for a one-liner. So these commands watch the event, stdout and stderr pipes and a pidfd
of the child with a plain selector instead. What the run records and how its end is judged
are those of `tracer.runner.Run` (both use tracer.run_parts); the app and stepping, which need
an event loop anyway, use that one.

`stop()` asks the child to stop and kills it if it has not ended within the grace period;
`kill()` kills it at once. Both may be called from a signal handler (a signal wakes the
selector: signal.set_wakeup_fd) or from another thread while `wait()` waits.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time
from collections.abc import Callable

from loopscope.tracer.launch import Launched
from loopscope.tracer.run_parts import (
    PIPE_DRAIN_S,
    STOP_GRACE_S,
    RunReading,
    RunResult,
    begin_trace,
)
from loopscope.tracer.target import Target
from loopscope.tracer.trace import Trace

READ_SIZE = 1 << 18  # as much as asyncio's pipe transports read at a time
# Without a pidfd (Linux before 5.3), how often the child's exit is looked for.
EXIT_POLL_S = 0.05


class BlockingRun(RunReading):
    """A launched child (tracer.launch) read to its end by `wait()`; its events land in
    `trace`. Owns the launched pipes from here on."""

    def __init__(self, launched: Launched, target: Target,
                 on_stdout: Callable[[str], None] | None = None,
                 on_stderr: Callable[[str], None] | None = None,
                 stop_grace_s: float = STOP_GRACE_S) -> None:
        super().__init__(target, Trace(), on_stdout, on_stderr)
        self.stop_grace_s = stop_grace_s
        self._launched = launched
        # the pipes still open, each with what takes its bytes
        self._pipes: dict[int, Callable[[bytes], None]] = {
            launched.events_fd: self._on_events, launched.stdout_fd: self._stdout.feed,
            launched.stderr_fd: self._stderr.feed,
        }
        self._control_fd = launched.control_fd
        self._kill_at: float | None = None  # when a stop that was asked for turns into a kill
        self._wake: int | None = None  # written to wake wait() up (a stop from another thread)
        begin_trace(self.trace, target, launched.pid)

    @property
    def ended(self) -> bool:
        return self._launched.popen.returncode is not None

    def kill(self) -> None:
        """Kills the child and anything in its process group, at once."""
        if not self.ended:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._launched.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Asks the child to stop (what it recorded is kept); it is killed if it has not ended
        within the grace period. Returns at once."""
        if self.ended or self.stopped:
            return
        self.stopped = True
        self.send_command("stop")
        self._kill_at = time.monotonic() + self.stop_grace_s
        wake = self._wake
        if wake is not None:  # wait() must look again at when to kill (from a thread: no
            with contextlib.suppress(OSError):  # signal woke it)
                os.write(wake, b"\0")

    def wait(self, timeout: float | None = None) -> RunResult:
        """Reads the child's pipes until it ends (stopping it after `timeout` s), then reports
        how it ended. Leaves no process of the run and no pipe behind."""
        popen = self._launched.popen
        selector = selectors.DefaultSelector()
        wake_read, wake_write = os.pipe()
        watches = [wake_read, wake_write]
        old_wakeup: int | None = None
        try:
            for fd in (wake_read, wake_write):
                os.set_blocking(fd, False)
            with contextlib.suppress(ValueError):  # not the main thread: polled instead
                old_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
            selector.register(wake_read, selectors.EVENT_READ)
            self._wake = wake_write
            exit_fd = _exit_watch(popen.pid)
            if exit_fd is not None:
                watches.append(exit_fd)
                selector.register(exit_fd, selectors.EVENT_READ)
            for fd in self._pipes:
                selector.register(fd, selectors.EVENT_READ)
            deadline = None if timeout is None else time.monotonic() + timeout
            timed_out = False
            idle_work = True  # until work_while_idle has caught up with what was read
            while popen.poll() is None:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    timed_out, deadline = True, None
                    self.stop()
                if self._kill_at is not None and now >= self._kill_at:
                    self._kill_at = None
                    self.kill()
                waits = [at - now for at in (deadline, self._kill_at) if at is not None]
                if exit_fd is None or old_wakeup is None:
                    waits.append(EXIT_POLL_S)
                if idle_work:
                    # nothing to read now: a slice of the run's end, done meanwhile
                    # (run_parts), until it has caught up with what came
                    if not self._serve(selector, 0.0, wake_read):
                        idle_work = self.work_while_idle()
                    continue
                idle_work = self._serve(selector, max(0.0, min(waits)) if waits else None,
                                        wake_read)
            if exit_fd is not None:
                selector.unregister(exit_fd)  # readable for good now: the drain must not spin
            self._kill_leftovers(popen.pid, self._launched.mark)
            self._drain(selector, wake_read)
        except BaseException:
            self.kill()
            raise
        finally:
            self._wake = None
            if old_wakeup is not None:
                signal.set_wakeup_fd(old_wakeup)
            selector.close()
            for fd in watches:
                os.close(fd)
            self._close_pipes()
        return self._report(popen.returncode, timed_out, timeout)

    # -- inside wait() -------------------------------------------------------------------

    def _serve(self, selector: selectors.BaseSelector, timeout: float | None,
               wake_read: int) -> bool:
        """Waits up to `timeout` s for something to read, and reads it; False if nothing
        came."""
        ready = selector.select(timeout)
        for key, _mask in ready:
            fd = key.fd
            if fd == wake_read:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 512)  # a signal came: the loop looks again
                continue
            take = self._pipes.get(fd)
            if take is None:
                continue  # the exit watch: the loop sees the child has ended
            data = os.read(fd, READ_SIZE)
            if data:
                take(data)
            else:
                selector.unregister(fd)
                del self._pipes[fd]
                os.close(fd)
        return bool(ready)

    def _drain(self, selector: selectors.BaseSelector, wake_read: int) -> None:
        """Reads what is still in the pipes; the child is gone, so waiting cannot deadlock
        (a grandchild holding a pipe open is given PIPE_DRAIN_S)."""
        events_fd = self._launched.events_fd
        give_up = time.monotonic() + PIPE_DRAIN_S
        while self._pipes:
            left = give_up - time.monotonic()
            if left <= 0:
                break
            self._serve(selector, left, wake_read)
        if events_fd not in self._pipes:
            self._finish_stream()

    def _close_pipes(self) -> None:
        for fd in self._pipes:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._pipes.clear()
        self._close_output()


def _exit_watch(pid: int) -> int | None:
    """A pidfd that turns readable when the child exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None
