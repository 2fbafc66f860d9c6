"""Starting a run's child process: its command line, its four pipes and its environment.

Synchronous and light on imports (no asyncio) on purpose: the command line starts the child
as soon as it knows the target, and only then imports the rest of itself (asyncio, the
runner, the saving code), so that the two interpreters' start-ups overlap instead of adding
up. `tracer.runner.Run` adopts the started child and reads its pipes on an event loop.
"""

# No `from __future__ import annotations` in this module: with it, a NamedTuple's field
# annotations are strings, and typing compiles each one (3.11-3.13) when the class is
# made, on every run's start-up (tests/cli/test_startup_imports.py).
import contextlib
import os
import signal
from typing import TYPE_CHECKING, NamedTuple, Protocol

from loopscope.tracer.descendants import become_subreaper
from loopscope.tracer.early_child import (
    EarlyChild,
    child_environment,
    new_mark,
    spawned_with_pipes,
)

if TYPE_CHECKING:
    from loopscope.tracer.target import Target

# subprocess.DEVNULL, without importing subprocess: the command line starts its runs through
# tracer.early_child, and only the app's runs (tracer.runner) need Popen
DEVNULL = -3


class ChildProcess(Protocol):
    """What a run needs of its started child: subprocess.Popen, or tracer.early_child's."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...


class Launched(NamedTuple):
    """A started child and the parent's ends of its pipes (owned by whoever adopts them)."""

    popen: ChildProcess
    mark: str  # the run's mark, passed on to everything the program starts
    events_fd: int  # the child's event frames (read)
    control_fd: int  # commands to the child, one per line (write, non-blocking)
    stdout_fd: int  # the program's stdout (read)
    stderr_fd: int  # the program's stderr (read)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def read_fds(self) -> list[int]:
        return [self.events_fd, self.stdout_fd, self.stderr_fd]

    def abandon(self) -> None:
        """Kills the child's process group, reaps the child and closes the pipes: for a
        parent that fails before it could adopt the run."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()
        for fd in (*self.read_fds(), self.control_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def child_command(python: str, target: "Target", events_fd: int, control_fd: int,
                  paused: bool) -> list[str]:
    """The child's command line (tracer.child reads it)."""
    return [python, "-m", "loopscope.tracer.child",
            *child_arguments(target, events_fd, control_fd, paused)]


def child_arguments(target: "Target", events_fd: int, control_fd: int,
                    paused: bool) -> list[str]:
    """The child's arguments, after `python -m loopscope.tracer.child` (or as the orders of
    an early child: tracer.early_child)."""
    cmd = ["--events-fd", str(events_fd), "--control-fd", str(control_fd),
           "--model", target.model]
    if paused:
        cmd.append("--paused")
    if target.kind == "scenario":
        cmd += ["--scenario", target.module]
    elif target.kind == "script":
        cmd += ["--script", target.value, "--", *target.args]
    else:
        raise ValueError(f"cannot run a {target.kind}")
    return cmd


def launch(target: "Target", python: str, paused: bool = False,
           stdin: int | None = DEVNULL) -> Launched:
    """Starts the child in a session of its own, with its event, control, stdout and stderr
    pipes; raises OSError (nothing left open) when it cannot start. `stdin`: DEVNULL, None to
    share ours, or a file descriptor."""
    if target.kind not in ("scenario", "script"):
        raise ValueError(f"cannot run a {target.kind}")
    import subprocess

    mark = new_mark()

    def spawn(child_ends: list[int]) -> subprocess.Popen[bytes]:
        events_w, control_r, out_w, err_w = child_ends
        return subprocess.Popen(
            child_command(python, target, events_w, control_r, paused),
            pass_fds=(events_w, control_r), stdin=stdin, stdout=out_w, stderr=err_w,
            env=child_environment(mark), start_new_session=True,
        )

    popen, parent_ends = spawned_with_pipes(spawn)
    events_r, control_w, out_r, err_r = parent_ends
    # So that descendants that leave the child's session come back to us. Set once the child
    # is started, while it starts (its ctypes import is the costliest step left before the
    # spawn): the first process of the run to be orphaned is the watcher the child forks once
    # its own start-up is done (tracer.descendants), and it is in the child's process group,
    # ended with it either way; the program's own processes come later still.
    become_subreaper()
    # The GUI's loop must never block on a child that stopped reading its commands.
    os.set_blocking(control_w, False)
    return Launched(popen, mark, events_r, control_w, out_r, err_r)


def adopt_early_child(early: EarlyChild, target: "Target") -> Launched:
    """Gives a child started before the command line was parsed (tracer.early_child) the
    run of `target` (not paused: only the stepping commands pause, and they do not start
    early), and returns it as `launch` would have started it. On OSError (the child died)
    the child is abandoned."""
    if target.kind not in ("scenario", "script"):
        raise ValueError(f"cannot run a {target.kind}")
    # Before the orders: the child, ready and waiting, forks its watcher (the run's first
    # orphan) at once, and it must be adopted by us, not by init.
    become_subreaper()
    try:
        early.send_orders(child_arguments(target, early.child_events_fd,
                                          early.child_control_fd, paused=False))
    except OSError:
        early.abandon()
        raise
    os.set_blocking(early.control_fd, False)
    return Launched(early, early.mark, early.events_fd, early.control_fd, early.stdout_fd,
                    early.stderr_fd)
