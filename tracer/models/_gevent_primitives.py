"""What a greenlet waits on when it waits on a gevent lock, semaphore, event or queue.

gevent's primitives are compiled classes: their blocking paths switch to the hub directly, so
the gevent model would only see "blocked on the hub". While the model runs, the module
attributes the program imports them from (`gevent.lock.Semaphore`, `BoundedSemaphore`, the
`RLock`'s inner semaphore, `gevent.event.Event` and `AsyncResult`,
and the monkey-patched `threading.Event`) are Python subclasses that say, just before a
greenlet blocks, what it blocks on, and, when another greenlet releases or sets one that has
had waiters, who did (the last to do so before the hub resumes a waiter let that waiter go).

The semaphores and events cost next to nothing until a greenlet blocks on one: they are told
of a wait by `rawlink`, which gevent calls only on the way to the hub, and only then does that
primitive become an instance of a subclass whose `release`/`set` say who released it (a
class assignment; the layouts are the same). The queues have no such hook, and Python
`get`/`put` methods would cost every call (2.8x on a loop of puts and gets), so a queue's
wait is seen where gevent starts its timeout, which only a blocking get or put does with
`Empty` or `Full`: the wait says "Queue.get" or "Queue.put" but not which queue, nor who let
it go.

The monkey-patched `threading.Lock` (gevent.thread.LockType) refuses subclasses: its own
methods are wrapped in place, and only the locks the program's lines make are named.

A primitive's name comes from the line that created it (the first frame outside gevent), read
when a greenlet first blocks on it: `lock = Semaphore()` is "lock (demo.py:12)".
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from loopscope.tracer.events import NO_LANE
from loopscope.tracer.models._program_files import LazyProgramFiles
from loopscope.tracer.primitive_names import PrimitiveNames
from loopscope.tracer.threads import in_traced_thread

if TYPE_CHECKING:
    from loopscope.tracer.models.gevent_model import GeventTracer

# instance attribute of a primitive greenlets have blocked on: method -> the lane that last
# let one go (its greenlet may have ended by the time the hub resumes the waiter)
_RELEASED_BY = "_loopscope_released_by"
_CREATED = "_loopscope_created"  # instance attribute: (file, line, kind, serial) at creation
_NAME = "_loopscope_name"


def _outside(skipped: tuple[str, ...], frame: FrameType | None) -> tuple[FrameType | None,
                                                                           str | None]:
    """The first frame outside `skipped` folders, and the kind of the outermost gevent
    object being built on the way (an RLock builds its Semaphore)."""
    kind = None
    while frame is not None and frame.f_code.co_filename.startswith(skipped):
        if frame.f_code.co_name == "__init__":
            owner = frame.f_locals.get("self")
            if owner is not None:
                kind = type(owner).__name__
        frame = frame.f_back
    return frame, kind


class PrimitiveNotes:
    """The hooks the subclasses call; each is a no-op unless a greenlet blocks or is let go."""

    def __init__(self, tracer: GeventTracer, getcurrent: Callable[[], Any],
                 skipped: tuple[str, ...]) -> None:
        self.tracer = tracer
        self.getcurrent = getcurrent
        self.skipped = skipped
        # a semaphore's or event's class -> the one it takes once a greenlet blocked on it
        self.watched: dict[type, type] = {}
        self.names = PrimitiveNames()

    def created(self, primitive: Any) -> None:
        frame, kind = _outside(self.skipped, sys._getframe(2))
        where = (frame.f_code.co_filename, frame.f_lineno) if frame is not None else ("?", 0)
        primitive.__dict__[_CREATED] = self.names.made(*where, kind or type(primitive).__name__)

    def name(self, primitive: Any) -> str:
        name: str | None = primitive.__dict__.get(_NAME)
        if name is None:
            name = self.names.name(primitive.__dict__.get(
                _CREATED, ("?", 0, type(primitive).__name__, 1)))
            primitive.__dict__[_NAME] = name
        return name

    def watch(self, cls: type, **methods: Any) -> type:
        """`cls`, and the subclass with `methods` (who releases it) that an instance of it
        becomes when a greenlet first blocks on it."""
        self.watched[cls] = _subclass(cls, **methods)
        return cls

    def blocks(self, primitive: Any, method: str) -> None:
        """The current greenlet is about to switch to the hub to wait in `method`."""
        if not in_traced_thread():  # another thread's hub; the recorder is the traced one's
            return
        watched = self.watched.get(type(primitive))
        if watched is not None:
            primitive.__class__ = watched
        released_by = primitive.__dict__.setdefault(_RELEASED_BY, {})
        released_by.setdefault(method, NO_LANE)  # a key for each method waited in
        kind = primitive.__dict__.get(_CREATED, ("", 0, "", 0))[2]
        shown = method
        if kind and method.endswith(".acquire") and kind != type(primitive).__name__:
            shown = f"{kind}.acquire"  # an RLock waits on the Semaphore it built
        self.tracer.note_primitive_wait(self.getcurrent(), shown, self.name(primitive),
                                        released_by, method)

    def linked(self, primitive: Any, callback: Any, method: str) -> None:
        """gevent links a waiting greenlet's `switch` just before it blocks; other links
        (a Greenlet.link, an AsyncResult's callbacks) are not waits."""
        if getattr(callback, "__self__", None) is self.getcurrent() and \
                getattr(callback, "__name__", "") == "switch":
            self.blocks(primitive, method)

    def lets_go(self, primitive: Any, method: str) -> None:
        """The current greenlet released, set or filled `primitive`, which greenlets have
        waited on in `method`: the next of them the hub resumes was let go by it."""
        if not in_traced_thread():
            return
        primitive.__dict__[_RELEASED_BY][method] = self.tracer.known_lane(self.getcurrent())


def install(tracer: GeventTracer, modules: dict[str, ModuleType],
            getcurrent: Callable[[], Any]) -> Callable[[], None]:
    """Puts the subclasses in place of the module attributes; returns what puts them back."""
    import gevent  # type: ignore[import-untyped,unused-ignore]

    skipped = (os.path.dirname(gevent.__file__) + os.sep,
               os.path.dirname(os.path.dirname(__file__)) + os.sep)
    notes = PrimitiveNotes(tracer, getcurrent, skipped)
    guard = tracer.guard
    lock, event, queues = modules["gevent.lock"], modules["gevent.event"], modules["gevent.queue"]

    def watched(base: Any, method: str, **lets_go: Callable[..., Any]) -> type:
        """`base` made to say when a greenlet blocks on it in `method`; an instance takes the
        methods `lets_go` (release, set ...), which say who let it go, once one has."""

        def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
            base.__init__(self, *args, **kwargs)
            guard.call(notes.created, self)

        def rawlink(self: Any, callback: Any) -> Any:
            guard.call(notes.linked, self, callback, method)
            return base.rawlink(self, callback)

        return notes.watch(_subclass(base, __init__=__init__, rawlink=rawlink), **lets_go)

    def semaphore(base: Any) -> type:
        acquire = f"{base.__name__}.acquire"
        base_release = base.release

        # no *args: a lock's release is the commonest call of all these, and takes none
        def release(self: Any) -> Any:
            if _RELEASED_BY in self.__dict__:
                guard.call(notes.lets_go, self, acquire)
            return base_release(self)

        return watched(base, acquire, release=release)

    def event_type(base: Any, method: str, setters: tuple[str, ...]) -> type:
        def setter(name: str) -> Callable[..., Any]:
            original = getattr(base, name)

            def sets(self: Any, *args: Any, **kwargs: Any) -> Any:
                if _RELEASED_BY in self.__dict__:
                    guard.call(notes.lets_go, self, method)
                return original(self, *args, **kwargs)

            sets.__name__ = name
            return sets

        return watched(base, method,
                       **{name: setter(name) for name in setters if hasattr(base, name)})

    made: dict[Any, type] = {}
    for base in (lock.Semaphore, lock.BoundedSemaphore):
        made[base] = semaphore(base)
    made[event.Event] = event_type(event.Event, "Event.wait", ("set",))
    made[event.AsyncResult] = event_type(event.AsyncResult, "AsyncResult.get",
                                         ("set", "set_exception"))

    replaced: list[tuple[ModuleType, str, Any]] = []
    for module in modules.values():
        for name, value in list(vars(module).items()):
            if isinstance(value, type) and value in made:
                replaced.append((module, name, value))
                setattr(module, name, made[value])

    # A queue's blocking get/put starts its timeout (a dummy without one) with the exception it
    # raises, Empty or Full, and nothing else does: the only hook that costs nothing otherwise.
    timeout_type = modules["gevent.timeout"].Timeout
    start_timeout = vars(timeout_type)["_start_new_or_dummy"]
    waits = {queues.Empty: "Queue.get", queues.Full: "Queue.put"}

    def _start_new_or_dummy(timeout: Any, exception: Any = None, *args: Any, **kwargs: Any
                            ) -> Any:
        method = waits.get(exception) if isinstance(exception, type) else None
        if method is not None and in_traced_thread():
            guard.call(tracer.note_queue_wait, getcurrent(), method)
        return start_timeout.__func__(timeout, exception, *args, **kwargs)

    timeout_type._start_new_or_dummy = staticmethod(_start_new_or_dummy)
    put_lock_back = _watch_lock_type(notes, guard, modules)

    def uninstall() -> None:
        put_lock_back()
        timeout_type._start_new_or_dummy = start_timeout
        for module, name, value in replaced:
            setattr(module, name, value)

    return uninstall


def _watch_lock_type(notes: PrimitiveNotes, guard: Any, modules: dict[str, ModuleType]
                     ) -> Callable[[], None]:
    """The monkey-patched `threading.Lock`, gevent.thread.LockType, refuses subclasses, so
    no module attribute can be swapped for one: its own `__init__` and `rawlink` are wrapped
    in place, for the locks the program makes (a line of the program's created it; the locks
    threading makes for itself under the patch, a Condition's waiters, stay quiet). Its
    refusal is lifted only to make the subclass a lock becomes once a greenlet blocked on it,
    whose `release` says who let it go. Returns what puts LockType back."""
    import importlib

    lock_type: Any = importlib.import_module("gevent.thread").LockType
    own = {name: lock_type.__dict__[name] for name in ("__init__", "rawlink")
           if name in lock_type.__dict__}
    base_init, base_rawlink, base_release = lock_type.__init__, lock_type.rawlink, \
        lock_type.release
    is_program = LazyProgramFiles()
    method = "Lock.acquire"

    def __init__(self: Any) -> None:
        base_init(self)
        frame, _kind = _outside(notes.skipped, sys._getframe(1))
        if frame is not None and is_program(frame.f_code.co_filename):
            guard.call(notes.created, self)

    def rawlink(self: Any, callback: Any) -> Any:
        if _CREATED in self.__dict__:
            guard.call(notes.linked, self, callback, method)
        return base_rawlink(self, callback)

    def release(self: Any) -> Any:
        if _RELEASED_BY in self.__dict__:
            guard.call(notes.lets_go, self, method)
        return base_release(self)

    refusal = lock_type.__dict__.get("__init_subclass__")
    if refusal is not None:
        del lock_type.__init_subclass__
    try:
        notes.watch(lock_type, release=release)
    finally:
        if refusal is not None:
            lock_type.__init_subclass__ = refusal
    lock_type.__init__, lock_type.rawlink = __init__, rawlink

    def uninstall() -> None:
        notes.watched.pop(lock_type, None)
        for name in ("__init__", "rawlink"):
            if name in own:
                setattr(lock_type, name, own[name])
            else:
                delattr(lock_type, name)

    return uninstall


def _subclass(base: type, **methods: Any) -> type:
    """A subclass that looks like `base` to the program (its name, module and docs)."""
    cls = type(base.__name__, (base,), {
        **methods, "__module__": base.__module__, "__qualname__": base.__qualname__,
        "__doc__": base.__doc__})
    return cls
