"""Starting a run's child before the command line has even been parsed.

A traced one-liner used to pay for the command line's own start-up (argparse, the target's
resolution, the launch code) before the child's even began. So the `loopscope` command, when
its command line asks for a run, starts the child first thing: it imports everything it needs
while the parent parses its arguments and checks the target and the output, and only then is
told what to run: the child's usual command line (tracer.launch.child_arguments), sent on the
control pipe as its first message. Nothing of the program runs before that, so a bad command
line, a bad target or an unwritable output still ends before anything ran; the parent then
closes the control pipe (the child exits at once on end of file), kills the child's process
group and reaps it.

Kept light on purpose (os and sys only, no subprocess): it runs before anything else of the
command line is imported. On Linux the child is forked (`fork_early_child`): it then begins
with the command line's interpreter already started, which is most of what a spawn costs a
traced one-liner, and is made what a spawned child would be (a session of its own, the
program's stdout and stderr on pipes and made afresh as the interpreter makes them, the run's
mark in its environment, our stdin, the working folder first on its path, none of our pipe
ends). Elsewhere, or with LOOPSCOPE_EARLY_CHILD=spawn, it is spawned as `tracer.launch`
spawns one.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: its import costs what this module saves
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping
    from typing import Any, TypeVar

    _T = TypeVar("_T")

# The environment variable that marks every process of a run (tracer.descendants).
MARK_VARIABLE = "LOOPSCOPE_RUN"
# The commands whose run starts the child early, and the endings of the targets that are
# saved traces (they start no child: one started for them would be wasted).
RUN_COMMANDS = frozenset({"trace", "narrate", "export", "report"})
_TRACE_ENDINGS = (".loopscope", ".json")
# What the events pipe holds (Linux's default is 64 KiB). The child blocks while it is full,
# and a busy child's batch of events is some 200 KB: in 64 KiB it waits on the parent three
# or four times a batch, each time for the parent to wake and read, and the two take turns
# instead of running side by side. 1 MiB is the most an unprivileged process may ask for.
EVENTS_PIPE_SIZE = 1 << 20


def new_mark() -> str:
    """A fresh value for MARK_VARIABLE: one per run."""
    return os.urandom(8).hex()  # not `secrets`: its import costs the command line's start-up


def child_environment(mark: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: the program's as the user has it, plus the run's mark.
    Nothing of Loopscope's is put on its path (the child finds `loopscope` where this
    process did, in site-packages or the editable install), so a program's own `import ui`
    never finds ours."""
    env = dict(os.environ if environ is None else environ)
    _mark_environment(env, mark)
    return env


def _mark_environment(env: MutableMapping[str, str], mark: str) -> None:
    # utf-8 unless the user named an encoding (PYTHONIOENCODING=":replace" names only the
    # errors): the parent reads the program's output in it (child_stdio_encoding)
    encoding, colon, errors = env.get("PYTHONIOENCODING", "").partition(":")
    if not encoding:
        env["PYTHONIOENCODING"] = "utf-8" + colon + errors
    env[MARK_VARIABLE] = mark  # passed on to all the program starts (descendants)


def child_stdio_encoding(environ: Mapping[str, str] | None = None) -> str:
    """The encoding a run's child writes its stdout and stderr in (child_environment's
    PYTHONIOENCODING: the user's, or utf-8), for the parent to read them in; utf-8 where
    the user's names no encoding Python knows."""
    import codecs

    env = os.environ if environ is None else environ
    name = env.get("PYTHONIOENCODING", "").partition(":")[0] or "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def encode_orders(arguments: list[str]) -> bytes:
    """The child's command line as the control pipe carries it: its length in bytes on a line
    of its own, then the arguments separated by NUL (which no argument can hold)."""
    payload = b"\0".join(os.fsencode(argument) for argument in arguments)
    return b"%d\n" % len(payload) + payload


def read_orders(fd: int) -> list[str] | None:
    """In the child: the arguments `encode_orders` wrote on `fd`, read without taking a byte
    more (the rest of the pipe is the control channel's); None when the parent closed the
    pipe instead (it gave the run up)."""
    header = b""
    while not header.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            return None
        header += byte
    size = int(header)
    payload = b""
    while len(payload) < size:
        chunk = os.read(fd, size - len(payload))
        if not chunk:
            return None
        payload += chunk
    return [os.fsdecode(argument) for argument in payload.split(b"\0")] if payload else []


def wants_early_child(argv: list[str]) -> bool:
    """Whether the command line (without the program's name) asks for a run whose child is
    worth starting before it is parsed: a run command, no help asked for, and a first
    argument that does not name a saved trace."""
    own = argv[: argv.index("--")] if "--" in argv else argv
    if not own or own[0] not in RUN_COMMANDS or "-h" in own or "--help" in own:
        return False
    plain = [word for word in own[1:] if not word.startswith("-")]
    return not plain or not plain[0].endswith(_TRACE_ENDINGS)


class EarlyChild:
    """A child started by `start_early_child` or `fork_early_child`, waiting for its orders.
    Quacks like the subprocess.Popen that tracer.launch makes (pid, returncode, poll, wait),
    so that a run adopts either (tracer.launch.Launched)."""

    def __init__(self, pid: int, mark: str, events_fd: int, control_fd: int, stdout_fd: int,
                 stderr_fd: int, child_events_fd: int, child_control_fd: int) -> None:
        self.pid = pid
        self.mark = mark
        self.returncode: int | None = None
        self.events_fd = events_fd  # our ends of the pipes
        self.control_fd = control_fd
        self.stdout_fd = stdout_fd
        self.stderr_fd = stderr_fd
        self.child_events_fd = child_events_fd  # the child's ends' numbers, as it has them
        self.child_control_fd = child_control_fd

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            try:
                _pid, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                break
            except InterruptedError:
                continue
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode if self.returncode is not None else 0

    def send_orders(self, arguments: list[str]) -> None:
        """Tells the waiting child its command line: from here on it runs the program."""
        data = encode_orders(arguments)
        while data:
            data = data[os.write(self.control_fd, data):]

    def abandon(self) -> None:
        """Gives the run up before it ran anything: closes our pipes (the child exits on end
        of file), kills its process group (the child and the watcher it left behind) and
        reaps them."""
        # (try/except, not contextlib.suppress: contextlib is not imported this early)
        for fd in (self.control_fd, self.events_fd, self.stdout_fd, self.stderr_fd):
            try:  # noqa: SIM105
                os.close(fd)
            except OSError:
                pass
        try:  # noqa: SIM105
            os.killpg(self.pid, 9)  # SIGKILL, without importing signal
        except (ProcessLookupError, PermissionError):
            pass
        self.wait()
        # and the watcher it may have left behind (killed with its group), adopted by us
        from loopscope.tracer.descendants import end_orphans

        end_orphans(self.mark, self.pid)


def spawned_with_pipes(spawn: Callable[[list[int]], _T]) -> tuple[_T, list[int]]:
    """`spawn(child's ends)` with a run's events, control, stdout and stderr pipes, and our
    ends in that order. Only commands (control) flow from parent to child. The child's ends
    are closed here once it has its copies; on an error, everything is, and it is raised."""
    parent_ends, child_ends = _open_pipes()
    try:
        return spawn(child_ends), parent_ends
    except BaseException:
        for fd in parent_ends:
            os.close(fd)
        raise
    finally:
        for fd in child_ends:
            os.close(fd)


def _open_pipes() -> tuple[list[int], list[int]]:
    """A run's events, control, stdout and stderr pipes: our ends and the child's, each in that
    order (on an error, none is left open)."""
    parent_ends: list[int] = []
    child_ends: list[int] = []
    try:
        for name in ("events", "control", "stdout", "stderr"):
            read_end, write_end = os.pipe()
            try:
                read_end = above_stdio(read_end)
            finally:
                write_end = above_stdio(write_end)  # (closed with read_end's failure too)
            if name == "events":
                _widen_pipe(read_end)
            parent_end, child_end = (
                (write_end, read_end) if name == "control" else (read_end, write_end))
            parent_ends.append(parent_end)
            child_ends.append(child_end)
    except BaseException:
        for fd in parent_ends + child_ends:
            os.close(fd)
        raise
    return parent_ends, child_ends


def above_stdio(fd: int) -> int:
    """`fd`, or where it was moved above 0-2 when it took the place of a closed stdin, stdout
    or stderr (`loopscope trace prog.py <&-`): a child's stdio are put there, over whatever
    was, and its stdin, closed, must stay closed. Closes `fd` if the move fails."""
    if fd > 2:
        return fd
    import fcntl  # (a builtin module: the command line's first step may import it)

    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    finally:
        os.close(fd)


def _widen_pipe(fd: int) -> None:
    """Gives the pipe EVENTS_PIPE_SIZE bytes where the system allows it (Linux; a user over
    the system's quota of pipe memory keeps the default)."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, EVENTS_PIPE_SIZE)
    except (ImportError, AttributeError, OSError):
        pass


def start_early_child(python: str = sys.executable) -> EarlyChild:
    """Spawns `python -m loopscope.tracer.child --await-orders FD` in a session of its own,
    sharing our stdin, with its events, control, stdout and stderr pipes; raises OSError
    (nothing left open) when it cannot start."""
    mark = new_mark()

    def spawn(child_ends: list[int]) -> tuple[int, int, int]:
        events_w, control_r, out_w, err_w = child_ends
        for fd in (events_w, control_r):
            os.set_inheritable(fd, True)
        command = [python, "-m", "loopscope.tracer.child", "--await-orders", str(control_r)]
        pid = os.posix_spawn(
            python, command, child_environment(mark),
            file_actions=[(os.POSIX_SPAWN_DUP2, out_w, 1), (os.POSIX_SPAWN_DUP2, err_w, 2)],
            setsid=True)
        return pid, events_w, control_r

    (pid, events_w, control_r), parent_ends = spawned_with_pipes(spawn)
    events_r, control_w, out_r, err_r = parent_ends
    return EarlyChild(pid, mark, events_r, control_w, out_r, err_r, events_w, control_r)


# Set to "spawn" to start every run's child as a new interpreter, even where it can be forked.
START_VARIABLE = "LOOPSCOPE_EARLY_CHILD"
# In a forked child, the files of the command line's frames it was forked in, which stay
# below the program's on its stack (the console script, runpy's -m, loopscope.ui.start);
# not "<string>" and the like (python -c), which name the program's exec'd code too.
_command_line_files: frozenset[str] = frozenset()


def command_line_files() -> frozenset[str]:
    """The files whose frames a forked child keeps under the program's from the command
    line: Loopscope's, never the program's (tracer.models._program_files). Empty in a
    spawned child, whose stack starts with its own entry."""
    return _command_line_files


class ForkedChild:
    """What `fork_early_child` returns in the child it forked: where its orders will come."""

    def __init__(self, control_fd: int) -> None:
        self.control_fd = control_fd


def can_fork_early_child() -> bool:
    """Whether this process may fork its run's child instead of spawning a new interpreter:
    on Linux, with no thread but this one, as /proc counts them (a fork copies one thread,
    and whatever lock another held stays held), started without interpreter options of its
    own (`python -O -m loopscope`: a spawned child never had them, and the program must not
    get them by the way it was started), unless START_VARIABLE asks for a spawn."""
    if os.environ.get(START_VARIABLE) == "spawn" or not sys.platform.startswith("linux"):
        return False
    if _interpreter_options(getattr(sys, "orig_argv", [])):
        return False
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() != 1:
        return False
    return hasattr(os, "fork") and _os_threads() == 1


def _os_threads() -> int:
    """This process's threads as the system counts them: those a C extension or the
    interpreter started without `threading` knowing (faulthandler's watchdog, say) too;
    0 where /proc does not say."""
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _interpreter_options(orig_argv: list[str]) -> bool:
    """Whether `python ... (-m MODULE | -c CODE | SCRIPT) ...` gave options before its
    -m, -c or script (a console script's own arguments come after its file)."""
    first = orig_argv[1] if len(orig_argv) > 1 else ""
    # (-mloopscope and -c... are the module and the code, not options)
    return first.startswith("-") and not first.startswith(("-m", "-c"))


def fork_early_child() -> EarlyChild | ForkedChild:
    """Forks the run's child: an EarlyChild here, as `start_early_child` gives, and in the
    child a ForkedChild to await its orders with (`python -m loopscope.tracer.child
    --await-orders FD`'s main()). The child begins where the command began, its interpreter
    started and its path set up: the second interpreter start a spawn pays (most of a traced
    one-liner's fixed cost) is not paid. Raises OSError (nothing left open) when it cannot.

    The caller, in the child, must end the process with sys.exit(main's status) from a frame
    no `finally` of the command line's encloses: the child's exit runs the interpreter's
    teardown as a spawned child's does, and must not run the command line's clean-ups."""
    mark = new_mark()
    parent_ends, child_ends = _open_pipes()
    try:
        pid = os.fork()
    except BaseException:
        for fd in parent_ends + child_ends:
            os.close(fd)
        raise
    events_w, control_r, out_w, err_w = child_ends
    if pid == 0:
        try:
            _become_a_spawned_child(mark, parent_ends, out_w, err_w)
        except BaseException as exc:  # never go on as a second command line
            try:
                os.write(2, f"loopscope: error: the run's child did not start: {exc}\n".encode())
            finally:
                os._exit(125)
        return ForkedChild(control_r)
    for fd in child_ends:
        os.close(fd)
    events_r, control_w, out_r, err_r = parent_ends
    return EarlyChild(pid, mark, events_r, control_w, out_r, err_r, events_w, control_r)


def _become_a_spawned_child(mark: str, parent_ends: list[int], out_w: int, err_w: int) -> None:
    """In a forked child: what it inherited from the command line made what a child spawned
    by `start_early_child` starts with, as far as the program can see it."""
    global _command_line_files
    frame = sys._getframe(1)
    files = set()
    while frame is not None:
        files.add(frame.f_code.co_filename)
        frame = frame.f_back  # type: ignore[assignment]
    _command_line_files = frozenset(name for name in files if not name.startswith("<"))
    os.setsid()
    for fd in parent_ends:  # the control pipe's end of file must come when the parent goes
        os.close(fd)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    # In os.environ, and so in every process the program starts. Not in this process's own
    # /proc/PID/environ, which is the command line's as it was exec'd: tracer.descendants
    # finds this process by its group instead.
    _mark_environment(os.environ, mark)
    _reopen_stdio()
    # `python -m loopscope.tracer.child` had the working folder first on its path; the
    # command line had its console script's folder (or the working folder, or "" for -c).
    if sys.path and not getattr(sys.flags, "safe_path", False):
        sys.path[0] = os.getcwd()


def _reopen_stdio() -> None:
    """sys.stdin, stdout and stderr made afresh as the interpreter makes them at its start
    (create_stdio): the ones inherited were made for the command line's terminal (line
    buffered, its encoding, or none at all for a closed descriptor), before PYTHONIOENCODING
    was set, and stdout and stderr are pipes now."""
    import io

    # as the interpreter reads PYTHONIOENCODING, which _mark_environment has given an
    # encoding: "latin-1" is "iso8859-1:strict"
    encoding = child_stdio_encoding()
    errors = os.environ["PYTHONIOENCODING"].partition(":")[2] or "strict"
    inherited = [stream for stream in (sys.__stdin__, sys.__stdout__, sys.__stderr__)
                 if isinstance(stream, io.TextIOWrapper)]
    # python -u (or PYTHONUNBUFFERED): the inherited streams write through, as ours must
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED")) or any(
        stream.write_through for stream in inherited)
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:  # closed when the command started: the interpreter made none either
            setattr(sys, name, None)
            setattr(sys, f"__{name}__", None)
            continue
        buffering = 0 if unbuffered and mode == "w" else -1
        binary: Any = open(fd, mode + "b", buffering=buffering, closefd=False)  # noqa: SIM115
        raw: io.FileIO = getattr(binary, "raw", binary)  # the FileIO under its buffer, if any
        raw.name = f"<{name}>"  # type: ignore[misc]
        stream = io.TextIOWrapper(
            binary, encoding=encoding, newline="\n",
            errors="backslashreplace" if fd == 2 else errors,
            line_buffering=not unbuffered and (fd == 2 or raw.isatty()),
            write_through=unbuffered)
        stream.mode = mode  # type: ignore[misc]
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)

