"""What every way of driving a run shares, without an event loop: the program's output split
into lines, the trace's meta at the start, and how the run ended (its RunResult).

`tracer.runner.Run` drives a run on an asyncio loop (the app, stepping); the command line's
`trace`, `narrate`, `export` and `report` drive theirs with a plain selector
(`tracer.blocking_run`), so that they never import asyncio. Both end through `outcome`.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from loopscope.tracer.descendants import end_orphans
from loopscope.tracer.early_child import child_stdio_encoding
from loopscope.tracer.silence import explain_silence
from loopscope.tracer.source_files import track_source_files
from loopscope.tracer.stream import PIPE_LOST, FrameDecoder, StreamError
from loopscope.tracer.trace import SequenceGapError, Trace

if TYPE_CHECKING:
    from loopscope.tracer.target import Target

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


class RunResult:
    """How a run ended and what it recorded. A plain class, not a dataclass: `dataclasses`
    (with inspect, ast and tokenize) is the costliest import a traced one-liner's command
    line would make for it."""

    def __init__(self, trace: Trace, status: str, exit_code: int | None, stdout: str = "",
                 stderr: str = "", error: str | None = None, traceback: str | None = None,
                 dropped: int = 0, notes: list[str] | None = None) -> None:
        self.trace = trace
        self.status = status  # ok | error | stopped | crashed | timeout | protocol-error
        self.exit_code = exit_code
        self.stdout = stdout
        self.stderr = stderr
        self.error = error  # one line for the user, None when all went well
        self.traceback = traceback
        # events the child could not deliver; the stream never drops silently
        self.dropped = dropped
        # One line each about what the recording may be missing, and why (tracer.silence).
        self.notes: list[str] = [] if notes is None else notes

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __repr__(self) -> str:
        # Short on purpose: asyncio.run (3.11) formats the result's repr as it shuts down,
        # and spelling out the trace would spell out every event.
        return (
            f"RunResult(status={self.status!r}, exit_code={self.exit_code!r}, "
            f"events={len(self.trace)}, error={self.error!r})"
        )


class OutputLines:
    """Splits a byte stream into text lines, each handed on as soon as it is complete."""

    def __init__(self, on_line: Callable[[str], None] | None, limit: int | None,
                 encoding: str = "utf-8") -> None:
        self.on_line = on_line
        self.encoding = encoding
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
            complete = self._partial[:cut].decode(self.encoding, "replace")
            del self._partial[:cut]
            for line in complete.splitlines(keepends=True):
                self._add(line)

    def close(self) -> None:
        if self._partial:
            self._add(self._partial.decode(self.encoding, "replace"))
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


def begin_trace(trace: Trace, target: Target, pid: int) -> None:
    """What the trace's meta says of a run that has just started."""
    trace.meta.update(target=target.label, model=target.model, kind=target.kind,
                      status="running", pid=pid)
    # the identity of each source file, so a saved trace shows only these files' text
    track_source_files(trace, [target.value] if target.kind == "script" else [])


class RunReading:
    """What both drivers keep of a child while they read it: its trace and the decoder that
    fills it, the program's output lines and the command pipe. A stream that breaks kills the
    run; `_report` judges how it ended. The drivers add how they wait and kill."""

    def __init__(self, target: Target, trace: Trace,
                 on_stdout: Callable[[str], None] | None,
                 on_stderr: Callable[[str], None] | None) -> None:
        self.target = target
        self.trace = trace
        self.protocol_error: str | None = None
        self.stopped = False
        self._decoder = FrameDecoder(trace)
        encoding = child_stdio_encoding()  # what the child writes in (PYTHONIOENCODING)
        self._stdout = OutputLines(on_stdout, STDOUT_LIMIT, encoding)
        self._stderr = OutputLines(on_stderr, STDERR_LIMIT, encoding)
        self._control_fd: int | None = None
        # what tracer.silence says of the whole trace, worked out once the end frame is in
        self._silence: list[str] | None = None
        # For a run that will be saved natively: the details are encoded as they land, while
        # the child runs, instead of after it (DetailTable.encode_ahead).
        self.encode_details_ahead = False

    def kill(self) -> None:
        raise NotImplementedError

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

    def close_control(self) -> None:
        """Closes the command pipe; a child still running takes it as its parent gone, and
        exits."""
        if self._control_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._control_fd)
            self._control_fd = None

    def _on_events(self, data: bytes) -> None:
        if self.protocol_error is not None:
            return
        decoder = self._decoder
        try:
            decoder.feed(data)
        except (StreamError, SequenceGapError) as exc:
            self.protocol_error = str(exc)
            self.kill()
            return
        if self.encode_details_ahead:
            from loopscope.tracer.native import DeflateAhead

            trace = self.trace
            trace.details.encode_ahead()
            # and the columns deflated as they grow, whenever there is nothing to read
            if not isinstance(trace.deflated_ahead, DeflateAhead):
                trace.deflated_ahead = DeflateAhead(trace)
        if decoder.end is not None and self._silence is None:
            # The trace is whole: its notes are worked out while the child tears itself down
            # (tens of ms for a program that made 100k tasks), not after.
            self._silence = silence_notes(self.target, decoder)

    def work_while_idle(self) -> bool:
        """Does a slice of what the run's end would do (a run saved natively deflates its
        columns: native.DeflateAhead), for a driver with nothing to read; True if there may
        be more, False once it has caught up."""
        ahead = self.trace.deflated_ahead
        if ahead is None or self.protocol_error is not None:
            return False
        from loopscope.tracer.native import DeflateAhead

        return isinstance(ahead, DeflateAhead) and ahead.work()

    def _finish_stream(self) -> None:
        """The event pipe has closed: a frame cut short is a broken stream."""
        if self.protocol_error is None:
            try:
                self._decoder.finish()
            except StreamError as exc:
                self.protocol_error = str(exc)

    @staticmethod
    def _kill_leftovers(group: int, mark: str) -> None:
        # The child has been reaped, but what the program started may live on in its group,
        # or outside it in sessions of its own (adopted by us: tracer.descendants).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        end_orphans(mark, group)

    def _close_output(self) -> None:
        self._stdout.close()
        self._stderr.close()
        self.close_control()

    def _report(self, code: int | None, timed_out: bool, timeout: float | None) -> RunResult:
        ending = Ending(code, timed_out, timeout, self.stopped, self.protocol_error)
        return outcome(self.target, self._decoder, ending, self._stdout, self._stderr,
                       self._silence)


class Ending:
    """How a run's child ended, as its driver saw it: the last of what `outcome` needs."""

    def __init__(self, code: int | None, timed_out: bool = False, timeout: float | None = None,
                 stopped: bool = False, protocol_error: str | None = None) -> None:
        self.code = code  # the child's exit status (negative: the signal that killed it)
        self.timed_out = timed_out
        self.timeout = timeout
        self.stopped = stopped  # the parent asked it to stop
        self.protocol_error = protocol_error  # the event stream broke: why


def outcome(target: Target, decoder: FrameDecoder, ending: Ending, stdout: OutputLines,
            stderr_lines: OutputLines, silence: list[str] | None = None) -> RunResult:
    """The run's result, also written into its trace's meta. `silence`: `silence_notes`,
    when they were worked out already."""
    trace = decoder.trace
    end = decoder.end
    stderr = stderr_lines.value()
    status, error = _classify(decoder, ending, stderr)
    dropped = _int(end.get("dropped")) if end else 0
    trace.meta.update(
        status=status, exit_code=ending.code, error=error, dropped=dropped,
        stderr=stderr[-20000:], python=(decoder.hello or {}).get("python"), events=len(trace),
    )
    traceback = end.get("traceback") if end else None
    notes = _notes(target, decoder, status, silence)
    if notes:
        trace.meta["notes"] = notes
    return RunResult(trace, status, ending.code, stdout.value(), stderr, error,
                     traceback if isinstance(traceback, str) else None, dropped, notes)


def _notes(target: Target, decoder: FrameDecoder, status: str,
           silence: list[str] | None) -> list[str]:
    end = decoder.end or {}
    notes = [str(note) for note in end.get("notes") or ()]
    if status == "ok":
        notes += silence if silence is not None else silence_notes(target, decoder)
    return notes


def silence_notes(target: Target, decoder: FrameDecoder) -> list[str]:
    """What the recording of a script that ran to its end may be missing (tracer.silence);
    only the end frame's census and the events, all in once the end frame is."""
    if target.kind != "script":
        return []
    census = (decoder.end or {}).get("census")
    return explain_silence(decoder.trace, census if isinstance(census, dict) else None,
                           target.model)


def _classify(decoder: FrameDecoder, ending: Ending, stderr: str) -> tuple[str, str | None]:
    end = decoder.end
    code = ending.code
    exit_text = describe_exit(code)
    said = _stderr_gist(stderr)
    if ending.protocol_error is not None:
        return "protocol-error", _one_line(
            f"the child broke the event stream: {ending.protocol_error} ({exit_text}{said})"
        )
    if ending.timed_out:
        return "timeout", _one_line(
            f"the run did not finish within {ending.timeout:g} s and was stopped "
            f"({exit_text}){said}"
        )
    if ending.stopped:
        return "stopped", None
    if end is not None and end.get("status") == "stopped":
        # nobody here asked it to stop: a signal from outside ended the program
        return "stopped", _one_line(
            f"the program was stopped by a SIGTERM from outside Loopscope ({exit_text})")
    if end is None and PIPE_LOST in stderr:
        return "crashed", _one_line(
            "the program closed Loopscope's event pipe mid-run: the trace ends there, though "
            f"the program went on ({exit_text})")
    if end is None:
        before = "before it started" if decoder.hello is None else "mid-run"
        return "crashed", _one_line(f"the child {_ended(code)} {before}{said}")
    if end.get("status") == "error":
        failure = _one_line(str(end.get("error")))
        return "error", f"the program failed: {failure} ({exit_text})"
    if code != 0:
        return "crashed", _one_line(f"the child {_ended(code)} after the run ended{said}")
    expected = end.get("events")
    if isinstance(expected, int) and expected != len(decoder.trace):
        return "protocol-error", _one_line(
            f"the child recorded {expected} events but {len(decoder.trace)} arrived"
        )
    status = end.get("status", "ok")
    return (status if isinstance(status, str) else "ok"), None


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
