"""The parent's side of a run: start the child, read its event stream, stop it, report how it ended.

Works on whatever asyncio loop is running (a plain one in the CLI, qasync in the app): the
child's four pipes are plain pipes read with `loop.connect_read_pipe`, and the process is
awaited through asyncio's own subprocess support. The events land in a Trace as they arrive;
whatever arrived is kept however the child ends. After a run, whatever its ending, no child,
no grandchild in the child's process group and no pipe of the run is left behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from loopscope.tracer.descendants import end_orphans
from loopscope.tracer.held_frame import HeldView
from loopscope.tracer.launch import Launched, child_command, launch
from loopscope.tracer.silence import explain_silence
from loopscope.tracer.source_files import track_source_files
from loopscope.tracer.stream import FrameDecoder, StreamError
from loopscope.tracer.target import Target
from loopscope.tracer.trace import SequenceGapError, Trace

# How long a child gets to stop by itself before it is killed.
STOP_GRACE_S = 0.5
# How long the pipes may stay open after the child exited (a grandchild holding them).
PIPE_DRAIN_S = 2.0
# The tail of the child's stderr and stdout that is kept; the beginning matters less than
# the end, and a program may print far more than memory holds (each line is handed on live).
STDERR_LIMIT = 1 << 20
STDOUT_LIMIT = 1 << 20
# A "line" longer than this is handed on in pieces rather than held until its newline.
LINE_PIECE_LIMIT = 1 << 16


@dataclass
class RunResult:
    trace: Trace
    status: str  # ok | error | stopped | crashed | timeout | protocol-error
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # one line for the user, None when all went well
    traceback: str | None = None
    dropped: int = 0  # events the child could not deliver; the stream never drops silently
    # One line each about what the recording may be missing, and why (tracer.silence).
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run (3.11) formats the result's repr as it shuts down,
        # and the dataclass default would spell out every event of the trace.
        return (
            f"RunResult(status={self.status!r}, exit_code={self.exit_code!r}, "
            f"events={len(self.trace)}, error={self.error!r})"
        )


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


class _Lines:
    """Splits a byte stream into text lines, each handed on as soon as it is complete."""

    def __init__(self, on_line: Callable[[str], None] | None, limit: int | None) -> None:
        self.on_line = on_line
        self.limit = limit
        self.text: collections.deque[str] = collections.deque()
        self._size = 0
        self._partial = bytearray()

    def feed(self, data: bytes) -> None:
        self._partial += data
        cut = self._partial.rfind(b"\n") + 1
        if not cut and len(self._partial) > LINE_PIECE_LIMIT:
            cut = len(self._partial)
        if cut:
            complete = self._partial[:cut].decode("utf-8", "replace")
            del self._partial[:cut]
            for line in complete.splitlines(keepends=True):
                self._add(line)

    def close(self) -> None:
        if self._partial:
            self._add(self._partial.decode("utf-8", "replace"))
            self._partial.clear()

    def _add(self, line: str) -> None:
        self.text.append(line)
        self._size += len(line)
        if self.limit is not None:
            while self._size > self.limit and len(self.text) > 1:
                self._size -= len(self.text.popleft())
        if self.on_line is not None:
            self.on_line(line)

    def value(self) -> str:
        return "".join(self.text)


class _ChildProcess:
    """The started child as an event loop waits for it: its pid, its exit status once it is
    reaped (None before), and `wait()`. The exit is watched through a pidfd where Linux has
    them (no thread), else by a thread blocked in waitpid."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
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


class Run:
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
        self.target = target
        # Start held at the first event, for stepping (tracer.stepping.Stepper drives it).
        self.paused = paused
        self.trace = trace if trace is not None else Trace()
        self.python = python
        self.on_stdout = on_stdout
        # The program's stdin: DEVNULL (the app), None to share the caller's (the CLI), or a fd.
        self.stdin = stdin
        self.stop_grace_s = stop_grace_s
        self.process: _ChildProcess | None = None
        self.protocol_error: str | None = None
        self.stopped = False
        self.event_transport: asyncio.ReadTransport | None = None
        self._decoder = FrameDecoder(self.trace)
        self._stdout = _Lines(self._echo_stdout, STDOUT_LIMIT)
        self._stderr = _Lines(on_stderr, STDERR_LIMIT)
        self._readers: list[_PipeReader] = []
        self._control_fd: int | None = None
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
            self.trace.meta.update(target=self.target.label, model=self.target.model,
                                   kind=self.target.kind, status="running", pid=launched.pid)
            # the identity of each source file, so a saved trace shows only these files' text
            track_source_files(self.trace, [self.target.value] if self.target.kind == "script"
                               else [])
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

    def _on_events(self, data: bytes) -> None:
        if self.protocol_error is not None:
            return
        try:
            self._decoder.feed(data)
        except (StreamError, SequenceGapError) as exc:
            self._protocol_failure(str(exc))

    def _protocol_failure(self, message: str) -> None:
        self.protocol_error = message
        self.kill()

    def _echo_stdout(self, line: str) -> None:
        if self.on_stdout is not None:
            self.on_stdout(line)

    def send_command(self, command: str) -> bool:
        """Sends one command line to the child; False if it could not be delivered now."""
        if "\n" in command or "\r" in command:
            raise ValueError("a control command is one line")
        if self._control_fd is None:
            return False
        try:
            os.write(self._control_fd, command.encode() + b"\n")
        except OSError:  # the child is gone, or so stuck that 64 KiB of commands are queued
            return False
        return True

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
            self._kill_leftovers(process.pid)
            await self._drain()
        except asyncio.CancelledError:
            self.kill()
            self._close_pipes()
            raise
        self._close_pipes()
        self._result = self._report(process.returncode, timed_out, timeout)
        return self._result

    def _kill_leftovers(self, group: int) -> None:
        # The child has been reaped, but what the program started may live on in its group,
        # or outside it in sessions of its own (adopted by us: tracer.descendants).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        end_orphans(self._mark, group)

    async def _drain(self) -> None:
        """Reads what is still in the pipes; the child is gone, so waiting cannot deadlock."""
        if self.event_transport is not None and not self.event_transport.is_closing():
            self.event_transport.resume_reading()
        closing = [reader.closed for reader in self._readers]
        if closing:
            await asyncio.wait(closing, timeout=PIPE_DRAIN_S)
        if self._readers and self._readers[0].closed.done() and self.protocol_error is None:
            try:
                self._decoder.finish()
            except StreamError as exc:
                self.protocol_error = str(exc)

    def _close_pipes(self) -> None:
        for reader in self._readers:
            if reader.transport is not None:
                reader.transport.close()
        self._stdout.close()
        self._stderr.close()
        self.close_control()

    def close_control(self) -> None:
        """Closes the command pipe; a child still running takes it as its parent gone, and exits."""
        if self._control_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._control_fd)
            self._control_fd = None

    def _report(self, code: int | None, timed_out: bool, timeout: float | None) -> RunResult:
        decoder = self._decoder
        end = decoder.end
        stderr = self._stderr.value()
        status, error = self._classify(code, timed_out, timeout, stderr)
        dropped = _int(end.get("dropped")) if end else 0
        self.trace.meta.update(
            status=status, exit_code=code, error=error, dropped=dropped, stderr=stderr[-20000:],
            python=(decoder.hello or {}).get("python"), events=len(self.trace),
        )
        traceback = end.get("traceback") if end else None
        notes = self._notes(status)
        if notes:
            self.trace.meta["notes"] = notes
        return RunResult(self.trace, status, code, self._stdout.value(), stderr, error,
                         traceback if isinstance(traceback, str) else None, dropped, notes)

    def _notes(self, status: str) -> list[str]:
        end = self._decoder.end or {}
        notes = [str(note) for note in end.get("notes") or ()]
        census = end.get("census")
        if status == "ok" and self.target.kind == "script":
            notes += explain_silence(self.trace, census if isinstance(census, dict) else None,
                                     self.target.model)
        return notes

    def _classify(
        self, code: int | None, timed_out: bool, timeout: float | None, stderr: str
    ) -> tuple[str, str | None]:
        end = self._decoder.end
        exit_text = describe_exit(code)
        said = _stderr_gist(stderr)
        if self.protocol_error is not None:
            return "protocol-error", _one_line(
                f"the child broke the event stream: {self.protocol_error} ({exit_text}{said})"
            )
        if timed_out:
            return "timeout", _one_line(
                f"the run did not finish within {timeout:g} s and was stopped ({exit_text}){said}"
            )
        if self.stopped:
            return "stopped", None
        if end is not None and end.get("status") == "stopped":
            # nobody here asked it to stop: a signal from outside ended the program
            return "stopped", _one_line(
                f"the program was stopped by a SIGTERM from outside Loopscope ({exit_text})")
        if end is None:
            before = "before it started" if self._decoder.hello is None else "mid-run"
            return "crashed", _one_line(f"the child {_ended(code)} {before}{said}")
        if end.get("status") == "error":
            failure = _one_line(str(end.get("error")))
            return "error", f"the program failed: {failure} ({exit_text})"
        if code != 0:
            return "crashed", _one_line(f"the child {_ended(code)} after the run ended{said}")
        expected = end.get("events")
        if isinstance(expected, int) and expected != len(self.trace):
            return "protocol-error", _one_line(
                f"the child recorded {expected} events but {len(self.trace)} arrived"
            )
        status = end.get("status", "ok")
        return (status if isinstance(status, str) else "ok"), None


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


def describe_exit(code: int | None) -> str:
    """"exit status 3" or "killed by SIGSEGV", for the one error line."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _ended(code: int | None) -> str:
    if code is not None and code < 0:
        return f"was {describe_exit(code)}"
    return f"exited with status {code}"


def _stderr_gist(stderr: str) -> str:
    """The stderr line that says most: a fatal error's headline, else the last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    if not lines:
        return ""
    fatal = next((line for line in lines if line.startswith("Fatal Python error")), None)
    return f"; stderr: {fatal or lines[-1]}"


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


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
