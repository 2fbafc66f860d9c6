"""Ending every process a run started, even those that left its process group.

A program may start processes that call setsid() (a daemon, a server that detaches): killing
the child's process group misses them, and once their parent is gone they are adopted by
init and outlive Loopscope. On Linux the parent therefore becomes a *child subreaper*
(prctl PR_SET_CHILD_SUBREAPER): orphans below it are adopted by it instead of by init. After
a run, `end_orphans(mark, group)` kills and reaps every adopted process that carries the
run's mark (an environment variable the child passes on to all it starts) or is in the
child's process group, round after round, since killing one orphan orphans its own children
in turn. Processes the parent started itself are never touched: they carry no mark and are
in no group of the run. A command line that runs one run and starts nothing else
(`adopt_for_one_run`) ends every process it adopted: a daemon the program double-forks
without exec'ing, in a child forked from the command line, has no mark in its
/proc/PID/environ (tracer.early_child). Elsewhere both calls do nothing.

A parent killed outright (SIGKILL) runs none of that. So the child, before the program starts,
leaves a small watcher process behind (`watch_for_parent_death`): it waits on a pidfd of the
parent, and when the parent ends it kills every process of the run the same way, by mark and
by group, wherever they were adopted. It is forked twice, so that it is no child of the
program's (a program's os.wait() must never find it), and holds none of the run's pipes. Linux
only (pidfd_open, /proc); elsewhere the child still exits when its control pipe closes, but
what the program started may live on. (Nor does it find a daemon double-forked without
exec'ing from a forked child, which carries neither the mark nor the group.)
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

from loopscope.tracer.early_child import MARK_VARIABLE, above_stdio
from loopscope.tracer.extensions import c_extension

_PR_SET_CHILD_SUBREAPER = 36
_ROUNDS = 50
# Signals a program may send its whole process group that must not end the watcher.
_WATCHER_IGNORES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE",
                    "SIGALRM", "SIGTTIN", "SIGTTOU", "SIGTSTP")
_subreaper = False
# Whether every process this one adopts is its run's (see `adopt_for_one_run`).
_one_run = False


def become_subreaper() -> bool:
    """Makes this process adopt its orphaned descendants (Linux); whether it now does."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    speedups = c_extension("_speedups")
    if speedups is not None:  # ctypes' import is 9M instructions of the command line's
        _subreaper = bool(speedups.become_subreaper())
        return _subreaper
    import ctypes  # here: the child imports this module too, and never needs it

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


def adopt_for_one_run() -> None:
    """Says that this process runs one run only and started nothing else (a command line
    whose child it forked): every orphan it adopts is that run's, marked or not. A forked
    child's own /proc/PID/environ is the command line's, without the run's mark, and so is
    that of a process the program forks without exec'ing (a daemon's double fork): found by
    neither mark nor group, it is found as adopted."""
    global _one_run
    _one_run = True


def _run_processes(mark: str, group: int, *, children_of: int | None = None,
                   exclude: int | None = None) -> list[int]:
    """The processes that carry `mark` in their environment or are in process group `group`:
    with `children_of`, only that process's children, the dead among them too (a zombie's
    environment reads empty, but its group still shows, and it must be reaped); otherwise
    every live one, whoever its parent is, but `exclude`."""
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found: list[int] = []
    entries = None if children_of is None else _children(children_of)
    if entries is None:
        try:
            entries = os.listdir("/proc")
        except OSError:
            return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == exclude:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                fields = stat_file.read().rsplit(b")", 1)[1].split()
            # fields: state, ppid, pgrp, ...
            if children_of is not None:
                if int(fields[1]) != children_of:
                    continue
                if _one_run:
                    found.append(int(entry))
                    continue
            elif fields[0] in (b"Z", b"X"):  # the dead wait for their parent
                continue
            if int(fields[2]) == group:
                found.append(int(entry))
                continue
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if needle in environ.read().split(b"\0"):
                    found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _children(pid: int) -> list[str] | None:
    """The children of process `pid`, its threads' together (an orphan is adopted by any
    thread of its subreaper), from /proc/PID/task/*/children; None where Linux does not
    list them (a kernel without CONFIG_PROC_CHILDREN). Reading a few short files instead of
    every process's stat is what a run's end costs on a machine with many processes."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
        children: list[str] = []
        for thread in threads:
            with open(f"/proc/{pid}/task/{thread}/children", "rb") as listing:
                children += listing.read().decode().split()
    except OSError:
        return None
    return children


def end_orphans(mark: str, group: int) -> int:
    """Kills and reaps the adopted descendants of the run marked `mark` whose child led
    process group `group`; how many."""
    if not _subreaper:
        return 0
    ended = 0
    for _round in range(_ROUNDS):
        orphans = _run_processes(mark, group, children_of=os.getpid())
        if not orphans:
            break
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            ended += 1
        # No pause before the next round: a process is reaped only once it is a zombie, and
        # Linux hands its children to us before it becomes one, so the next scan sees them.
    return ended


def end_run(mark: str, group: int) -> int:
    """Kills every process of the run marked `mark` whose child led process group `group`,
    this one excepted, round after round until none is left; how many kills it took."""
    me = os.getpid()
    killed = 0
    for _round in range(_ROUNDS):
        processes = _run_processes(mark, group, exclude=me)
        if not processes:
            break
        for pid in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.01)  # the killed are being reaped, their children adopted
    return killed


def watch_for_parent_death() -> int | None:
    """In the child, before the program starts and before any thread: leaves the watcher
    behind (see the module's doc). Returns the process that forked it, which exits at once
    but is not waited for here (its fork and exit would hold up the run's start): pass it
    to `reap_watcher_parent` before the program runs, so that the program's own wait()
    never finds it. None when no watcher was left."""
    mark = os.environ.get(MARK_VARIABLE)
    if not mark or not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return None
    parent = os.getppid()
    try:
        # above 0-2: the watcher puts /dev/null there (a command line run with its stdin
        # closed had the pidfd land on 0, and the watcher took /dev/null for the parent's end)
        parent_fd = above_stdio(os.pidfd_open(parent))
    except OSError:  # a kernel before 5.3, or a sandbox without the call
        return None
    if os.getppid() != parent:  # the parent died first; the pidfd may be another process's
        os.close(parent_fd)
        return None
    group = os.getpgrp()
    middle = os.fork()
    if middle == 0:
        try:
            if os.fork() == 0:
                _watch(parent_fd, mark, group)
        finally:
            os._exit(0)
    os.close(parent_fd)
    return middle


def reap_watcher_parent(middle: int | None) -> None:
    """Reaps the process `watch_for_parent_death` forked the watcher from (long gone by
    the time the child has set the run up)."""
    if middle is not None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(middle, 0)


def _watch(parent_fd: int, mark: str, group: int) -> None:
    """The watcher's whole life: wait for the parent to end, end the run, exit."""
    try:
        for name in _WATCHER_IGNORES:
            signal.signal(getattr(signal, name), signal.SIG_IGN)
        # hold none of the run's pipes: the parent waits for them to close
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, parent_fd)
        os.closerange(parent_fd + 1, os.sysconf("SC_OPEN_MAX"))
        waiting = select.poll()
        waiting.register(parent_fd, select.POLLIN)
        while not waiting.poll():
            pass
        end_run(mark, group)
    finally:
        os._exit(0)
