"""The `loopscope` command line.

    loopscope                        open the desktop app
    loopscope open FILE              open a saved trace in the app
    loopscope list                   the scenarios: id, model, title
    loopscope trace TARGET -o FILE   run TARGET headless and save its trace (.json: Chrome JSON)
    loopscope export TARGET -o FILE  write the timeline as an image (.png, .svg, .pdf)
    loopscope narrate TARGET         print the step-by-step narration
    loopscope step TARGET            run TARGET paused: Enter steps, c continues, q stops

TARGET is a scenario id, a script (arguments after --) or a saved trace. This module imports
no Qt at import time: the app and the image export are imported only by the commands that
need them, so list, trace and narrate work where Qt is missing. Every bad input ends in one
line on stderr ("loopscope: error: ...") and a non-zero exit; the only traceback ever shown
is the traced program's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from loopscope.scenarios import catalog
from loopscope.tracer.export_chrome import save_chrome_json
from loopscope.tracer.narrate import narrate, narration_line
from loopscope.tracer.native import NativeFormatError, load_native, save_native
from loopscope.tracer.runner import Run, RunResult
from loopscope.tracer.stepping import Stepper, step_lines
from loopscope.tracer.target import Target, TargetError, resolve_target
from loopscope.tracer.trace import Trace

PROG = "loopscope"
IMAGE_SUFFIXES = (".png", ".svg", ".pdf")
# A traced script's own exit status is passed on (1 when it raised, 128+N when signal N
# killed it); Loopscope's own statuses follow coreutils' timeout(1) and env(1), which are
# rarely a program's: 124 the run hit --timeout, 125 Loopscope itself failed (a bad target,
# an unwritable output, a broken event stream). 2 is a usage mistake (nothing ran).
EXIT_ERROR = 125
EXIT_TIMEOUT = 124
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure the user caused or must know about; the message is the one line to print."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, not the usage text plus a line."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{PROG}: error: {message} (see '{self.prog} --help')\n")
        sys.exit(EXIT_USAGE)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError(f"'{text}' must be zero or more seconds")
    return value


def _pixels(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of pixels") from None
    if not 16 <= value <= 20000:
        raise argparse.ArgumentTypeError(f"{value} pixels is out of range (16 to 20000)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="See concurrency: a timeline of who runs, who "
                     "waits for what, and who wakes whom. Without a command, opens the app.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    commands.add_parser("list", help="the built-in scenarios: id, model, title")

    opener = commands.add_parser("open", help="open a saved trace in the desktop app")
    opener.add_argument("file", metavar="FILE")

    def add_target(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("target", metavar="TARGET",
                         help="a scenario id, a script (its arguments after --) or a saved trace")
        sub.add_argument("--model", help="the script's concurrency model (default: guessed "
                         "from its imports): asyncio, generator, greenlet, gevent or select")
        sub.add_argument("--timeout", type=_seconds, metavar="S",
                         help="stop the run after S seconds (default: no limit)")

    tracer = commands.add_parser(
        "trace", help="run TARGET headless and save its trace",
        description="Run TARGET and save its trace: FILE ending in .json is Chrome Trace Event "
        "JSON that ui.perfetto.dev opens; any other ending is the native format.",
    )
    add_target(tracer)
    tracer.add_argument("-o", "--output", required=True, metavar="FILE")

    narrator = commands.add_parser("narrate", help="print the step-by-step narration")
    add_target(narrator)

    stepper = commands.add_parser(
        "step", help="run TARGET paused in the terminal: Enter steps, c continues, q stops",
        description="Run TARGET held before its first step and print one narration line per "
        "step, waiting for Enter before the next: 'c' continues to the end, 'q' stops the "
        "run and quits; end of input continues. The lines are those of 'loopscope narrate'.",
    )
    stepper.add_argument("target", metavar="TARGET",
                         help="a scenario id, a script (its arguments after --) or a saved trace")
    stepper.add_argument("--model", help="the script's concurrency model (default: guessed "
                         "from its imports): asyncio, generator, greenlet, gevent or select")

    exporter = commands.add_parser("export", help="write the timeline as a .png, .svg or .pdf")
    add_target(exporter)
    exporter.add_argument("-o", "--output", required=True, metavar="FILE")
    exporter.add_argument("--width", type=_pixels, default=1600, metavar="PX")
    exporter.add_argument("--height", type=_pixels, default=900, metavar="PX")
    exporter.add_argument("--theme", choices=("light", "dark"), default="light")
    exporter.add_argument("--start", type=_seconds, metavar="S", help="start of the time window")
    exporter.add_argument("--end", type=_seconds, metavar="S", help="end of the time window")
    return parser


# -- getting a trace: run the target, or load it ------------------------------------------


@dataclass
class Obtained:
    trace: Trace
    result: RunResult | None  # None when the trace was loaded from a file
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        """The status to exit with when the run failed: the program's own where it has one."""
        result = self.result
        if self.interrupted:
            return EXIT_INTERRUPTED
        if result is None:
            return EXIT_ERROR
        if result.status == "timeout":
            return EXIT_TIMEOUT
        code = result.exit_code
        if result.status in ("error", "crashed") and code is not None and code != 0:
            return code if code > 0 else 128 - code
        return EXIT_ERROR

    @property
    def failure(self) -> str | None:
        """The one line explaining why the run did not end well, or None."""
        if self.interrupted:
            return "interrupted: the run was stopped"
        if self.result is not None and not self.result.ok and self.result.status != "stopped":
            return self.result.error or f"the run ended with status {self.result.status}"
        return None


def _resolve(options: argparse.Namespace, script_args: Sequence[str]) -> Target:
    try:
        target = resolve_target(options.target, tuple(script_args), options.model)
    except TargetError as exc:
        raise CliError(str(exc)) from None
    if target.kind == "trace" and script_args:
        raise CliError("a saved trace takes no arguments; arguments after -- are for scripts")
    return target


class _CtrlC:
    """While entered: Ctrl-C asks the run's child to stop, keeping what it recorded; a second
    Ctrl-C kills it at once. `interrupted` is set at the first, so that whatever waits on the
    user (the step prompt) can give up waiting."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.interrupted = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._stopping: list[asyncio.Task[None]] = []

    def __enter__(self) -> _CtrlC:
        # Not possible off the main thread or without POSIX signals; Ctrl-C then simply aborts.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            self._loop.add_signal_handler(signal.SIGINT, self._on_interrupt)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._loop.remove_signal_handler(signal.SIGINT)

    def _on_interrupt(self) -> None:
        if self.interrupted.is_set():
            self.run.kill()
            return
        self.interrupted.set()
        self._stopping.append(self._loop.create_task(self.run.stop()))

    async def stopped(self) -> None:
        """Waits until a stop that Ctrl-C started has finished."""
        await asyncio.gather(*self._stopping)


async def _record(
    target: Target, timeout: float | None, on_stdout: Callable[[str], None] | None
) -> tuple[RunResult, bool]:
    """Runs the target to its end, or until Ctrl-C stops it (see _CtrlC). The program reads
    our stdin and its stderr streams through as it comes."""
    run = Run(target, on_stdout=on_stdout, on_stderr=_echo_stderr, stdin=None)
    await run.start()
    with _CtrlC(run) as ctrl_c:
        result = await run.wait(timeout)
        await ctrl_c.stopped()
    return result, ctrl_c.interrupted.is_set()


def _echo(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _echo_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def obtain_trace(target: Target, timeout: float | None, echo_stdout: bool) -> Obtained:
    if target.kind == "trace":
        try:
            return Obtained(load_native(target.value), None)
        except NativeFormatError as exc:
            raise CliError(str(exc)) from None
    result, interrupted = asyncio.run(_record(target, timeout, _echo if echo_stdout else None))
    if result.stderr and not result.stderr.endswith("\n"):
        sys.stderr.write("\n")  # the program's stderr went through live; end its last line
    dropped = int(result.trace.meta.get("dropped") or 0)
    if dropped:
        sys.stderr.write(f"{PROG}: warning: {dropped} events were dropped by the child\n")
    return Obtained(result.trace, result, interrupted)


# -- output paths -----------------------------------------------------------------------------


def check_writable(text: str) -> Path:
    """Proves the output path can be written, before any run starts, by opening it."""
    path = Path(text)
    if path.is_dir():
        raise CliError(f"cannot write {text}: it is a directory")
    parent = path.parent
    if not parent.is_dir():
        raise CliError(f"cannot write {text}: no such directory {parent}")
    existed = path.exists()
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        raise CliError(f"cannot write {text}: {exc.strerror or exc}") from None
    if not existed:
        path.unlink()
    return path


def save_trace(trace: Trace, path: Path) -> None:
    try:
        if path.suffix.lower() == ".json":
            save_chrome_json(trace, path)
        else:
            save_native(trace, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None


def _finish(obtained: Obtained, saved_to: Path | None = None) -> int:
    for note in obtained.result.notes if obtained.result is not None else ():
        sys.stderr.write(f"{PROG}: note: {note}\n")
    failure = obtained.failure
    if failure is None:
        return 0
    if saved_to is not None:
        failure += f" (the trace up to that point is saved in {saved_to})"
    raise CliError(failure, obtained.exit_code)


# -- the commands -------------------------------------------------------------------------------


def command_list() -> int:
    scenarios = catalog.all_scenarios()
    if not scenarios:
        raise CliError("no scenarios found")
    id_width = max(len(s.id) for s in scenarios)
    model_width = max(len(s.model) for s in scenarios)
    for scenario in scenarios:
        print(f"{scenario.id:<{id_width}}  {scenario.model:<{model_width}}  {scenario.title}")
    return 0


def command_trace(options: argparse.Namespace, script_args: Sequence[str]) -> int:
    target = _resolve(options, script_args)
    output = check_writable(options.output)
    obtained = obtain_trace(target, options.timeout, echo_stdout=True)
    save_trace(obtained.trace, output)
    if obtained.failure is None:
        sys.stderr.write(
            f"{PROG}: saved {len(obtained.trace)} events on {len(obtained.trace.lanes)} lanes "
            f"to {output}\n"
        )
    return _finish(obtained, output)


def command_narrate(options: argparse.Namespace, script_args: Sequence[str]) -> int:
    target = _resolve(options, script_args)
    obtained = obtain_trace(target, options.timeout, echo_stdout=False)
    for line in narrate(obtained.trace):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return _finish(obtained)


STEP_HINT = "Enter: next step, c: continue to the end, q: stop and quit"


def _step_key(text: str | None) -> str | None:
    """What a line typed at the step prompt asks for: "step", "continue", "quit", or None
    for something else. End of input (None) continues, as a script feeding lines expects."""
    if text is None:
        return "continue"
    word = text.strip().lower()
    if word == "":
        return "step"
    if word in ("c", "continue"):
        return "continue"
    if word in ("q", "quit"):
        return "quit"
    return None


class _TypedLines:
    """stdin's lines, read on a daemon thread so that the loop keeps serving the child's pipes
    (and a pending read never holds up the exit). None is end of input."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._loop = loop
        threading.Thread(target=self._read, name="loopscope-stdin", daemon=True).start()

    def _read(self) -> None:
        while True:
            line = sys.stdin.readline()
            self._loop.call_soon_threadsafe(self._lines.put_nowait, line or None)
            if not line:
                return

    async def next_key(self) -> str:
        while True:
            key = _step_key(await self._lines.get())
            if key is not None:
                return key
            sys.stderr.write(f"{PROG}: {STEP_HINT}\n")


async def _step_live(target: Target) -> tuple[RunResult, bool]:
    """Steps a child through its narration, a line per Enter; returns how the run ended and
    whether it was interrupted."""
    run = Run(target, paused=True)
    stepper = Stepper(run)
    await run.start()
    keys = _TypedLines(asyncio.get_running_loop())
    quit_early = False
    try:
        with _CtrlC(run) as ctrl_c:
            while not ctrl_c.interrupted.is_set():
                seq = await stepper.step("step")
                if seq is None or ctrl_c.interrupted.is_set():
                    break
                _print_line(narration_line(run.trace, seq) or "")
                key = await _unless_set(keys.next_key(), ctrl_c.interrupted)
                if key == "quit":
                    quit_early = True
                    await stepper.stop()
                    break
                if key == "continue":
                    await stepper.resume()
                    break
            result = await run.wait()
            await ctrl_c.stopped()
    finally:
        stepper.close()
    interrupted = ctrl_c.interrupted.is_set()
    if not quit_early and not interrupted:
        for _seq, line in step_lines(run.trace, stepper.position + 1):
            _print_line(line)
    return result, interrupted


async def _unless_set(waiting: Coroutine[Any, Any, str], event: asyncio.Event) -> str | None:
    """What `waiting` returns, or None as soon as `event` is set (a Ctrl-C at the prompt
    must not wait for the next key)."""
    answer = asyncio.ensure_future(waiting)
    interrupt = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([answer, interrupt], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (answer, interrupt):
            pending.cancel()
    return answer.result() if answer.done() and not answer.cancelled() else None


def _print_line(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _step_saved(trace: Trace) -> None:
    """Steps through a saved trace's narration: the same keys, no child to hold."""
    lines = [line for _seq, line in step_lines(trace)]
    for index, line in enumerate(lines):
        _print_line(line)
        key = None
        while key is None:
            key = _step_key(sys.stdin.readline() or None)
            if key is None:
                sys.stderr.write(f"{PROG}: {STEP_HINT}\n")
        if key == "quit":
            return
        if key == "continue":
            for rest in lines[index + 1 :]:
                _print_line(rest)
            return


def command_step(options: argparse.Namespace, script_args: Sequence[str]) -> int:
    target = _resolve(options, script_args)
    if sys.stdin.isatty():
        sys.stderr.write(f"{PROG}: {STEP_HINT}\n")
    if target.kind == "trace":
        try:
            trace = load_native(target.value)
        except NativeFormatError as exc:
            raise CliError(str(exc)) from None
        _step_saved(trace)
        return 0
    result, interrupted = asyncio.run(_step_live(target))
    # After q, what the program says while it is torn down (asyncio's "exception was never
    # retrieved" for its cancelled tasks) is noise the learner did not ask for.
    if result.stderr and result.status != "stopped":
        sys.stderr.write(result.stderr if result.stderr.endswith("\n") else result.stderr + "\n")
    return _finish(Obtained(result.trace, result, interrupted))


def command_export(options: argparse.Namespace, script_args: Sequence[str]) -> int:
    if Path(options.output).suffix.lower() not in IMAGE_SUFFIXES:
        raise CliError(f"cannot export {options.output}: the file must end in .png, .svg or .pdf")
    start_ns = None if options.start is None else round(options.start * 1e9)
    end_ns = None if options.end is None else round(options.end * 1e9)
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise CliError("--end must be later than --start")
    target = _resolve(options, script_args)
    output = check_writable(options.output)
    try:
        from loopscope.ui.image_export import export_target_image
    except ImportError as exc:
        raise CliError(f"image export is not available: {exc}") from None
    obtained = obtain_trace(target, options.timeout, echo_stdout=True)
    try:
        export_target_image(obtained.trace, str(output), width=options.width,
                            height=options.height, theme=options.theme, start_ns=start_ns,
                            end_ns=end_ns)
    except Exception as exc:  # the image exporter's failure must stay one line, not a dump
        raise CliError(f"cannot export {output}: {type(exc).__name__}: {exc}") from None
    return _finish(obtained)


def command_open(options: argparse.Namespace) -> int:
    try:
        target = resolve_target(options.file)
    except TargetError as exc:
        raise CliError(str(exc)) from None
    if target.kind != "trace":
        raise CliError(f"{options.file} is not a Loopscope trace (to run it: loopscope trace)")
    try:
        load_native(target.value)
    except NativeFormatError as exc:
        raise CliError(str(exc)) from None
    return _launch(target.value)


def _launch(path: str | None) -> int:
    try:
        from loopscope.ui.app import display_problem, launch
    except ImportError as exc:
        raise CliError(f"the desktop app is not available: {exc}") from None
    problem = display_problem()
    if problem is not None:
        raise CliError(problem)
    return int(launch(path) or 0)


def _split_script_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Everything after the first "--" belongs to the script, untouched by argparse."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1 :]
    return argv, []


def run_command(argv: list[str]) -> int:
    own_args, script_args = _split_script_args(argv)
    options = build_parser().parse_args(own_args)
    if script_args and options.command not in ("trace", "narrate", "step", "export"):
        raise CliError("arguments after -- are only for scripts run by trace, narrate, step "
                       "or export", EXIT_USAGE)
    if options.command is None:
        return _launch(None)
    if options.command == "list":
        return command_list()
    if options.command == "open":
        return command_open(options)
    if options.command == "trace":
        return command_trace(options, script_args)
    if options.command == "narrate":
        return command_narrate(options, script_args)
    if options.command == "step":
        return command_step(options, script_args)
    return command_export(options, script_args)


def main(argv: list[str] | None = None) -> int:
    try:
        return run_command(sys.argv[1:] if argv is None else list(argv))
    except CliError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: error: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`); nothing more to say to it.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
