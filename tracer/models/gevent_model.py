"""gevent: greenlets switching through the hub, and what each one waits for while it is away.

The hub is the loop lane ("gevent hub"). A greenlet that switches to the hub is waiting for
something: gevent routes every such wait through `Hub.wait(watcher)`, so wrapping that method
tells whether the watcher is an io watcher (IO_WAIT on its fd) or a timer (SLEEPING until its
deadline). The hub's own waiting inside libev/libuv is bracketed by a prepare watcher (just
before the loop blocks: POLL, and a flush so a live view is current) and a check watcher (just
after: DISPATCH). When the hub switches back to a greenlet, that is a WAKE arrow whose cause is
what the greenlet waited for.

gevent is imported only here, inside `run`, in the child, after monkey-patching.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import Any

from loopscope.tracer.events import (
    NO_DETAIL,
    NO_LANE,
    NO_SOURCE,
    Code,
    Detail,
    LaneKind,
    short_repr,
)
from loopscope.tracer.models import _gevent_primitives
from loopscope.tracer.models._greenlets import Greenlet, GreenletTracer
from loopscope.tracer.models.toolkit import Guard, instrumented
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.stop_request import StopRequested
from loopscope.tracer.thread_lines import on_lane, record_waiting_lines
from loopscope.tracer.thread_work import function_name
from loopscope.tracer.threads import in_traced_thread

HUB_NAME = "gevent hub"
# gevent's greenlets that hand a pool's work out to greenlets of their own (Pool.map's, imap's),
# by their functions' qualified names (gevent compiles imap with Cython, whose code objects
# have neither that name nor a file path that tells them from the program's): named for the
# call and the function, "map(fetch)", so that the greenlets that do run the function are the
# ones named for it ("fetch", "fetch-2", ...).
_HANDS_OUT_WORK = {"GroupMappingMixin.__map": "map", "IMapUnordered._run": "imap"}
_READ, _WRITE = 1, 2


class GeventTracer(GreenletTracer):
    # every switch to or from the hub is a wait or a wake, decided in _record_switch
    plain_switches = False
    model = "gevent"

    def __init__(self, recorder: Recorder, hub_type: type, greenlet_type: type,
                 guard: Guard | None = None) -> None:
        super().__init__(recorder, guard)
        self.hub_type = hub_type
        self.greenlet_type = greenlet_type
        self.hub_lane = NO_LANE
        # greenlet -> (state code, state detail, wake cause) of the wait it is in
        self.waits: dict[Greenlet, tuple[int, Detail, Detail]] = {}
        self._deadlines: dict[Greenlet, int] = {}
        # greenlets waiting on a gevent primitive that nobody has let go yet
        # greenlet -> where its primitive keeps who last released it, and under which method
        self._on_primitive: dict[Greenlet, tuple[dict[str, int], str]] = {}
        self._hub_code: int | None = None
        # id -> (gevent.Timeout, deadline) of the timeouts started in the traced thread: a
        # greenlet's Event.wait(timeout), a poll's timeout, a `with Timeout(...)` (none of
        # them goes through Hub.wait), which bound the hub's poll as a sleep does
        self._timeouts: dict[int, tuple[Any, int]] = {}
        # whether the hub's loop has callbacks queued (set by run: the loop's own count)
        self.callbacks_waiting: Callable[[], bool] = lambda: False

    def describe(self, glet: Greenlet) -> tuple[str, str] | None:
        if isinstance(glet, self.hub_type):
            return HUB_NAME, LaneKind.LOOP
        if isinstance(glet, self.greenlet_type):
            return self._program_function_name(glet), LaneKind.GREENLET
        return super().describe(glet)

    def _program_function_name(self, glet: Greenlet) -> str:
        """The function the greenlet runs; for gevent's own wrappers (a StreamServer's
        connection handler), the program's function they were given."""
        run = getattr(glet, "_run", None)
        thread = getattr(run, "__self__", None)
        if isinstance(thread, threading.Thread):
            # a monkey-patched thread: its greenlet runs Thread._bootstrap; the program knows
            # it by its target (or its name)
            target = getattr(thread, "_target", None)
            return str(getattr(target, "__name__", None) or thread.name)
        handed_out = _HANDS_OUT_WORK.get(getattr(run, "__qualname__", ""))
        if handed_out is not None and str(getattr(run, "__module__", "")).startswith("gevent"):
            # it spawns the greenlets that run the program's function, and runs none of it
            # (Pool.map's gets the function as an argument; imap's keeps it where only
            # Cython's code can read it)
            func = next((argument for argument in getattr(glet, "args", ()) if callable(argument)),
                        None)
            name = getattr(func, "__name__", None)
            return f"{handed_out}({name})" if isinstance(name, str) else handed_out
        code = getattr(run, "__code__", None)
        if code is not None and not self.is_program(code):
            for argument in getattr(glet, "args", ()):
                inner = getattr(argument, "__code__", None)
                if inner is not None and self.is_program(inner):
                    return str(argument.__name__)
                # a WSGIServer's handler: the program's WSGI application it serves
                application = getattr(getattr(argument, "__self__", None), "application", None)
                call = vars(type(application)).get("__call__")  # an application object's
                app_code = getattr(application, "__code__", None) or getattr(
                    call, "__code__", None)
                if app_code is not None and self.is_program(app_code):
                    return str(getattr(application, "__name__", None)
                               or type(application).__name__)
        return getattr(run, "__name__", None) or "greenlet"

    def parent_lane(self, glet: Greenlet, origin: Greenlet) -> int:
        spawner = getattr(glet, "spawning_greenlet", None)
        spawner = spawner() if callable(spawner) else None
        lane = self.known_lane(spawner) if spawner is not None else None
        if lane is not None:
            return lane
        return super().parent_lane(glet, origin)

    def on_spawn(self, glet: Greenlet, lane: int) -> None:
        if isinstance(glet, self.hub_type):
            self.hub_lane = lane
        elif isinstance(glet, self.greenlet_type):
            self.waits[glet] = (Code.READY, ("cause", "spawn"), ("cause", "spawn"))

    def started(self, glet: Greenlet, spawner: Greenlet) -> None:
        """`glet.start()` (gevent.spawn) was called in `spawner`: the lane is spawned now, from
        the spawner's lane, and waits in READY until the hub first switches to it."""
        if self.known_lane(glet) is not None or not in_traced_thread():
            return
        lane = self.lane_of(glet, spawner)
        known = self.known_lane(spawner)
        spawner_lane = NO_LANE if known is None else known
        self.recorder.state(lane, Code.READY, ("cause", "spawn"), spawner_lane)

    def host_lane(self) -> int:
        """The greenlet whose code runs now (for the generators followed beside greenlets)."""
        current = self.recorder.current
        return NO_LANE if current == self.hub_lane else current

    def lane_name(self, lane: int) -> str:
        return self.names.get(lane, "greenlet")

    def start_source(self, glet: Greenlet) -> int:
        code = getattr(getattr(glet, "_run", None), "__code__", None)
        return self.recorder.source_of(code, code.co_firstlineno) if code is not None else 0

    def end_state(self, origin: Greenlet, origin_lane: int) -> None:
        self.waits.pop(origin, None)
        self._deadlines.pop(origin, None)
        self._on_primitive.pop(origin, None)
        exception = getattr(origin, "exception", None)
        if isinstance(exception, BaseException):
            self.recorder.end(origin_lane, error=exception)
        else:
            self.recorder.end(origin_lane, result=getattr(origin, "value", None))

    # -- what a greenlet waits for ------------------------------------------------------------

    def note_wait(self, glet: Greenlet, watcher: Any) -> None:
        """Called from the wrapped Hub.wait just before `glet` switches to the hub."""
        fd = getattr(watcher, "fd", None)
        if isinstance(fd, int):
            events = getattr(watcher, "events", _READ)
            mode = "write" if events & _WRITE and not events & _READ else "read"
            self.waits[glet] = (Code.IO_WAIT, ("fd", fd, "mode", mode),
                                ("cause", "fd", "fd", fd, "mode", mode))
            return
        delay = getattr(watcher, "at", None)
        if isinstance(delay, int | float) and "timer" in type(watcher).__name__:
            now = self.recorder.clock() - self.recorder.origin
            deadline = now + int(delay * 1e9)
            self._deadlines[glet] = deadline
            self.waits[glet] = (Code.SLEEPING, ("delay_s", float(delay), "deadline_ns", deadline),
                                ("cause", "timer", "deadline_ns", deadline))
            return
        self.waits[glet] = (Code.BLOCKED, ("on", short_repr(watcher)),
                            ("cause", "callback"))

    def timeout_started(self, timeout: Any) -> None:
        seconds = getattr(timeout, "seconds", None)
        if isinstance(seconds, int | float) and in_traced_thread():
            now = self.recorder.clock() - self.recorder.origin
            self._timeouts[id(timeout)] = (timeout, now + int(seconds * 1e9))

    def note_primitive_wait(self, glet: Greenlet, method: str, name: str,
                            released_by: dict[str, int], releasing: str) -> None:
        """Called from a primitive (tracer.models._gevent_primitives) just before `glet`
        switches to the hub to wait in `method` on the primitive called `name`;
        `released_by[releasing]` will hold the lane that last released it."""
        self._on_primitive[glet] = (released_by, releasing)
        self.waits[glet] = (Code.BLOCKED, ("on", method, "primitive", name),
                            ("cause", "released", "primitive", name))

    def note_queue_wait(self, glet: Greenlet, method: str) -> None:
        """Called where a gevent queue's blocking get or put starts its timeout, just before
        `glet` switches to the hub; which queue is not known (see _gevent_primitives)."""
        self.waits[glet] = (Code.BLOCKED, ("on", method), ("cause", "callback"))

    # -- switches -----------------------------------------------------------------------------

    def origin_state(self, origin: Greenlet, origin_lane: int, target_lane: int) -> None:
        if target_lane != self.hub_lane:
            super().origin_state(origin, origin_lane, target_lane)
            return
        wait = self.waits.get(origin)
        if wait is None:
            self.blocked_on(origin_lane, target_lane)
        else:
            on_hub = wait[0] == Code.BLOCKED and origin not in self._on_primitive
            self.recorder.state(origin_lane, wait[0], wait[1],
                                target_lane if on_hub else NO_LANE)

    def target_running(self, target: Greenlet, target_lane: int, origin_lane: int,
                       resumed_at: int) -> None:
        if target_lane != self.hub_lane:
            super().target_running(target, target_lane, origin_lane, resumed_at)
        elif self._hub_code is None:
            # The hub's first run; from then on its lane is in dispatch or poll, and the
            # greenlets it resumes run inside its dispatch.
            self._hub_code = Code.DISPATCH
            self.recorder.record(target_lane, Code.DISPATCH)

    def switch_detail(self, via: str, target_lane: int) -> int:
        return super().switch_detail("hub" if target_lane == self.hub_lane else via, target_lane)

    def _record_switch(self, event: str, origin: Greenlet, origin_lane: int, target: Greenlet,
                       target_lane: int, resumed_at: int) -> None:
        if origin_lane != self.hub_lane or origin.dead:
            super()._record_switch(event, origin, origin_lane, target, target_lane, resumed_at)
            return
        # The hub resuming a greenlet: it wakes it because what it waited for happened.
        recorder = self.recorder
        wait = self.waits.pop(target, None)
        self._deadlines.pop(target, None)
        primitive = self._on_primitive.pop(target, None)
        if primitive is not None:
            # ready from the hub's resuming it, drawn from whoever last released the primitive
            recorder.record(target_lane, Code.READY, primitive[0].get(primitive[1], NO_LANE),
                            recorder.detail(("cause", "released")))
        cause = wait[2] if wait is not None else ("cause", "callback")
        recorder.record(target_lane, Code.WAKE, origin_lane, recorder.detail(cause))
        recorder.record(target_lane, Code.RUNNING, NO_LANE, NO_DETAIL, resumed_at)
        recorder.current = target_lane

    # -- the hub's own waiting ------------------------------------------------------------------

    def thread_work(self, function: Callable[..., Any], caller: FrameType | None,
                    pool_files: frozenset[str]) -> int:
        """A function handed to the hub's threadpool: a lane of kind thread, running until
        its AsyncResult is set (`work_done`). Its spawn's source is the line that handed it
        over, past the pool's own methods: the program's, or a library's (gevent's resolver
        looking up a host name), which the timeline folds with the other library lanes."""
        recorder = self.recorder
        while caller is not None and caller.f_code.co_filename in pool_files:
            caller = caller.f_back
        source = NO_SOURCE if caller is None else recorder.source_of(caller.f_code,
                                                                     caller.f_lineno)
        lane = recorder.spawn(function_name(function), LaneKind.THREAD, recorder.current,
                              source=source)
        recorder.state(lane, Code.RUNNING)
        return lane

    def work_done(self, lane: int, result: Any) -> None:
        recorder = self.recorder

        def done(finished: Any) -> None:  # the result's links run here, in the hub's thread
            record_waiting_lines()  # what the work printed comes before its end
            if finished.successful():
                recorder.end(lane, result=finished.value)
            else:
                recorder.end(lane, error=finished.exception)

        result.rawlink(done)

    def before_poll(self) -> None:
        if self.hub_lane == NO_LANE:
            return
        now = self.recorder.clock() - self.recorder.origin
        deadlines = list(self._deadlines.values())
        if self._timeouts:
            # a Timeout that fired or was cancelled no longer bounds the wait
            self._timeouts = {key: (timeout, deadline)
                              for key, (timeout, deadline) in self._timeouts.items()
                              if timeout.pending}
            deadlines.extend(deadline for _, deadline in self._timeouts.values())
        timeout = max(0.0, (min(deadlines) - now) / 1e9) if deadlines else None
        if self.callbacks_waiting():
            # callbacks queued for the loop (a gevent.sleep(0), a greenlet to start): gevent
            # keeps an idle watcher going meanwhile, so this poll only looks and returns
            timeout = 0.0
        self._hub_code = Code.POLL
        self.recorder.state(self.hub_lane, Code.POLL, ("timeout_s", timeout))
        self.recorder.current = self.hub_lane
        self.recorder.flush()

    def after_poll(self) -> None:
        if self.hub_lane != NO_LANE and self._hub_code != Code.DISPATCH:
            self._hub_code = Code.DISPATCH
            self.recorder.record(self.hub_lane, Code.DISPATCH)


def _wrap_wait(hub_type: Any, tracer: GeventTracer, getcurrent: Callable[[], Greenlet]) -> Any:
    original = hub_type.wait

    def wait(hub: Any, watcher: Any) -> Any:
        # Another thread's hub (gevent's threadpool workers sleep on hubs of their own) is
        # not ours: its deadlines would cut the traced hub's poll timeouts short, to 0.0.
        if in_traced_thread():
            tracer.guard.call(tracer.note_wait, getcurrent(), watcher)
        return original(hub, watcher)

    hub_type.wait = wait
    return original


def _wrap_threadpool(pool_type: Any, tracer: GeventTracer) -> Any:
    original = pool_type.spawn
    # the pool's own methods (apply, map... some from gevent.pool's mixins) calling spawn are
    # passed over to find who asked
    pool_files = frozenset(
        getattr(sys.modules.get(kind.__module__), "__file__", None) or ""
        for kind in pool_type.__mro__)

    def spawn(pool: Any, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not in_traced_thread():  # another thread's hub has a pool too; the recorder is ours
            return original(pool, func, *args, **kwargs)
        lane = tracer.guard.call(tracer.thread_work, func, sys._getframe(1), pool_files)
        if lane is None:
            return original(pool, func, *args, **kwargs)
        # what the function prints in the pool's thread goes on its lane
        result = original(pool, on_lane(lane, func), *args, **kwargs)
        tracer.guard.call(tracer.work_done, lane, result)
        return result

    pool_type.spawn = spawn
    return original


def _wrap_spawns(gevent: Any, group_type: Any, tracer: GeventTracer) -> tuple[Any, Any]:
    """gevent.spawn and Group.start (under every Pool.spawn and Group.spawn) tell the tracer
    of the greenlet they start. (Greenlet itself is a compiled type that takes no wrapper:
    a program's own `Greenlet(f).start()` is seen when the greenlet first runs.)"""
    original_spawn, original_start = gevent.spawn, group_type.start
    getcurrent = gevent.getcurrent

    def spawn(*args: Any, **kwargs: Any) -> Any:
        glet = original_spawn(*args, **kwargs)
        tracer.guard.call(tracer.started, glet, getcurrent())
        return glet

    def start(group: Any, glet: Any) -> None:
        original_start(group, glet)
        tracer.guard.call(tracer.started, glet, getcurrent())

    gevent.spawn = spawn
    group_type.start = start
    return original_spawn, original_start


def _wrap_timeouts(timeout_type: Any, tracer: GeventTracer) -> Any:
    original = timeout_type.start

    def start(timeout: Any) -> None:
        original(timeout)
        tracer.guard.call(tracer.timeout_started, timeout)

    timeout_type.start = start
    return original


def _stop_flush_timer(recorder: Recorder) -> None:
    """Ends the recorder's flush thread before gevent patches threading.

    A thread started before patching dies with a KeyError in threading's bookkeeping once
    get_ident is gevent's. The live view stays current without it: the hub flushes before
    every poll.
    """
    timer = recorder._timer
    if timer is not None:
        recorder._timer_stop.set()
        timer.join()
        recorder._timer = None


def beside_generators(recorder: Recorder, program: Program,
                      tracer: GeventTracer) -> contextlib.AbstractContextManager[None]:
    """The program's generators followed alongside its greenlets: always on 3.12+, on 3.11
    when the program evidently has generators of its own (as for asyncio)."""
    from loopscope.tracer.models import generator_model

    if sys.version_info < (3, 12) and not generator_model.declares_generators(program):
        return contextlib.nullcontext()
    return generator_model.following_generators(
        recorder, generator_model.Host(tracer.host_lane, tracer.lane_name))


def run(recorder: Recorder, program: Program) -> None:
    _stop_flush_timer(recorder)
    from gevent import monkey  # type: ignore[import-untyped,unused-ignore]

    monkey.patch_all()
    import gevent  # type: ignore[import-untyped,unused-ignore]
    import gevent.hub  # type: ignore[import-untyped,unused-ignore]

    guard = Guard(recorder, "gevent")
    tracer = GeventTracer(recorder, gevent.hub.Hub, gevent.Greenlet, guard)
    import gevent.event  # type: ignore[import-untyped,unused-ignore]
    import gevent.lock  # type: ignore[import-untyped,unused-ignore]
    import gevent.queue  # type: ignore[import-untyped,unused-ignore]
    import gevent.threadpool  # type: ignore[import-untyped,unused-ignore]
    import gevent.timeout  # type: ignore[import-untyped,unused-ignore]

    hub = gevent.get_hub()
    queued = getattr(hub.loop, "_callbacks", None)
    if queued is not None:
        tracer.callbacks_waiting = lambda: len(queued) > 0
    # Lowest priority: gevent's own prepare watcher runs queued callbacks (greenlet starts)
    # first, so ours marks the moment the loop really blocks.
    prepare = hub.loop.prepare(ref=False, priority=-2)
    check = hub.loop.check(ref=False, priority=2)
    original_wait = gevent.hub.Hub.wait
    original_spawn = gevent.threadpool.ThreadPool.spawn
    import gevent.pool  # type: ignore[import-untyped,unused-ignore]

    spawns = (gevent.spawn, gevent.pool.Group.start)
    original_timeout_start = gevent.Timeout.start
    # A stop unwinds like Ctrl-C, but the hub must not print it as a failure on its way out.
    not_error = gevent.hub.Hub.NOT_ERROR
    # where the program imports gevent's primitives from (threading patched to them)
    primitive_modules: dict[str, ModuleType] = {name: sys.modules[name] for name in
                         ("gevent.lock", "gevent.event", "gevent.queue", "gevent.timeout",
                          "threading")
                         if name in sys.modules}
    put_back: list[Callable[[], None]] = []

    def install() -> None:
        put_back.append(_gevent_primitives.install(tracer, primitive_modules, gevent.getcurrent))
        _wrap_wait(gevent.hub.Hub, tracer, gevent.getcurrent)
        _wrap_threadpool(gevent.threadpool.ThreadPool, tracer)
        _wrap_spawns(gevent, gevent.pool.Group, tracer)
        _wrap_timeouts(gevent.Timeout, tracer)
        prepare.start(guard.shield(tracer.before_poll))
        check.start(guard.shield(tracer.after_poll))
        tracer.install()
        # the hub's lane comes first, as the loop lane does in every model: greenlets are
        # spawned (gevent.spawn) before the hub first runs
        tracer.lane_of(hub, gevent.getcurrent())
        gevent.hub.Hub.NOT_ERROR = (*not_error, StopRequested)

    def uninstall() -> None:
        while put_back:
            put_back.pop()()
        gevent.hub.Hub.NOT_ERROR = not_error
        tracer.uninstall()
        prepare.stop()
        check.stop()
        gevent.hub.Hub.wait = original_wait
        gevent.threadpool.ThreadPool.spawn = original_spawn
        gevent.spawn, gevent.pool.Group.start = spawns
        gevent.Timeout.start = original_timeout_start

    with instrumented(guard, install, uninstall):
        try:
            with beside_generators(recorder, program, tracer):
                program.run_plain()
        finally:
            guard.close()
            guard.call(tracer.finish)
