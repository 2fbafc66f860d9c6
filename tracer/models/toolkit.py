"""What every model shares: the facts it declares, and its failure policy.

A model is one module with `run(recorder, program)`. Everything the rest of Loopscope needs to
know about it (its name, how a script using it is recognised, whether program time can stop
while a run is held, whether its narration waits for later events) is one `ModelSpec` in the
registry (`tracer.models.MODELS`); nothing else repeats its name.

The failure policy is trio's rule for an instrument that raises: the instrumentation is
removed, the trace says so, and the program goes on untraced. A `Guard` carries it out for one
run of one model: hooks call `guard.fail(error)` when their own code raises (never for the
program's exceptions), and `instrumented(...)` installs and removes the hooks under the guard.
"""

# No `from __future__ import annotations` in this module: with it, a NamedTuple's field
# annotations are strings, and typing compiles each one (3.11-3.13) when the class is
# made, on every run's start-up (tests/cli/test_startup_imports.py).

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from loopscope.tracer.events import NO_LANE, Code

if TYPE_CHECKING:  # the registry is read before a run starts; the recorder is the child's
    from loopscope.tracer.recorder import Recorder


class ClockPolicy(Enum):
    """How a run held by the step gate accounts for the time it was held."""

    STOP = "stop"  # program time excludes pauses (the runtime's clock is ours to hold back)
    MARK = "mark"  # program time is real time (libev, the kernel); each pause is marked


class ModelSpec(NamedTuple):
    """The facts a model declares once."""

    name: str  # what --model, scenarios and trace files call it
    module: str  # the module whose run(recorder, program) instruments it
    title: str  # its heading in the scenario browser
    imports: frozenset[str]  # top-level imports that say a script uses it
    clock: ClockPolicy
    # Whether a step's narration can depend on events recorded after it (gevent narrates a
    # hub switch with the wait that follows it), so the stepper must look ahead.
    narration_looks_ahead: bool
    lane_kinds: frozenset[str]  # the kinds of lane it spawns
    # Also recognised by this pattern in a script's source, when no import decided.
    source_pattern: str | None = None
    # The library the model patches, when a script's run should import it only if the
    # program does: the model module then offers `instrumented(recorder, program, thread)`,
    # a context manager the child enters when the program first imports that library (its
    # import is a good part of a traced run's start-up). None: installed before the program.
    installed_on_import: str | None = None

    def uses(self, imported: set[str], source: str) -> bool:
        """Whether a script with these top-level imports and this source uses the model."""
        if imported & self.imports:
            return True
        pattern = self.source_pattern
        return pattern is not None and re.search(pattern, source) is not None


def failure_message(model: str, error: BaseException) -> str:
    """The one line that says a model's instrumentation failed and the program went on."""
    return (
        f"loopscope: the {model} instrumentation failed "
        f"({type(error).__name__}: {str(error)[:120]}); tracing stopped, the program goes on"
    )


def mark_failure(recorder: "Recorder", model: str, error: BaseException, lane: int) -> str:
    """Reports a failed instrumentation on stderr and as a MARK on `lane` (or the running lane,
    or the first lane); returns the line. The recorder itself may be what broke: the stderr
    line stands either way."""
    message = failure_message(model, error)
    print(message, file=sys.stderr)
    on = lane if lane != NO_LANE else recorder.current
    if on == NO_LANE and recorder.lane_count:
        on = 0
    if on != NO_LANE:
        with contextlib.suppress(Exception):
            recorder.record(on, Code.MARK, NO_LANE, recorder.detail(("text", message)))
    recorder.current = NO_LANE
    return message


class Guard:
    """One model's failure policy for one run: the first internal error detaches it for good.

    `on_detach(undo)` registers what removes a hook; `fail(error)` runs every undo (newest
    first), reports the error once and leaves `detached` set, which hooks that cannot be
    removed at once check before recording anything.
    """

    def __init__(self, recorder: "Recorder", model: str) -> None:
        self.recorder = recorder
        self.model = model
        self.detached = False
        self.message: str | None = None
        self._undo: list[Callable[[], None]] = []

    def on_detach(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def fail(self, error: BaseException, lane: int = NO_LANE) -> None:
        if self.detached:
            return
        self.detached = True
        self._run_undo()
        self.message = mark_failure(self.recorder, self.model, error, lane)

    def call(self, function: Callable[..., Any], *args: Any, default: Any = None) -> Any:
        """`function(*args)`, or `default` once detached or when it raises (then detaching)."""
        if self.detached:
            return default
        try:
            return function(*args)
        except Exception as error:
            self.fail(error)
            return default

    def shield(self, function: Callable[..., Any], default: Any = None) -> Callable[..., Any]:
        """`function` with the failure policy around it, for hooks called from the runtime.
        Only for hooks that do not read the caller's frame by depth."""

        def shielded(*args: Any) -> Any:
            if self.detached:
                return default
            try:
                return function(*args)
            except Exception as error:
                self.fail(error)
                return default

        return shielded

    def close(self) -> None:
        """The run is over: removes whatever is still installed (a failure here is reported,
        not raised: the program has already finished)."""
        if self.detached:
            return
        try:
            self._run_undo()
        except Exception as error:
            self.detached = True
            self.message = mark_failure(self.recorder, self.model, error, NO_LANE)

    def _run_undo(self) -> None:
        undo, self._undo = self._undo, []
        first_error: Exception | None = None
        for step in reversed(undo):
            try:
                step()
            except Exception as error:  # remove every other hook all the same
                first_error = first_error or error
        if first_error is not None and not self.detached:
            raise first_error


@contextlib.contextmanager
def instrumented(guard: Guard, install: Callable[[], None],
                 uninstall: Callable[[], None]) -> Iterator[Guard]:
    """The one lifecycle: install under the guard (a failing install leaves the program to run
    untraced), run the with-block (the program; its exceptions pass through), remove the hooks.
    """
    guard.on_detach(uninstall)
    guard.call(install)
    try:
        yield guard
    finally:
        guard.close()
