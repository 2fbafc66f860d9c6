"""The `loopscope` command line.

    loopscope                        open the desktop app
    loopscope open FILE              open a saved trace in the app
    loopscope list                   the scenarios: id, model, title
    loopscope trace TARGET -o FILE   run TARGET headless and save its trace (.json: Chrome JSON)
    loopscope export TARGET -o FILE  write the timeline as an image (.png, .svg, .pdf)
    loopscope narrate TARGET         print the step-by-step narration
    loopscope step TARGET            run TARGET paused: Enter steps, c continues, q stops
    loopscope install-desktop        add Loopscope to the Linux desktop's menus
    loopscope report TARGET          the task table and findings (--format json, --fail-on)

TARGET is a scenario id, a script (arguments after --) or a saved trace. This module imports
no Qt at import time: the app and the image export are imported only by the commands that
need them, so list, trace and narrate work where Qt is missing. Every bad input ends in one
line on stderr ("loopscope: error: ...") and a non-zero exit; the only traceback ever shown
is the traced program's own.

Start-up counts (a traced one-liner should cost little more than `python` itself): a run's
child is started as soon as the target is known (tracer.launch), and asyncio, the runner and
the saving code are imported where they are used, while that child starts.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from loopscope.tracer.launch import adopt_early_child, launch
from loopscope.tracer.models import MODEL_NAMES
from loopscope.tracer.safe_write import OutputError, output_problem, same_file
from loopscope.tracer.target import Target, TargetError, resolve_target

if TYPE_CHECKING:
    import asyncio

    from loopscope.tracer.blocking_run import BlockingRun
    from loopscope.tracer.early_child import EarlyChild
    from loopscope.tracer.runner import Run, RunResult
    from loopscope.tracer.trace import Trace

PROG = "loopscope"
# A traced script's own exit status is passed on (1 when it raised, 128+N when signal N
# killed it); Loopscope's own statuses follow coreutils' timeout(1) and env(1), which are
# rarely a program's: 124 the run hit --timeout, 125 Loopscope itself failed (a bad target,
# an unwritable output, a broken event stream). 2 is a usage mistake (nothing ran).
EXIT_ERROR = 125
EXIT_TIMEOUT = 124
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MODEL_HELP = ("the script's concurrency model (default: guessed from its imports): "
              f"{', '.join(MODEL_NAMES[:-1])} or {MODEL_NAMES[-1]}")


class CliError(Exception):
    """A failure the user caused or must know about; the message is the one line to print."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# argparse as 3.14 has it: every formatter's colours (_theme, _decolor) set as it is made
_PICKS_COLOURS_AT_ONCE = "_set_color" in vars(argparse.HelpFormatter) and not any(
    isinstance(vars(argparse.HelpFormatter).get(name), property) for name in ("_theme", "_decolor"))


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized to the terminal without importing shutil (argparse
    builds a formatter for every argument it is given, and shutil is all its import costs)."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size().columns
        except (ValueError, OSError):
            columns = 80
        super().__init__(prog, width=max(columns - 2, 20))

    if _PICKS_COLOURS_AT_ONCE:
        # 3.14's argparse picks every formatter's colours as it makes it, and makes one to
        # check each argument a parser is given: that imported _colorize (and dataclasses and
        # inspect with it), some 15 ms before a run's child could be told what to run. Picked
        # here when help is first formatted instead (3.15's argparse puts it off by itself).
        def _set_color(self, color: bool, **options: Any) -> None:
            self._color_wanted = (color, options)
            self.__dict__.pop("_theme", None)
            self.__dict__.pop("_decolor", None)

        def __getattr__(self, name: str) -> Any:
            if name not in ("_theme", "_decolor") or "_color_wanted" not in self.__dict__:
                raise AttributeError(name)
            color, options = self._color_wanted
            argparse.HelpFormatter._set_color(  # type: ignore[attr-defined]
                self, color, **options)
            return self.__dict__[name]


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line, not the usage text plus a line."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

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
    # prog given: argparse would format the usage to find it, which loads 3.14's colours
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser,
                                     prog=PROG)

    commands.add_parser("list", help="the built-in scenarios: id, model, title")

    opener = commands.add_parser("open", help="open a saved trace in the desktop app")
    opener.add_argument("file", metavar="FILE")

    def add_target(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("target", metavar="TARGET",
                         help="a scenario id, a script (its arguments after --) or a saved trace")
        sub.add_argument("--model", help=MODEL_HELP)
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
    stepper.add_argument("--model", help=MODEL_HELP)

    from loopscope.ui.report_command import add_report_parser

    add_report_parser(commands, add_target)

    exporter = commands.add_parser("export", help="write the timeline as a .png, .svg or .pdf")
    add_target(exporter)
    exporter.add_argument("-o", "--output", required=True, metavar="FILE")
    exporter.add_argument("--width", type=_pixels, default=1600, metavar="PX")
    exporter.add_argument("--height", type=_pixels, default=None, metavar="PX",
                          help="default: as tall as the lanes need")
    exporter.add_argument("--theme", choices=("light", "dark"), default="light")
    exporter.add_argument("--start", type=_seconds, metavar="S",
                          help="start of the time window, in seconds from the first event")
    exporter.add_argument("--end", type=_seconds, metavar="S",
                          help="end of the time window, in seconds from the first event")
    exporter.add_argument("--full", action="store_true",
                          help="the whole run, not only the scenario's concept window")
    exporter.add_argument("--all-lanes", action="store_true",
                          help="show library lanes (asyncio's, aiohttp's plumbing) one by one")
    desktop = commands.add_parser(
        "install-desktop", help="add Loopscope to the Linux desktop's menus (entry and icon)",
        description="Write loopscope.desktop and the icon into the XDG data folder "
        "($XDG_DATA_HOME, by default ~/.local/share), so desktop menus list Loopscope.")
    desktop.add_argument("--prefix", metavar="DIR",
                         help="the data folder to write into instead (e.g. /usr/local/share)")
    return parser


# -- getting a trace: run the target, or load it ------------------------------------------


class Obtained:
    """A trace and how it was obtained. (Not a NamedTuple: typing would compile its string
    annotations as the command line starts, 3.11-3.13.)"""

    __slots__ = ("interrupted", "result", "trace")

    def __init__(self, trace: Trace, result: RunResult | None, interrupted: int = 0) -> None:
        self.trace = trace
        self.result = result  # None when the trace was loaded from a file
        self.interrupted = interrupted  # the signal that stopped the run (SIGINT...), or 0

    @property
    def exit_code(self) -> int:
        """The status to exit with when the run failed: the program's own where it has one."""
        result = self.result
        if self.interrupted:
            return 128 + self.interrupted  # as a shell reports a command a signal ended
        if result is None:
            return EXIT_ERROR
        if result.status == "timeout":
            return EXIT_TIMEOUT
        if result.status == "stopped" and result.error:
            # a SIGTERM from outside ended the program: its status, as a shell reports it
            return 128 + signal.SIGTERM
        code = result.exit_code
        if result.status in ("error", "crashed") and code is not None and code != 0:
            return code if code > 0 else 128 - code
        return EXIT_ERROR

    @property
    def failure(self) -> str | None:
        """The one line explaining why the run did not end well, or None."""
        if self.interrupted == signal.SIGINT:
            return "interrupted: the run was stopped"
        if self.interrupted:
            return f"{signal.Signals(self.interrupted).name} received: the run was stopped"
        result = self.result
        if result is not None and not result.ok and (result.status != "stopped"
                                                     or result.error):
            return result.error or f"the run ended with status {result.status}"
        return None


def _resolve(options: argparse.Namespace, script_args: Sequence[str]) -> Target:
    try:
        target = resolve_target(options.target, tuple(script_args), options.model)
    except TargetError as exc:
        raise CliError(str(exc)) from None
    if target.kind == "trace" and script_args:
        raise CliError("a saved trace takes no arguments; arguments after -- are for scripts")
    return target


# Ctrl-C, a kill's SIGTERM and a closed terminal's SIGHUP all stop the run and keep it.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _CtrlC:
    """While entered: Ctrl-C (or SIGTERM, or SIGHUP) asks the run's child to stop, keeping
    what it recorded; a second one kills it at once. `interrupted` is set at the first, so
    that whatever waits on the user (the step prompt) can give up waiting; `signal_number`
    says which signal it was (the exit status is 128 plus it)."""

    def __init__(self, run: Run, held: Sequence[int] = ()) -> None:
        import asyncio

        self.run = run
        self.interrupted = asyncio.Event()
        self.signal_number = 0
        self._loop = asyncio.get_running_loop()
        self._stopping: list[asyncio.Task[None]] = []
        self._held = held  # signals that came while the run was being set up (_HeldSignals)

    def __enter__(self) -> _CtrlC:
        # Not possible off the main thread or without POSIX signals; Ctrl-C then simply aborts.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            for signo in STOP_SIGNALS:
                self._loop.add_signal_handler(signo, self._on_interrupt, signo)
        for held in self._held:
            self._loop.call_soon(self._on_interrupt, held)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signo in STOP_SIGNALS:
            self._loop.remove_signal_handler(signo)
        _end_by_exception()  # asyncio left them at their defaults

    def _on_interrupt(self, signo: int = signal.SIGINT) -> None:
        if self.interrupted.is_set():
            self.run.kill()
            return
        self.signal_number = signo
        self.interrupted.set()
        self._stopping.append(self._loop.create_task(self.run.stop()))

    async def stopped(self) -> None:
        """Waits until a stop that Ctrl-C started has finished."""
        for stopping in self._stopping:
            await stopping


class _HeldSignals:
    """Between the child's launch and the run's own signal handling (the command line
    imports the rest of itself meanwhile, while the program already runs), a stop signal is
    held rather than acted on, then handled as if it came once the run listens
    (_StopOnSignal): the run is stopped and saved, as for any signal during it."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def install(self) -> None:
        with contextlib.suppress(ValueError, OSError):  # not on the main thread: leave them be
            for signo in STOP_SIGNALS:
                signal.signal(signo, self._hold)

    def _hold(self, signo: int, _frame: object) -> None:
        self.received.append(signo)


class _Terminated(Exception):
    """SIGTERM or SIGHUP outside a run (while saving, say): ends loopscope through the
    exception, so that a write in progress removes its temporary on the way out."""

    def __init__(self, signo: int) -> None:
        super().__init__(signal.Signals(signo).name)
        self.signo = signo


def _raise_terminated(signo: int, _frame: object) -> None:
    raise _Terminated(signo)


def _end_by_exception() -> None:
    """Makes SIGTERM and SIGHUP raise _Terminated (commands that run or write, not the app)."""
    with contextlib.suppress(ValueError, OSError):  # not on the main thread: leave them be
        for signo in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signo, _raise_terminated)


class _StopOnSignal:
    """_CtrlC for a run driven without an event loop (tracer.blocking_run): while entered,
    the first Ctrl-C (or SIGTERM, or SIGHUP) stops the run, keeping what it recorded, and a
    second kills it at once; `signal_number` says which signal came first. Signals held
    while the run was being set up (_HeldSignals) are acted on as it is entered."""

    def __init__(self, run: BlockingRun, held: Sequence[int] = ()) -> None:
        self.run = run
        self.signal_number = 0
        self._held = held

    def __enter__(self) -> _StopOnSignal:
        with contextlib.suppress(ValueError, OSError):  # not on the main thread: leave them be
            for signo in STOP_SIGNALS:
                signal.signal(signo, self._on_signal)
        for held in self._held:
            self._on_signal(held, None)
        return self

    def __exit__(self, *exc_info: object) -> None:
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGINT, signal.default_int_handler)
        _end_by_exception()

    def _on_signal(self, signo: int, _frame: object) -> None:
        if self.signal_number:
            self.run.kill()
            return
        self.signal_number = signo
        self.run.stop()


def _echo(text: str) -> None:
    _echo_to(sys.stdout, text)


def _echo_stderr(text: str) -> None:
    _echo_to(sys.stderr, text)


def _echo_to(stream: TextIO | None, text: str) -> None:
    """Passes on what the program wrote. Read in the encoding it wrote in, it goes back out
    in the same; what it wrote that encoding cannot read (raw bytes) is a replacement
    character, which a narrow encoding (latin-1, ascii) cannot write either: "?" then. With
    our own stdout closed (`>&-`), nowhere, as print() writes nowhere then."""
    if stream is None:
        return
    try:
        stream.write(text)
    except UnicodeEncodeError:
        encoding = stream.encoding or "utf-8"
        stream.write(text.encode(encoding, "replace").decode(encoding, "replace"))
    stream.flush()


def load_trace(path: str) -> Trace:
    from loopscope.tracer.native import NativeFormatError, load_native

    try:
        return load_native(path)
    except NativeFormatError as exc:
        raise CliError(str(exc)) from None


def obtain_trace(target: Target, timeout: float | None, echo_stdout: bool,
                 while_starting: Callable[[], object] | None = None,
                 saved_natively: bool = False) -> Obtained:
    """Runs the target (or loads the saved trace). `while_starting` is called once the
    child is started, for a command to import what it needs after the run while the child
    starts (this process would otherwise only wait). `saved_natively`: the trace will be
    saved in the native format, whose details are then encoded while the child runs."""
    if target.kind == "trace":
        return Obtained(load_trace(target.value), None)
    # The child starts first; what runs and saves it is imported while it starts. The
    # program reads our stdin, and its stderr streams through as it comes.
    held = _HeldSignals()
    held.install()
    early = _take_early_child()
    try:
        launched = None
        if early is not None:
            with contextlib.suppress(OSError):  # it died waiting: a child of its own instead,
                launched = adopt_early_child(early, target)  # which says why if it fails too
        if launched is None:
            launched = launch(target, sys.executable, stdin=None)
    except BaseException:
        _end_by_exception()
        raise
    try:
        # not the asyncio runner: asyncio's import would cost more than the rest of a
        # one-liner's command line (tracer.blocking_run)
        from loopscope.tracer.blocking_run import BlockingRun

        run = BlockingRun(launched, target, on_stdout=_echo if echo_stdout else None,
                          on_stderr=_echo_stderr)
        run.encode_details_ahead = saved_natively
        if while_starting is not None:
            while_starting()
    except BaseException:
        launched.abandon()
        _end_by_exception()
        raise
    with _StopOnSignal(run, held.received) as stopper:
        result = run.wait(timeout)
    interrupted = stopper.signal_number
    if result.stderr and not result.stderr.endswith("\n"):
        sys.stderr.write("\n")  # the program's stderr went through live; end its last line
    dropped = int(result.trace.meta.get("dropped") or 0)
    if dropped:
        sys.stderr.write(f"{PROG}: warning: {dropped} events were dropped by the child\n")
    return Obtained(result.trace, result, interrupted)


# -- output paths -----------------------------------------------------------------------------


def check_writable(text: str, target: Target | None = None) -> Path:
    """Proves the output path can be written, before any run starts, and that it is not the
    input itself (the script or the trace being read). Creates nothing that stays."""
    if target is not None and target.kind in ("script", "trace") and (
            same_file(text, target.value)):
        raise CliError(f"will not write the output over the input {text}: choose another "
                       "file name")
    problem = output_problem(text)
    if problem is not None:
        raise CliError(problem)
    return Path(text)


def save_trace(trace: Trace, path: Path) -> None:
    """Writes the trace all or nothing: an old file at `path` survives any failure."""
    from loopscope.tracer import formats

    try:
        formats.save_trace(trace, path)
    except OSError as exc:
        raise CliError(_write_failure(path, exc)) from None


def _saving_code(path: Path) -> None:
    """Imports the code that will save to `path` (see obtain_trace's `while_starting`)."""
    import importlib

    from loopscope.tracer import formats

    importlib.import_module("loopscope.tracer.export_chrome" if formats.is_chrome_json(path)
                            else "loopscope.tracer.native")


def _write_failure(path: Path, exc: OSError) -> str:
    return str(exc) if isinstance(exc, OutputError) else f"cannot write {path}: " + (
        exc.strerror or str(exc))


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
    from loopscope.scenarios import catalog

    scenarios = catalog.all_scenarios()
    if not scenarios:
        raise CliError("no scenarios found")
    id_width = max(len(s.id) for s in scenarios)
    model_width = max(len(s.model) for s in scenarios)
    for scenario in scenarios:
        print(f"{scenario.id:<{id_width}}  {scenario.model:<{model_width}}  {scenario.title}")
    return 0


def command_trace(options: argparse.Namespace, script_args: Sequence[str]) -> int:
    from loopscope.tracer import formats

    target = _resolve(options, script_args)
    output = check_writable(options.output, target)
    obtained = obtain_trace(target, options.timeout, echo_stdout=True,
                            while_starting=lambda: _saving_code(output),
                            saved_natively=not formats.is_chrome_json(output))
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
    from loopscope.tracer.narrate import narrate

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
        import asyncio

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


async def _step_live(target: Target) -> tuple[RunResult, int]:
    """Steps a child through its narration, a line per Enter; returns how the run ended and
    whether it was interrupted."""
    import asyncio

    from loopscope.tracer.narrate import narration_line
    from loopscope.tracer.runner import Run
    from loopscope.tracer.stepping import Stepper, step_lines

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
    interrupted = ctrl_c.signal_number
    if not quit_early and not interrupted:
        for _seq, line in step_lines(run.trace, stepper.position + 1):
            _print_line(line)
    return result, interrupted


async def _unless_set(waiting: Coroutine[Any, Any, str], event: asyncio.Event) -> str | None:
    """What `waiting` returns, or None as soon as `event` is set (a Ctrl-C at the prompt
    must not wait for the next key)."""
    import asyncio

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
    from loopscope.tracer.stepping import step_lines

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
        _step_saved(load_trace(target.value))
        return 0
    import asyncio

    result, interrupted = asyncio.run(_step_live(target))
    # After q, what the program says while it is torn down (asyncio's "exception was never
    # retrieved" for its cancelled tasks) is noise the learner did not ask for.
    if result.stderr and result.status != "stopped":
        sys.stderr.write(result.stderr if result.stderr.endswith("\n") else result.stderr + "\n")
    return _finish(Obtained(result.trace, result, interrupted))


def command_export(options: argparse.Namespace, script_args: Sequence[str]) -> int:
    from loopscope.tracer import formats

    if formats.image_suffix(options.output) is None:
        raise CliError(f"cannot export {options.output}: the file must end in "
                       f"{formats.image_suffixes_text()}")
    start_ns = None if options.start is None else round(options.start * 1e9)
    end_ns = None if options.end is None else round(options.end * 1e9)
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise CliError("--end must be later than --start")
    target = _resolve(options, script_args)
    output = check_writable(options.output, target)
    try:
        from loopscope.ui.image_export import export_target_image
    except ImportError as exc:
        raise CliError(f"image export is not available: {exc}") from None
    obtained = obtain_trace(target, options.timeout, echo_stdout=True)
    trace = obtained.trace
    origin = trace.first_event_ns  # the axis counts from the first event
    try:
        export_target_image(trace, str(output), width=options.width,
                            height=options.height, theme=options.theme,
                            start_ns=None if start_ns is None else start_ns + origin,
                            end_ns=None if end_ns is None else end_ns + origin,
                            full=options.full, all_lanes=options.all_lanes)
    except OSError as exc:
        raise CliError(_write_failure(output, exc)) from None
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
    load_trace(target.value)
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
    if script_args and options.command not in ("trace", "narrate", "step", "export", "report"):
        raise CliError("arguments after -- are only for scripts run by trace, narrate, step, "
                       "export or report", EXIT_USAGE)
    if options.command is None:
        return _launch(None)
    if options.command == "list":
        return command_list()
    if options.command != "open":
        _end_by_exception()
    if options.command == "open":
        return command_open(options)
    if options.command == "trace":
        return command_trace(options, script_args)
    if options.command == "narrate":
        return command_narrate(options, script_args)
    if options.command == "step":
        return command_step(options, script_args)
    if options.command == "install-desktop":
        return command_install_desktop(options)
    if options.command == "report":
        from loopscope.ui.report_command import command_report

        # this module itself, whether imported or run as __main__: its CliError is the one
        # main() catches
        return command_report(options, script_args, sys.modules[__name__])
    return command_export(options, script_args)


def command_install_desktop(options: argparse.Namespace) -> int:
    from loopscope.ui.desktop_entry import install_desktop_entry

    try:
        written = install_desktop_entry(Path(options.prefix) if options.prefix else None)
    except OSError as exc:
        raise CliError(f"cannot install the desktop entry: {exc.strerror or exc}") from None
    print(f"{PROG}: installed the desktop entry and {len(written) - 1} icons:")
    for path in written:
        print(f"  {path}")
    return 0


# The child loopscope.ui.start started for this command line's run before parsing it
# (tracer.early_child), until obtain_trace gives it the run; main() abandons it otherwise.
_early_child: EarlyChild | None = None


def _take_early_child() -> EarlyChild | None:
    global _early_child
    early, _early_child = _early_child, None
    return early


def main(argv: list[str] | None = None, early_child: EarlyChild | None = None) -> int:
    """Runs the command line. `early_child`: a child already started for its run (see
    loopscope.ui.start); whatever happens, it is given the run or abandoned before this
    returns."""
    global _early_child
    _early_child = early_child
    handlers = {signo: signal.getsignal(signo) for signo in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return run_command(sys.argv[1:] if argv is None else list(argv))
    except _Terminated as exc:
        with contextlib.suppress(OSError):
            sys.stderr.write(f"{PROG}: error: {exc} received: stopped\n")
        return 128 + exc.signo
    except CliError as exc:
        # a closed terminal (SIGHUP) takes no more lines; a closed stdout (`>&-`) is None
        with contextlib.suppress(OSError, AttributeError):
            sys.stdout.flush()
        with contextlib.suppress(OSError, AttributeError):
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
    finally:
        unused = _take_early_child()  # no run (a saved trace, a mistake): nothing ran in it
        if unused is not None:
            unused.abandon()
        with contextlib.suppress(ValueError, OSError, TypeError):
            for signo, handler in handlers.items():
                signal.signal(signo, handler)


def command(early_child: EarlyChild | None = None) -> NoReturn:
    """The `loopscope` command (and `python -m loopscope`, through loopscope.ui.start, which
    may have started the run's child already): main(), then exit."""
    if sys.stderr is None:  # started with stderr closed (2>&-): its messages go nowhere
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115
    finish(main(early_child=early_child))


def finish(status: int) -> NoReturn:
    """Exits with `status`. Without Qt loaded, at once: the interpreter's teardown (freeing
    every module and object, the exit hooks of libraries nothing here used) costs a traced
    one-liner 20-80 ms, and all a command wrote is flushed or closed by now. With Qt (the app,
    an image export) the normal way, so that its objects close properly (settings, files)."""
    if "PySide6" in sys.modules:
        sys.exit(status)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed terminal or pipe takes no more
            stream.flush()
    os._exit(status)


if __name__ == "__main__":
    from loopscope.ui.start import early_child_for

    command(early_child_for(sys.argv[1:]))
