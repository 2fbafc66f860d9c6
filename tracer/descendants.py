"""Ending every process a run started, even those that left its process group.

A program may start processes that call setsid() (a daemon, a server that detaches): killing
the child's process group misses them, and once their parent is gone they are adopted by
init and outlive Loopscope. On Linux the parent therefore becomes a *child subreaper*
(prctl PR_SET_CHILD_SUBREAPER): orphans below it are adopted by it instead of by init. After
a run, `end_orphans(mark, group)` kills and reaps every adopted process that carries the
run's mark (an environment variable the child passes on to all it starts) or is in the
child's process group, round after round, since killing one orphan orphans its own children
in turn. Processes the parent started itself are never touched: they carry no mark and are
in no group of the run. Elsewhere both calls do nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time

MARK_VARIABLE = "LOOPSCOPE_RUN"
_PR_SET_CHILD_SUBREAPER = 36
_ROUNDS = 50
_subreaper = False


def become_subreaper() -> bool:
    """Makes this process adopt its orphaned descendants (Linux); whether it now does."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


def new_mark() -> str:
    """A fresh value for MARK_VARIABLE: one per run."""
    return os.urandom(8).hex()  # not `secrets`: its import costs the command line's start-up


def _adopted_with_mark(mark: str, group: int) -> list[int]:
    """This process's children whose environment carries `mark`, or that are in process
    group `group` (a zombie's environment reads empty, but its group still shows)."""
    me = os.getpid()
    needle = f"{MARK_VARIABLE}={mark}".encode()
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat_file:
                fields = stat_file.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) != me:  # fields: state, ppid, pgrp, ...
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


def end_orphans(mark: str, group: int) -> int:
    """Kills and reaps the adopted descendants of the run marked `mark` whose child led
    process group `group`; how many."""
    if not _subreaper:
        return 0
    ended = 0
    for _round in range(_ROUNDS):
        orphans = _adopted_with_mark(mark, group)
        if not orphans:
            break
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            ended += 1
        time.sleep(0.01)  # their children are being adopted in turn
    return ended
