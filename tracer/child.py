"""The child process: installs a model's instrumentation, runs the program, streams its events.

    python -m tracer.child --events-fd N [--control-fd M] --model MODEL [--paused]
                           (--scenario MODULE | --script PATH) [-- ARGS...]
    python -m tracer.child --await-orders FD

With --await-orders (tracer.early_child), the child imports what it needs and then reads the
rest of its command line from the control pipe FD before it does anything else.

The event pipe carries frames (see tracer.stream); the program's own stdout and stderr stay
what they were, and each line the program prints is also recorded as an OUTPUT event on the
lane that printed it. The control pipe carries one command per line; "stop" ends the run
(as does a SIGTERM), raised in the program as StopRequested at a moment when no frame is
half written; "pause", "step ..." and "resume" drive the step gate (tracer.step_gate), and
--paused holds the program at its first event. When the control pipe closes (the parent
died) the child exits at once.
"""

# No `from __future__ import annotations` in this module: with it, a NamedTuple's field
# annotations are strings, and typing compiles each one (3.11-3.13) when the class is
# made, on every run's start-up (tests/cli/test_startup_imports.py).

import _thread
import contextlib
import faulthandler
import fcntl
import gc
import importlib
import io
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, BinaryIO, NamedTuple, TextIO

from loopscope.tracer import recorder as recorder_module
from loopscope.tracer import stream as stream_module
from loopscope.tracer import thread_lines as thread_lines_module
from loopscope.tracer.after_import import AfterImport
from loopscope.tracer.census import Census
from loopscope.tracer.descendants import reap_watcher_parent, watch_for_parent_death
from loopscope.tracer.early_child import read_orders
from loopscope.tracer.events import NO_LANE, NO_SOURCE, Code
from loopscope.tracer.forks import ForkGuard
from loopscope.tracer.models import clock_policy_for, load_model, model_spec
from loopscope.tracer.models._program_files import ProgramFiles
from loopscope.tracer.models.toolkit import mark_failure
from loopscope.tracer.notes import add_note, take_notes
from loopscope.tracer.own_hooks import ProgramTraceFilter
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.sampler import start_stall_sampler
from loopscope.tracer.step_gate import StepGate
from loopscope.tracer.stop_request import StopRequested
from loopscope.tracer.stream import PIPE_LOST, FrameWriter
from loopscope.tracer.thread_lines import ThreadLines
from loopscope.tracer.thread_waits import ThreadWaits

# The real OS thread id and thread start, taken before any model (gevent) patches _thread
# and threading: the control channel must stay a real thread whatever the program does.
os_thread_ident = _thread.get_ident
start_os_thread = _thread.start_new_thread
# The child's exit status when the parent went away (its control pipe closed).
ORPHANED_EXIT = 3
# How often a stop that arrived at an unsafe moment is tried again.
STOP_RETRY_S = 0.02
OUTPUT_LINE_LIMIT = 200


class OutputRecorder(io.TextIOBase):
    """Stands in for sys.stdout (or sys.stderr): writes through and records each line on the
    current lane (or, while none runs, the main thread's lane if it has one), a stderr line with
    `stream` "stderr" in its detail. What other threads print goes through
    tracer.thread_lines; what Loopscope itself writes while it records is not recorded.
    """

    def __init__(self, recorder: Recorder, inner: TextIO, stream: str = "stdout",
                 thread_lines: ThreadLines | None = None) -> None:
        self.recorder = recorder
        self.inner = inner
        self.extra: tuple[str, ...] = () if stream == "stdout" else ("stream", stream)
        self.traced_thread = os_thread_ident()
        self.thread_lines = thread_lines
        self._partial = ""
        # another thread's unfinished line, by OS thread id
        self._partials: dict[int, str] = {}
        self._program_files: ProgramFiles | None = None  # made at the first line recorded

    def write(self, text: str) -> int:
        ident = os_thread_ident()
        if ident != self.traced_thread:
            written = self.inner.write(text)
            if self.thread_lines is not None:
                self._other_thread_wrote(ident, text)
            return written
        if self.extra and StopControl.inside_recording(sys._getframe(1)):
            return self.inner.write(text)
        # A line is recorded before it is written through: once the parent (or a user
        # watching the terminal) has seen it, a stop that lands at once must not lose it.
        # The text is written through whatever happens while recording (a stop request).
        try:
            partial = self._partial + text
            if "\n" in partial:
                *lines, partial = partial.split("\n")
                self._partial = partial
                thread_lines = self.thread_lines
                if thread_lines is not None and thread_lines.queue:
                    thread_lines.drain()  # what other threads printed first comes first
                source = self._printed_at(sys._getframe(1))
                # no model's lane runs: the line is the main thread's, if that has a lane,
                # else held until it has one (a threaded script's first prints)
                lane = self.recorder.current
                if thread_lines is not None:
                    if lane != NO_LANE:
                        thread_lines.drop_main_lines()
                    elif (lane := thread_lines.main_lane()) == NO_LANE:
                        for line in lines:
                            thread_lines.hold_main_line(line[:OUTPUT_LINE_LIMIT], self.extra,
                                                        source)
                        lines = []
                for line in lines:
                    _record_output(self.recorder, line, self.extra, source, lane)
            else:
                self._partial = partial
        finally:
            written = self.inner.write(text)
        return written

    def _other_thread_wrote(self, ident: int, text: str) -> None:
        """A line from another thread goes on that thread's lane (tracer.thread_lines)."""
        assert self.thread_lines is not None
        partial = self._partials.pop(ident, "") + text
        if "\n" in partial:
            *lines, partial = partial.split("\n")
            for line in lines:
                self.thread_lines.add(line[:OUTPUT_LINE_LIMIT], self.extra)
        if partial:
            self._partials[ident] = partial

    def _printed_at(self, frame: FrameType | None) -> int:
        """The source index of the program's line that wrote: the innermost frame in the
        program's files (print() itself has no frame; logging's or a library's write is
        passed over), NO_SOURCE when no program frame is on the stack."""
        is_program = self._program_files
        if is_program is None:
            is_program = self._program_files = ProgramFiles()
        while frame is not None:
            code = frame.f_code
            if is_program(code.co_filename):
                return self.recorder.source_of(code, frame.f_lineno)
            frame = frame.f_back
        return NO_SOURCE

    def flush(self) -> None:
        self.inner.flush()

    def record_unfinished_line(self) -> None:
        """At the end of the run, a last line printed without its newline still counts."""
        if self._partial:
            _record_output(self.recorder, self._partial, self.extra)
            self._partial = ""

    def isatty(self) -> bool:
        return self.inner.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.inner.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.inner.errors

    @property
    def buffer(self) -> BinaryIO:
        # Bytes written here bypass the OUTPUT events but must still reach the parent.
        inner_buffer: BinaryIO = self.inner.buffer
        return inner_buffer

    def fileno(self) -> int:
        return self.inner.fileno()

    def __getattr__(self, name: str) -> Any:
        # The rest of a real stream's face (line_buffering, name, mode, reconfigure(), ...)
        # is the stream's it stands in for: a program reads it as it would untraced.
        if name == "inner":  # not set yet (copy, pickle): no recursion through self.inner
            raise AttributeError(name)
        return getattr(self.inner, name)


def _record_output(recorder: Recorder, line: str, extra: tuple[str, ...] = (),
                   source: int = NO_SOURCE, lane: int | None = None) -> None:
    """Records a printed line on `lane`, by default the current one."""
    if lane is None:
        lane = recorder.current
    if lane != NO_LANE and not recorder.closed:
        # A value row, not an interned detail: a program may print millions of lines, and a
        # row is only its bytes on the pipe and in the parent (it reads as {"text": line}).
        base = recorder.detail((*extra, "value_key", "text"))
        text = line[:OUTPUT_LINE_LIMIT]
        recorder.record(lane, Code.OUTPUT, NO_LANE, recorder.value_row(base, text), source)


class StopControl:
    """Turns a "stop" command into StopRequested in the traced thread, at a safe moment.

    The control thread signals the main thread (a signal also cuts a blocking sleep or read
    short). An exception raised while the recorder or the frame writer is mid-way would
    lose events or cut a frame in half, so the handler then declines; the stop is raised
    instead right after the writer's next whole frame (the flush timer makes one within
    its interval for a program that keeps recording) or by the next signal, sent a little
    later. Once raised, later signals are ignored: the program gets one chance to unwind,
    and the parent kills it if that is not enough.
    """

    _UNSAFE_FILES = frozenset(
        path
        # (thread_lines takes events out of the buffer and puts them back, merged with lines)
        for module in (recorder_module, stream_module, thread_lines_module)
        for path in (module.__file__ or "", os.path.realpath(module.__file__ or ""))
    )

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.raised = threading.Event()
        self._lock = threading.Lock()
        self._main_thread = threading.main_thread().ident

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)

    def uninstall(self) -> None:
        # Ignore rather than default: a late stop must not kill the child while it writes
        # its last frames; the parent kills it anyway if it takes too long.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.raised.set()

    def request(self) -> None:
        """Starts signalling the main thread until it takes the stop; returns at once."""
        with self._lock:
            if self.requested.is_set():
                return
            self.requested.set()
        start_os_thread(self._signal_until_raised, ())

    def _signal_until_raised(self) -> None:
        while not self.raised.is_set() and self._main_thread is not None:
            signal.pthread_kill(self._main_thread, signal.SIGTERM)
            self.raised.wait(STOP_RETRY_S)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.raised.is_set():
            return
        if not self.requested.is_set():
            # A SIGTERM from outside the control channel is a stop request too.
            self.request()
            return
        if self.inside_recording(frame):
            return
        self.raised.set()
        raise StopRequested

    def raise_if_requested(self) -> None:
        """For the frame writer: a whole frame is out, so now is a safe moment."""
        if (
            self.requested.is_set()
            and not self.raised.is_set()
            and os_thread_ident() == self._main_thread
        ):
            self.raised.set()
            raise StopRequested

    @classmethod
    def inside_recording(cls, frame: FrameType | None) -> bool:
        unsafe = cls._UNSAFE_FILES
        while frame is not None:
            if frame.f_code.co_filename in unsafe:
                return True
            frame = frame.f_back
        return False


class ControlChannel:
    """Reads the parent's commands, one per line, on a thread of its own.

    Commands are dispatched by their first word; unknown ones are ignored so that an older
    child tolerates a newer parent. End of file means the parent is gone: exit at once,
    leaving no orphan behind.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.handlers: dict[str, Callable[[str], None]] = {}

    def on(self, command: str, handler: Callable[[str], None]) -> None:
        self.handlers[command] = handler

    def start(self) -> None:
        start_os_thread(self._read, ())

    def _read(self) -> None:
        with open(self.fd, "rb", buffering=0) as control:
            for raw in iter(control.readline, b""):
                line = raw.decode("utf-8", "replace").strip()
                word, _, argument = line.partition(" ")
                handler = self.handlers.get(word)
                if handler is not None:
                    handler(argument)
        os._exit(ORPHANED_EXIT)


class ChildOptions(NamedTuple):
    """The child's command line (tracer.launch.child_command writes it)."""

    events_fd: int
    control_fd: int | None
    model: str
    paused: bool
    scenario: str | None
    script: str | None
    args: list[str]


class UsageError(Exception):
    """A command line tracer.launch would never write."""


USAGE = ("usage: python -m loopscope.tracer.child --events-fd N [--control-fd M] --model MODEL "
         "[--paused] (--scenario MODULE | --script PATH) [-- ARGS...]")


def parse_options(argv: list[str]) -> ChildOptions:
    """Reads the command line by hand: it is written by tracer.launch, not by people, and
    argparse's import and set-up would cost more than the rest of the child's start-up."""
    values: dict[str, str] = {}
    paused = False
    words = iter(argv)
    args: list[str] = []
    for word in words:
        if word == "--":
            args = list(words)
            break
        if word == "--paused":
            paused = True
        elif word in ("--events-fd", "--control-fd", "--model", "--scenario", "--script"):
            value = next(words, None)
            if value is None:
                raise UsageError(f"{word} needs a value")
            values[word] = value
        else:
            raise UsageError(f"unknown argument {word!r}")
    if "--events-fd" not in values or "--model" not in values:
        raise UsageError("--events-fd and --model are required")
    if ("--scenario" in values) == ("--script" in values):
        raise UsageError("give one of --scenario and --script")
    if paused and "--control-fd" not in values:
        raise UsageError("--paused needs --control-fd: nothing could ever let the program go")
    try:
        events_fd = int(values["--events-fd"])
        control_fd = int(values["--control-fd"]) if "--control-fd" in values else None
    except ValueError:
        raise UsageError("a file descriptor is a whole number") from None
    return ChildOptions(events_fd, control_fd, values["--model"], paused,
                        values.get("--scenario"), values.get("--script"), args)


def _line_buffered(stream: TextIO) -> None:
    # The parent shows output live; a block-buffered pipe would hold it back until exit.
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(line_buffering=True)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    awaited = arguments[:1] == ["--await-orders"] and len(arguments) == 2
    watcher_parent: int | None = None
    if awaited:
        # Started before the command line was parsed (tracer.early_child): everything above
        # is imported. The watcher is left behind now, while the parent still parses (its
        # two forks would otherwise delay the program); then the command line comes on the
        # control pipe, or end of file when the parent gave the run up (nothing of the
        # program has run: exit quietly; the parent kills the watcher with our group).
        watcher_parent = _watch_over_the_run()
        orders = read_orders(int(arguments[1]))
        if orders is None:
            reap_watcher_parent(watcher_parent)
            return ORPHANED_EXIT
        arguments = orders
    try:
        options = parse_options(arguments)
    except UsageError as exc:
        reap_watcher_parent(watcher_parent)
        sys.stderr.write(f"{USAGE}\nerror: {exc}\n")
        return 2
    if not awaited:
        watcher_parent = _watch_over_the_run()
    # Subprocesses the program starts must not hold our pipes open: a grandchild keeping the
    # event pipe would stop the parent from ever seeing its end.
    for fd in (options.events_fd, options.control_fd):
        if fd is not None:
            os.set_inheritable(fd, False)
    options = options._replace(events_fd=_far_fd(options.events_fd),
                               control_fd=None if options.control_fd is None
                               else _far_fd(options.control_fd))
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
            "python": sys.version.split()[0],
        }
    )
    recorder = Recorder(writer)
    # A process the program forks goes on untraced (see tracer.forks).
    ForkGuard(recorder, [fd for fd in (options.events_fd, options.control_fd) if fd is not None],
              writer).install()
    stop = StopControl()
    stop.install()
    writer.after_write = stop.raise_if_requested
    gate = StepGate(recorder, clock_policy_for(program.model), on_stop=stop.raise_if_requested)
    if options.paused:
        gate.pause()
    if options.control_fd is not None:
        control = ControlChannel(options.control_fd)
        control.on("stop", lambda _argument: _stop_run(stop, gate))
        control.on("pause", lambda _argument: gate.pause())
        control.on("resume", lambda _argument: gate.resume())
        control.on("step", gate.step)
        control.start()

    _line_buffered(sys.stdout)
    _line_buffered(sys.stderr)
    real_stdout, real_stderr = sys.stdout, sys.stderr
    # lines printed by the program's other threads, on lanes of their own
    thread_lines = ThreadLines(recorder, lambda lane, line, extra, source: _record_output(
        recorder, line, extra, source, lane=lane))
    thread_lines.install()
    # and their waits on the program's locks, queues and events (tracer.thread_waits)
    thread_waits = ThreadWaits(thread_lines)
    thread_waits.install()
    pool_import = AfterImport("concurrent.futures.thread")  # a pool's idle workers' waits
    pool_import.call(lambda: _watch_pools(thread_waits))
    pool_import.install()
    output = OutputRecorder(recorder, real_stdout, thread_lines=thread_lines)
    errors = OutputRecorder(recorder, real_stderr, "stderr", thread_lines)
    sys.stdout, sys.stderr = output, errors
    end: dict[str, Any] = {"status": "ok", "error": None, "traceback": None, "dropped": 0}
    exit_code = 0
    census = Census(program.script, watch_hand_offs=program.model != "generator")
    census.install()
    program_traces = ProgramTraceFilter()
    program_traces.install()
    installed = contextlib.ExitStack()  # what is installed once the model's library is imported
    library_import = _library_import(program, recorder, census, installed, pool_import)
    recorder.start_flush_timer()
    sampler = start_stall_sampler(recorder)
    # What exists now is Loopscope's and the modules it imported, alive until the end: out
    # of the collector's sight (a full collection never walks it again, nor does the
    # interpreter's teardown, which was most of an empty script's shutdown).
    gc.freeze()
    # before the program's first line: the program's own wait() must not find it
    reap_watcher_parent(watcher_parent)
    try:
        _run_model(recorder, program, library_import)
    except StopRequested:
        end["status"] = "stopped"
    except SystemExit as exc:
        exit_code = _report_exit(exc, end)
    except BaseException as exc:  # the traced program's own failure, reported, not re-raised
        end.update(status="error", error=f"{type(exc).__name__}: {exc}",
                   traceback=_failure_traceback(exc))
        sys.stdout, sys.stderr = real_stdout, real_stderr
        real_stdout.flush()
        real_stderr.write(end["traceback"])
        exit_code = 1
    finally:
        stop.uninstall()
        census.uninstall()
        program_traces.uninstall()
        if library_import is not None:
            library_import.uninstall()
        # before what the imports installed is taken out: a pool imported from now on (a
        # thread still running) must not install a watch that nothing takes out
        pool_import.uninstall()
        installed.close()
        if stop.requested.is_set():
            # However the program unwound from the stop, the run was stopped, not failed.
            end.update(status="stopped", error=None)
            exit_code = 0
        sys.stdout, sys.stderr = real_stdout, real_stderr
        output.record_unfinished_line()
        if sampler is not None:
            # a parent that stopped listening is dealt with by _finish_stream
            with contextlib.suppress(BrokenPipeError):
                sampler.stop()
        errors.record_unfinished_line()
        thread_waits.uninstall()
        thread_lines.uninstall()
        with contextlib.suppress(BrokenPipeError):
            thread_lines.finish()
        end["census"] = _census_summary(census, recorder)
        _note_write_waits(writer, recorder.clock() - recorder.origin)
        end["notes"] = take_notes()
        _finish_stream(recorder, writer, end, exit_code)
    return exit_code


def _watch_over_the_run() -> int | None:
    """Leaves the watcher behind; the process it was forked from, still to be reaped."""
    faulthandler.enable()  # a segfault leaves its reason and the Python stack on stderr
    # Before any thread starts: a parent killed outright still ends all the program started.
    return watch_for_parent_death()


def _watch_pools(thread_waits: ThreadWaits) -> None:
    # imported here: it loads concurrent.futures, which a program may never need
    from loopscope.tracer.pool_waits import watch_pools

    watch_pools(thread_waits)


def _library_import(program: Program, recorder: Recorder, census: Census,
                    installed: contextlib.ExitStack,
                    pool_import: AfterImport) -> AfterImport | None:
    """For a model that patches a library (asyncio): what else watches that library, set to
    be installed when the program imports it (tracer.after_import), or None. Work handed to
    a thread pool is watched once the program has imported both asyncio and the pool
    (`pool_import`): most asyncio programs never use one, and concurrent.futures.thread with
    the watch's own module was 2-3 ms of their `import asyncio`."""
    spec = model_spec(program.model)
    library = spec.installed_on_import if spec is not None else None
    if library is None:
        return None
    library_import = AfterImport(library)
    if library == "asyncio":
        def watch_thread_work() -> None:
            # imported here: it loads concurrent.futures.thread, which a program may never need
            from loopscope.tracer.thread_work import ThreadWork

            work = ThreadWork(recorder)
            work.install()
            installed.callback(work.uninstall)

        library_import.call(census.watch_loops)
        library_import.call(lambda: pool_import.call(watch_thread_work))
    return library_import


def _run_model(recorder: Recorder, program: Program, library_import: AfterImport | None) -> None:
    """Runs the program under its model. A script whose model patches a library it has not
    imported starts without that library; the model is installed by the program's own first
    import of it (and never, if it never does)."""
    if library_import is None:
        load_model(program.model).run(recorder, program)
        return
    if program.scenario_module is not None or library_import.name in sys.modules:
        importlib.import_module(library_import.name)
        library_import.install()  # imported: the watches go in now
        load_model(program.model).run(recorder, program)
        return
    traced_thread = threading.get_ident()
    with contextlib.ExitStack() as model:

        def install_model() -> None:
            name = program.model
            try:
                instrumented = load_model(name).instrumented  # type: ignore[attr-defined]
                model.enter_context(instrumented(recorder, program, traced_thread))
            except Exception as error:  # the program's import must not fail for our sake
                mark_failure(recorder, name, error, NO_LANE)

        library_import.call(install_model)
        library_import.install()
        program.run_script()


def _failure_traceback(exc: BaseException) -> str:
    """The program's traceback from its own code, or at least its error's line: a program
    that failed for having used up its file descriptors (or its memory) may leave none to
    import the traceback code with, and its own error must still be told."""
    try:
        # imported here: only a failing program needs it, and the start-up is the run's
        from loopscope.tracer.tracebacks import program_traceback

        return program_traceback(exc)
    except Exception:
        return f"{type(exc).__name__}: {exc}\n"


def _census_summary(census: Census, recorder: Recorder) -> dict[str, Any] | None:
    try:
        # Two lanes (a loop and its main task, say) may be all a run that followed nothing
        # has; with more, the sources need no scan (tracer.silence would not use it).
        return census.summary(scan_sources=recorder.lane_count <= 2)
    except Exception:  # a census that fails must not cost the run its ending
        return None


# Holds shorter than this in all, or than this share of the run, are not worth a note.
# How the note on a held program begins (it is about the machine the run had, not the program:
# tests that count a program's notes leave it out)
WRITE_WAITS_NOTE = "the program was held "
WRITE_WAITS_NOTED_NS = 20_000_000
WRITE_WAITS_NOTED_SHARE = 0.02


def _note_write_waits(writer: FrameWriter, run_ns: int) -> None:
    """Says how long the program was held while its events were handed to the parent: a
    write waits when the pipe is full, or when the parent, woken to read, takes the core the
    program runs on. That time is on the timeline, as part of whichever lane was running."""
    if writer.waited_ns < max(WRITE_WAITS_NOTED_NS, WRITE_WAITS_NOTED_SHARE * run_ns):
        return
    times = "once" if writer.waits == 1 else f"{writer.waits} times"
    add_note(
        f"{WRITE_WAITS_NOTE}{writer.waited_ns / 1e6:.0f} ms in all ({times}, "
        f"up to {writer.longest_wait_ns / 1e6:.1f} ms at once) while Loopscope handed its "
        "events over; each hold shows as part of the running lane's step")


def _stop_run(stop: StopControl, gate: StepGate) -> None:
    stop.request()
    # A thread held by the step gate is in the recorder, where the stop signal declines to
    # raise; the gate lets it go and raises the stop itself.
    gate.cancel()


# Where the child's own pipes are moved to: above the descriptors a program that closes
# "everything but stdio" (`for fd in range(3, 256): os.close(fd)`) walks over.
_FAR_FD = 1000


def _far_fd(fd: int) -> int:
    """`fd` moved to a number at or above _FAR_FD (close-on-exec, as it was), or as it was
    where the descriptor limit leaves no room there."""
    try:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _FAR_FD)
    except OSError:
        return fd
    os.close(fd)
    return moved


def _report_exit(exc: SystemExit, end: dict[str, Any]) -> int:
    code = exc.code
    if code is None or code == 0:
        return 0
    if isinstance(code, int):
        end.update(status="error", error=f"the program exited with status {code}")
        return code
    sys.stderr.write(f"{code}\n")
    end.update(status="error", error=f"the program exited: {code}")
    return 1


def _finish_stream(
    recorder: Recorder, writer: FrameWriter, end: dict[str, Any], exit_code: int
) -> None:
    try:
        real_stdout = sys.stdout
        real_stdout.flush()
        recorder.close()
        end["events"] = recorder.event_count
        writer.end(end)
        if writer.lost is None:
            writer.out.close()
    except BrokenPipeError:
        # The parent stopped listening; there is nobody left to tell.
        os._exit(exit_code or ORPHANED_EXIT)
    if writer.lost is not None:
        # The program closed (or reused) the event pipe's descriptor and went on as it would
        # untraced; the parent keeps what came before and says the trace ended there.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.__stderr__.write(  # type: ignore[union-attr]
                f"{PIPE_LOST} (file descriptor {writer.fd}: {writer.lost.strerror})\n")
            sys.__stderr__.flush()  # type: ignore[union-attr]
        os._exit(exit_code)


if __name__ == "__main__":
    sys.exit(main())
