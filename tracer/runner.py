"""The parent's side of a run: start the child, read its event stream, stop it, report how it ended.

Works on whatever asyncio loop is running (qasync in the app, a plain one for stepping): the
child's four pipes are plain pipes read with `loop.connect_read_pipe`, and the process is
awaited through asyncio's own subprocess support. The events land in a Trace as they arrive;
whatever arrived is kept however the child ends. After a run, whatever its ending, no child,
no grandchild in the child's process group and no pipe of the run is left behind. The command
line's recording commands drive theirs without asyncio (tracer.blocking_run); what both share
is tracer.run_parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from loopscope.tracer.launch import ChildProcess, Launched, child_command, launch
from loopscope.tracer.run_parts import (
    PIPE_DRAIN_S,
    STDOUT_LIMIT,
    STOP_GRACE_S,
    RunReading,
    RunResult,
    begin_trace,
    describe_exit,
)
from loopscope.tracer.target import Target
from loopscope.tracer.trace import Trace

if TYPE_CHECKING:
    from loopscope.tracer.held_frame import HeldView

# (the result and its limits are defined with the blocking driver's shared parts)
__all__ = ["STDOUT_LIMIT", "Run", "RunResult", "describe_exit", "record_sync", "run_target"]


class _PipeReader(asyncio.Protocol):
    """Hands a pipe's bytes to a callback and resolves `closed` when the pipe is done."""

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self.on_data = on_data
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.ReadTransport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _ChildProcess:
    """The started child as an event loop waits for it: its pid, its exit status once it is
    reaped (None before), and `wait()`. The exit is watched through a pidfd where Linux has
    them (no thread), else by a thread blocked in waitpid."""

    def __init__(self, popen: ChildProcess) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._exited: asyncio.Future[None] | None = None

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    async def wait(self) -> int:
        if self._popen.returncode is None:
            # shielded: a wait_for that times out must not cancel the watch itself
            await asyncio.shield(self._exit_watch())
        code = self._popen.returncode
        assert code is not None
        return code

    def _exit_watch(self) -> asyncio.Future[None]:
        if self._exited is not None:
            return self._exited
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        self._exited = exited
        try:
            pidfd = os.pidfd_open(self.pid)
        except (AttributeError, OSError):  # not Linux 5.3+: a thread waits instead
            threading.Thread(target=self._wait_in_thread, args=(loop, exited),
                             name="loopscope-child-wait", daemon=True).start()
            return exited

        def on_exit() -> None:
            if self._popen.poll() is None:
                return
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not exited.done():
                exited.set_result(None)

        loop.add_reader(pidfd, on_exit)
        on_exit()  # it may have exited before the watch began
        return exited

    def _wait_in_thread(self, loop: asyncio.AbstractEventLoop,
                        exited: asyncio.Future[None]) -> None:
        self._popen.wait()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(_resolve, exited)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Run(RunReading):
    """One child process running one target, its events landing in `trace`.

    `start()`, then `wait()` for the result; `stop()` or a timeout end it early. The event
    pipe's transport is `event_transport`: pausing its reading makes the child wait.
    """

    def __init__(
        self,
        target: Target,
        trace: Trace | None = None,
        python: str = sys.executable,
        on_stdout: Callable[[str], None] | None = None,
        stop_grace_s: float = STOP_GRACE_S,
        paused: bool = False,
        on_stderr: Callable[[str], None] | None = None,
        stdin: int | None = asyncio.subprocess.DEVNULL,
        launched: Launched | None = None,
    ) -> None:
        super().__init__(target, trace if trace is not None else Trace(), self._echo_stdout,
                         on_stderr)
        # Start held at the first event, for stepping (tracer.stepping.Stepper drives it).
        self.paused = paused
        self.python = python
        self.on_stdout = on_stdout
        # The program's stdin: DEVNULL (the app), None to share the caller's (the CLI), or a fd.
        self.stdin = stdin
        self.stop_grace_s = stop_grace_s
        self.process: _ChildProcess | None = None
        self.event_transport: asyncio.ReadTransport | None = None
        self._readers: list[_PipeReader] = []
        self._result: RunResult | None = None
        # the child, when tracer.launch already started it (with this target, python, paused
        # and stdin); start() adopts it
        self._launched = launched
        self._mark = ""

    def command(self, events_fd: int, control_fd: int) -> list[str]:
        return child_command(self.python, self.target, events_fd, control_fd, self.paused)

    # -- starting -----------------------------------------------------------------------

    def launch(self) -> Launched:
        """Starts the child without waiting for anything (tracer.launch); `start()` then
        adopts it. The command line launches first and imports the rest of itself after."""
        if self.process is not None or self._launched is not None:
            raise RuntimeError("this run has already started")
        self._launched = launch(self.target, self.python, self.paused, self.stdin)
        return self._launched

    async def start(self) -> None:
        if self.process is not None:
            raise RuntimeError("this run has already started")
        loop = asyncio.get_running_loop()
        launched = self._launched or self.launch()
        self._mark = launched.mark
        self.process = _ChildProcess(launched.popen)
        self._control_fd = launched.control_fd
        unconnected = launched.read_fds()
        try:
            begin_trace(self.trace, self.target, launched.pid)
            for on_data in (self._on_events, self._stdout.feed, self._stderr.feed):
                self._readers.append(await _read_pipe(loop, unconnected[0], on_data))
                unconnected.pop(0)
        except BaseException:
            for fd in unconnected:
                os.close(fd)
            self.kill()
            self._close_pipes()
            raise
        self.event_transport = self._readers[0].transport

    @property
    def held_view(self) -> HeldView | None:
        """What the program's paused frame held the last time the child was held
        (tracer.held_frame): its `seq` says at which hold."""
        return self._decoder.held

    # -- while it runs --------------------------------------------------------------------

    def _echo_stdout(self, line: str) -> None:
        if self.on_stdout is not None:
            self.on_stdout(line)

    # -- stepping (the commands of tracer.stepping; a Stepper decides which to send) ------

    def pause(self) -> bool:
        """Asks the child to hold at its next event."""
        return self.send_command("pause")

    def resume(self) -> bool:
        """Lets a held or stepping child run freely again."""
        return self.send_command("resume")

    def step(self, kind: str = "event", count: int = 1) -> bool:
        """Lets a held child run to its next event ("event", `count` of them), its next
        running/poll/dispatch event ("switch") or its next I/O event ("io"), and hold."""
        if kind not in ("event", "switch", "io") or count < 1:
            raise ValueError(f"cannot step {count} {kind!r}")
        return self.send_command(f"step {kind} {count}" if kind == "event" else f"step {kind}")

    @property
    def stream_closed(self) -> asyncio.Future[None]:
        """Done once the child's event pipe has closed: it has sent all it ever will."""
        if not self._readers:
            raise RuntimeError("the run has not been started")
        return self._readers[0].closed

    # -- ending -------------------------------------------------------------------------

    def kill(self) -> None:
        """Kills the child and anything it started, at once, without waiting."""
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """Asks the child to stop; kills it if it has not stopped within the grace period.

        Returns once the child has exited. The events it sent are kept.
        """
        process = self.process
        if process is None or process.returncode is not None:
            return
        self.stopped = True
        self.send_command("stop")
        try:
            await asyncio.wait_for(process.wait(), self.stop_grace_s)
        except TimeoutError:
            self.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 1.0)

    async def wait(self, timeout: float | None = None) -> RunResult:
        """Waits for the child to end (stopping it after `timeout` s) and reports how it ended."""
        if self._result is not None:
            return self._result
        process = self.process
        if process is None:
            raise RuntimeError("the run has not been started")
        timed_out = False
        try:
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                timed_out = True
                await self.stop()
                await process.wait()
            self._kill_leftovers(process.pid, self._mark)
            await self._drain()
        except asyncio.CancelledError:
            self.kill()
            self._close_pipes()
            raise
        self._close_pipes()
        self._result = self._report(process.returncode, timed_out, timeout)
        return self._result

    async def _drain(self) -> None:
        """Reads what is still in the pipes; the child is gone, so waiting cannot deadlock."""
        if self.event_transport is not None and not self.event_transport.is_closing():
            self.event_transport.resume_reading()
        closing = [reader.closed for reader in self._readers]
        if closing:
            await asyncio.wait(closing, timeout=PIPE_DRAIN_S)
        if self._readers and self._readers[0].closed.done():
            self._finish_stream()

    def _close_pipes(self) -> None:
        for reader in self._readers:
            if reader.transport is not None:
                reader.transport.close()
        self._close_output()



async def _read_pipe(
    loop: asyncio.AbstractEventLoop, fd: int, on_data: Callable[[bytes], None]
) -> _PipeReader:
    """Reads a pipe on the loop; the transport owns the fd from here on."""
    reader = _PipeReader(on_data)
    pipe = open(fd, "rb", buffering=0)  # noqa: SIM115 - the transport closes it
    try:
        await loop.connect_read_pipe(lambda: reader, pipe)
    except BaseException:
        pipe.close()
        raise
    return reader


async def run_target(
    target: Target,
    timeout: float | None = None,
    on_stdout: Callable[[str], None] | None = None,
    trace: Trace | None = None,
) -> RunResult:
    run = Run(target, trace=trace, on_stdout=on_stdout)
    await run.start()
    return await run.wait(timeout)


def record_sync(target: Target, timeout: float | None = 60.0) -> RunResult:
    """Runs a target to the end on a fresh event loop; for the CLI and tests."""
    return asyncio.run(run_target(target, timeout))
