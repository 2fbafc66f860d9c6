"""The asyncio model: runs a program on traced event loops, with no change to the program.

For the run, every event loop asyncio makes for the program in the recording thread is a
TracingEventLoop: `asyncio.run`, `asyncio.Runner` and `new_event_loop` (which is what they
call when the program names no loop factory), and a `loop_factory` that names asyncio's own
selector loop. No event-loop policy is installed (that API is deprecated from 3.14 and goes
away in 3.16). `asyncio.Task` itself stands in for code that builds Tasks directly, as aiohttp
does on 3.12+. A loop the program chose for itself (its own policy or loop class, uvloop) or
one run by another thread is not traced, and the run says so in a note (tracer.notes), the
program's own loop also as a lane of the timeline.

Each loop is a lane ("asyncio loop", then "asyncio loop #2" ...) alternating `poll` and
`dispatch`; each Task is a lane whose steps are `running` and whose waits are `sleeping`,
`io-wait` or `blocked`, with wake arrows from whoever completed the future it waited on.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from asyncio import events, runners
from collections.abc import Callable, Iterator
from typing import Any

from loopscope.tracer.events import NO_LANE, Code, LaneKind
from loopscope.tracer.models import toolkit
from loopscope.tracer.models._asyncio_loop import TaskBuiltDirectly, TracingEventLoop
from loopscope.tracer.models.toolkit import Guard
from loopscope.tracer.notes import add_note
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.threads import leave_untraced

__all__ = ["TracingEventLoop", "instrumented", "run", "traced_loops"]


def run(recorder: Recorder, program: Program) -> None:
    with instrumented(recorder, program) as loops:
        if program.scenario_module is not None:
            with asyncio.Runner(loop_factory=loops.new_event_loop) as runner:
                runner.run(program.scenario_main()())
        else:
            program.run_script()


@contextlib.contextmanager
def instrumented(recorder: Recorder, program: Program,
                 thread: int | None = None) -> Iterator[traced_loops]:
    """What `run` installs around the program: the traced loops, and the program's generators
    followed beside their tasks. The child also enters it by itself when a script first
    imports asyncio (ModelSpec.installed_on_import), from the thread that imports it: `thread`
    is then the program's main thread, the one traced."""
    with traced_loops(recorder, thread) as loops, beside_generators(recorder, program, loops):
        yield loops


def beside_generators(recorder: Recorder, program: Program,
                      loops: traced_loops) -> contextlib.AbstractContextManager[None]:
    """The program's generators followed alongside the other model's lanes (tasks, greenlets):
    always on 3.12+, on 3.11 when the program evidently has generators of its own
    (generator_model.declares_generators says why)."""
    # imported here: a child of another model does not load the generator model
    from loopscope.tracer.models import generator_model

    if sys.version_info < (3, 12) and not generator_model.declares_generators(program):
        return contextlib.nullcontext()
    return generator_model.following_generators(
        recorder, generator_model.Host(loops.host_lane, _task_name))


def _task_name(lane: int) -> str:
    """The name of the task whose step runs now (its lane is `lane`)."""
    task = asyncio.current_task()
    return str(getattr(task.get_coro() if task is not None else None, "_name", None) or "task")


def _makes_uvloop(factory: object) -> bool:
    if "uvloop" not in sys.modules:  # a program that never imported uvloop does not use it
        return False
    from loopscope.tracer.models._asyncio_uvloop import is_uvloop_factory

    return is_uvloop_factory(factory)


def _uvloop_policy() -> bool:
    """Whether the program installed uvloop's event-loop policy (`uvloop.install()`). Read
    from asyncio's own slot: the public getter warns from 3.14 on."""
    policy = getattr(events, "_event_loop_policy", None)
    return policy is not None and type(policy).__module__.startswith("uvloop")


def _stock_factories() -> frozenset[Callable[[], Any]]:
    """The loop factories that make asyncio's own selector loop, which we may trace."""
    factories: set[Callable[[], Any]] = {asyncio.SelectorEventLoop, events.new_event_loop}
    if sys.version_info >= (3, 13):
        factories.add(asyncio.EventLoop)
    return frozenset(factories)


class traced_loops:
    """For the duration of a with-block, the loops asyncio makes for the program trace.

    The model's lifecycle is the toolkit's (tracer.models.toolkit.instrumented): the loop
    factories are replaced under one Guard for the run, which every loop's tracer reports its
    own failures to; the first one stops all of them and puts the factories back.
    """

    def __init__(self, recorder: Recorder, thread: int | None = None,
                 guard: Guard | None = None) -> None:
        self.recorder = recorder
        self.guard = guard if guard is not None else Guard(recorder, "asyncio")
        self._thread = threading.get_ident() if thread is None else thread
        self._stock = _stock_factories()
        self._untraced_noted: set[str] = set()
        self._saved: list[tuple[Any, str, Any]] = []
        self._lifecycle: contextlib.AbstractContextManager[Guard] | None = None
        self.loop_lanes: set[int] = set()
        self._traced_types: set[type] = {TracingEventLoop}

    @property
    def detached(self) -> bool:
        return self.guard.detached

    def host_lane(self) -> int:
        """The task whose step runs now, or NO_LANE while a loop runs its own callbacks (for
        the generators followed beside the tasks)."""
        current = self.recorder.current
        return NO_LANE if current in self.loop_lanes else current

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        """A traced loop, or a plain one after an internal error or outside the run's thread
        (the recorder has one writer). uvloop's loop where the program installed its policy
        (`uvloop.install()`)."""
        if _uvloop_policy():
            return self.new_uv_event_loop()
        if self.guard.detached or threading.get_ident() != self._thread:
            return asyncio.SelectorEventLoop()
        loop = TracingEventLoop(self.recorder, self.guard)
        self.loop_lanes.add(loop.tracer.loop_lane)
        return loop

    def new_uv_event_loop(self) -> asyncio.AbstractEventLoop:
        """uvloop's loop, traced as far as it can be (tracer.models._asyncio_uvloop)."""
        import uvloop  # type: ignore[import-not-found,unused-ignore]

        from loopscope.tracer.models._asyncio_uvloop import TracingUVLoop

        if self.guard.detached or threading.get_ident() != self._thread:
            plain: asyncio.AbstractEventLoop = uvloop.Loop()
            return plain
        loop = TracingUVLoop(self.recorder, self.guard)
        self.loop_lanes.add(loop.tracer.loop_lane)
        self._traced_types.add(TracingUVLoop)
        return loop

    # -- what the with-block replaces -----------------------------------------------------

    def _patch(self, owner: Any, name: str, replacement: Any) -> None:
        self._saved.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, replacement)

    def install(self) -> None:
        new_event_loop = self.new_event_loop
        self._patch(events, "new_event_loop", new_event_loop)
        self._patch(asyncio, "new_event_loop", new_event_loop)
        stock = self._stock
        runner_init = runners.Runner.__init__

        new_uv_event_loop = self.new_uv_event_loop

        def init(runner: runners.Runner, *args: Any, **options: Any) -> None:
            factory = options.get("loop_factory")
            if factory in stock:
                options["loop_factory"] = new_event_loop
            elif factory is not None and _makes_uvloop(factory):
                options["loop_factory"] = new_uv_event_loop
            runner_init(runner, *args, **options)

        self._patch(runners.Runner, "__init__", init)
        set_running_loop = events._set_running_loop
        note_untraced = self._note_untraced
        traced_types = self._traced_types

        def set_running(loop: Any) -> None:
            if loop is not None and type(loop) not in traced_types:
                note_untraced(loop)
            set_running_loop(loop)

        self._patch(events, "_set_running_loop", set_running)
        if asyncio.__dict__.get("_set_running_loop") is set_running_loop:
            self._patch(asyncio, "_set_running_loop", set_running)
        self._patch(asyncio, "Task", TaskBuiltDirectly)

    def uninstall(self) -> None:
        saved, self._saved = self._saved, []
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)

    def __enter__(self) -> traced_loops:
        self._lifecycle = toolkit.instrumented(self.guard, self.install, self.uninstall)
        self._lifecycle.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        assert self._lifecycle is not None
        self._lifecycle.__exit__(*exc_info)

    # -- never silent ---------------------------------------------------------------------

    def _note_untraced(self, loop: Any) -> None:
        """Says, once per kind of loop, that a loop ran untraced: a note for the run (the CLI
        prints it, the app lists it) and, for the program's own choice of loop, a lane on the
        timeline that carries it."""
        if self.guard.detached:
            return
        if threading.get_ident() != self._thread:
            leave_untraced("an asyncio event loop")  # the recorder has one writer
            return
        kind = f"{type(loop).__module__}.{type(loop).__qualname__}"
        if kind in self._untraced_noted:
            return
        self._untraced_noted.add(kind)
        note = (f"this program chose its own event loop ({kind}); Loopscope traces asyncio's "
                "own loop, so that loop's tasks are not on the timeline (let asyncio.run() "
                "pick the loop to see them)")
        add_note(note)
        # a loop lane of its own carries the note, so the timeline itself says what is missing
        recorder = self.recorder
        try:
            lane = recorder.spawn(f"{kind} (not traced)", LaneKind.LOOP, parent=recorder.current)
            recorder.record(lane, Code.MARK, NO_LANE, recorder.detail(("text", note)))
        except Exception:  # the run's note stands; a recorder that is gone takes no lane
            return

