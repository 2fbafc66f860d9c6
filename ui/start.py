"""The `loopscope` command's first step: a run's child starts before anything else.

`loopscope trace prog.py -o t.loopscope` pays for two interpreters; the child's start-up used
to begin only once the command line had imported argparse and the rest of itself, parsed its
arguments and resolved the target. Here, before any of that is imported, a command line that
asks for a run starts its child (tracer.early_child), which imports what it needs while this
process parses and checks; the child learns what to run only once everything checked out,
so nothing of the program runs for a command line that turns out wrong. The rest is
loopscope.ui.cli's. Light on purpose: os and sys, and tracer.early_child. Where it can, the
child is forked from this process rather than spawned (no second interpreter start); the
forked child leaves through `_run_as_the_child` and never returns into the command line.
"""

from __future__ import annotations

import sys

from loopscope.tracer.early_child import (
    EarlyChild,
    ForkedChild,
    can_fork_early_child,
    fork_early_child,
    start_early_child,
    wants_early_child,
)

TYPE_CHECKING = False  # not typing's: its import is what this module is here to put off
if TYPE_CHECKING:
    from typing import NoReturn


def early_child_for(argv: list[str]) -> EarlyChild | None:
    """The child started for the run the command line asks for, or None (no run, or one
    that could not be started this way: the ordinary launch then says what is wrong).
    Forked where it can be (tracer.early_child.fork_early_child): in the child this call
    does not return, it runs the program and exits."""
    if not wants_early_child(argv):
        return None
    try:
        early = fork_early_child() if can_fork_early_child() else start_early_child()
    except (OSError, NotImplementedError, AttributeError):  # no fork, no posix_spawn with setsid
        return None
    if isinstance(early, ForkedChild):
        _run_as_the_child(early)
    # The child forks its watcher as soon as it has imported itself, before its orders: by
    # then this process must adopt orphans (tracer.descendants), so that the run's end finds
    # and reaps it. Its imports take far longer than this.
    from loopscope.tracer.descendants import adopt_for_one_run, become_subreaper

    become_subreaper()
    adopt_for_one_run()  # this command runs one run, and starts nothing else
    return early


def _run_as_the_child(forked: ForkedChild) -> NoReturn:
    """The forked child's whole life: its orders, the program, and the exit, which unwinds
    only through the command's entry (here, and `loopscope`'s console script or runpy's
    `-m`), none of whose frames holds a clean-up of the command line's."""
    from loopscope.tracer.child import main

    sys.exit(main(["--await-orders", str(forked.control_fd)]))


def command() -> NoReturn:
    """The `loopscope` command (and `python -m loopscope`)."""
    early = early_child_for(sys.argv[1:])
    from loopscope.ui.cli import command as run_command_line

    run_command_line(early)
