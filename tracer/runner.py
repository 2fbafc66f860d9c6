"""The parent's side of a run: start the child, read its event stream, stop it, report how it ended.

Works on whatever asyncio loop is running (a plain one in the CLI, qasync in the app). The
events land in a Trace as they arrive; whatever arrived is kept however the child ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tracer.stream import FrameDecoder, StreamError
from tracer.target import Target
from tracer.trace import SequenceGapError, Trace

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE_S = 0.5


@dataclass
class RunResult:
    trace: Trace
    status: str  # ok | error | stopped | crashed | timeout | protocol-error
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # one line for the user, None when all went well
    traceback: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _EventPipe(asyncio.Protocol):
    def __init__(self, run: Run) -> None:
        self.run = run
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.run._on_data(data)

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class Run:
    """One child process running one target, its events landing in `trace`."""

    target: Target
    trace: Trace = field(default_factory=Trace)
    python: str = sys.executable
    on_stdout: Callable[[str], None] | None = None
    process: asyncio.subprocess.Process | None = None
    protocol_error: str | None = None
    stopped: bool = False
    _decoder: FrameDecoder | None = None
    _pipe: _EventPipe | None = None
    _control_fd: int | None = None
    _stdout: list[str] = field(default_factory=list)
    _stderr: list[str] = field(default_factory=list)
    _readers: list[asyncio.Task[None]] = field(default_factory=list)

    def command(self, events_fd: int, control_fd: int) -> list[str]:
        cmd = [
            self.python, "-m", "tracer.child",
            "--events-fd", str(events_fd), "--control-fd", str(control_fd),
            "--model", self.target.model,
        ]
        if self.target.kind == "scenario":
            cmd += ["--scenario", self.target.module]
        elif self.target.kind == "script":
            cmd += ["--script", self.target.value, "--", *self.target.args]
        else:
            raise ValueError(f"cannot run a {self.target.kind}")
        return cmd

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.trace.meta.update(target=self.target.label, model=self.target.model,
                               kind=self.target.kind, status="running")
        self._decoder = FrameDecoder(self.trace)
        events_read, events_write = os.pipe()
        control_read, control_write = os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("PYTHONIOENCODING", "utf-8")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.command(events_write, control_read),
                pass_fds=(events_write, control_read),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        finally:
            os.close(events_write)
            os.close(control_read)
        self._control_fd = control_write
        _, pipe = await loop.connect_read_pipe(
            lambda: _EventPipe(self), os.fdopen(events_read, "rb", buffering=0)
        )
        self._pipe = pipe
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            asyncio.ensure_future(self._collect(self.process.stdout, self._stdout, True)),
            asyncio.ensure_future(self._collect(self.process.stderr, self._stderr, False)),
        ]

    async def _collect(self, stream: asyncio.StreamReader, into: list[str], echo: bool) -> None:
        while line := await stream.readline():
            text = line.decode("utf-8", "replace")
            into.append(text)
            if echo and self.on_stdout is not None:
                self.on_stdout(text)

    def _on_data(self, data: bytes) -> None:
        if self.protocol_error is not None or self._decoder is None:
            return
        try:
            self._decoder.feed(data)
        except (StreamError, SequenceGapError, ValueError) as exc:
            self.protocol_error = str(exc)
            self._kill()

    def _kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, 9)

    def _close_control(self) -> None:
        if self._control_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._control_fd)
            self._control_fd = None

    def send_command(self, command: str) -> None:
        if self._control_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._control_fd, command.encode() + b"\n")

    async def stop(self) -> None:
        """Asks the child to stop, and kills it if it has not within STOP_GRACE_S."""
        if self.process is None or self.process.returncode is not None:
            return
        self.stopped = True
        self.send_command("stop")
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), STOP_GRACE_S)
        except TimeoutError:
            self._kill()

    async def wait(self, timeout: float | None = None) -> RunResult:
        assert self.process is not None and self._pipe is not None
        timed_out = False
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), timeout)
        except TimeoutError:
            timed_out = True
            await self.stop()
        await self.process.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._pipe.closed, 2.0)
        await asyncio.gather(*self._readers, return_exceptions=True)
        self._close_control()
        return self._result(timed_out, timeout)

    def _result(self, timed_out: bool, timeout: float | None) -> RunResult:
        assert self.process is not None and self._decoder is not None
        end = self._decoder.end or {}
        stderr = "".join(self._stderr)
        code = self.process.returncode
        tb = end.get("traceback")
        if self.protocol_error is not None:
            status, error = "protocol-error", f"the child broke the event stream: {self.protocol_error}"
        elif timed_out:
            status, error = "timeout", f"the run did not finish within {timeout:g} s and was stopped"
        elif self.stopped:
            status, error = "stopped", None
        elif end.get("status") == "error":
            status, error = "error", f"the program failed: {end.get('error')}"
        elif not end:
            last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
            status, error = "crashed", f"the child exited with status {code} ({last})"
        else:
            status, error = str(end.get("status", "ok")), None
        self.trace.meta.update(status=status, exit_code=code, error=error,
                               dropped=int(end.get("dropped", 0) or 0), stderr=stderr[-20000:],
                               python=(self._decoder.hello or {}).get("python"))
        return RunResult(self.trace, status, code, "".join(self._stdout), stderr, error, tb)


async def run_target(
    target: Target,
    timeout: float | None = None,
    on_stdout: Callable[[str], None] | None = None,
    trace: Trace | None = None,
) -> RunResult:
    run = Run(target, trace=trace or Trace(), on_stdout=on_stdout)
    await run.start()
    return await run.wait(timeout)


def record_sync(target: Target, timeout: float | None = 60.0) -> RunResult:
    """Runs a target to the end on a fresh event loop; for the CLI and tests."""
    return asyncio.run(run_target(target, timeout))
