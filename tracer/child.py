"""The child process: installs a model's instrumentation, runs the program, streams its events.

    python -m tracer.child --events-fd N [--control-fd M] --model MODEL
                           (--scenario MODULE | --script PATH) [-- ARGS...]

The event pipe carries frames (see tracer.stream); the program's own stdout and stderr stay
what they were, and each line the program prints is also recorded as an OUTPUT event on the
lane that printed it. The control pipe carries one command per line; "stop" ends the run.
When the control pipe closes (the parent died) the child exits at once.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import signal
import sys
import threading
import traceback
from types import FrameType
from typing import Any, TextIO

from tracer.events import NO_LANE, Code
from tracer.models import load_model
from tracer.program import Program
from tracer.recorder import Recorder
from tracer.stream import FrameWriter


class StopRequested(BaseException):
    """Raised in the traced thread when the parent asks the run to stop."""


class OutputRecorder(io.TextIOBase):
    """Stands in for sys.stdout: writes through and records each line on the current lane."""

    def __init__(self, recorder: Recorder, inner: TextIO) -> None:
        self.recorder = recorder
        self.inner = inner
        self._partial = ""

    def write(self, text: str) -> int:
        written = self.inner.write(text)
        self._partial += text
        if "\n" in self._partial:
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                _record_output(self.recorder, line)
        return written

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.inner.encoding

    def fileno(self) -> int:
        return self.inner.fileno()


def _record_output(recorder: Recorder, line: str) -> None:
    lane = recorder.current
    if lane != NO_LANE and not recorder.closed:
        recorder.record(lane, Code.OUTPUT, NO_LANE, recorder.detail(("text", line[:200])))


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tracer.child")
    parser.add_argument("--events-fd", type=int, required=True)
    parser.add_argument("--control-fd", type=int)
    parser.add_argument("--model", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario")
    source.add_argument("--script")
    parser.add_argument("args", nargs="*")
    return parser.parse_args(argv)


def _watch_control(fd: int) -> None:
    """Reads commands from the parent; a closed pipe means the parent is gone."""
    with open(fd, "rb", buffering=0) as control:
        for line in iter(control.readline, b""):
            if line.strip() == b"stop":
                signal.raise_signal(signal.SIGTERM)
                return
    os._exit(3)


def main(argv: list[str] | None = None) -> int:
    options = _parse(sys.argv[1:] if argv is None else argv)
    writer = FrameWriter(open(options.events_fd, "wb", buffering=1 << 16))  # noqa: SIM115
    program = Program(
        model=options.model,
        scenario_module=options.scenario,
        script=options.script,
        argv=list(options.args),
    )
    writer.hello(
        {
            "pid": os.getpid(),
            "model": program.model,
            "target": program.label,
            "python": platform.python_version(),
        }
    )
    recorder = Recorder(writer)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise StopRequested

    signal.signal(signal.SIGTERM, on_term)
    if options.control_fd is not None:
        threading.Thread(
            target=_watch_control, args=(options.control_fd,), daemon=True, name="control"
        ).start()

    real_stdout = sys.stdout
    sys.stdout = OutputRecorder(recorder, real_stdout)
    end: dict[str, Any] = {"status": "ok", "error": None, "traceback": None, "dropped": 0}
    exit_code = 0
    recorder.start_flush_timer()
    try:
        load_model(program.model).run(recorder, program)
    except StopRequested:
        end["status"] = "stopped"
        exit_code = 0
    except SystemExit as exc:
        code = exc.code
        if code not in (None, 0):
            end.update(status="error", error=f"the program exited with status {code}")
            exit_code = code if isinstance(code, int) else 1
    except BaseException as exc:  # the traced program's own failure, reported, not re-raised
        end.update(
            status="error",
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )
        sys.stderr.write(end["traceback"])
        exit_code = 1
    finally:
        sys.stdout.flush()
        sys.stdout = real_stdout
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        recorder.close()
        end["events"] = recorder.event_count
        writer.end(end)
        writer.out.close()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
