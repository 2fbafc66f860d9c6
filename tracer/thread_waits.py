"""Threads blocked on the program's locks, semaphores, events, conditions and queues.

A thread waiting on a `threading.Lock` records nothing by itself: its lane just goes quiet. While
the run lasts, such a wait is a `blocked` span on the thread's lane (tracer.thread_lines) that
names the primitive by the line that made it ("lock (bank.py:12)") and the method it waits in
("Lock.acquire", "Queue.put"), followed, when another lane let it go, by a wake from that lane
(the last to release, notify or set it before the waiter got it) and the line it waited at.
That is the shape gevent's waits have, so the report's contention lint reads both alike.

Only the program's own primitives are watched (made by a line of the program, not of the
standard library, an installed package or Loopscope: tracer.models._program_files), so the
locks inside asyncio, queue and a pool stay as they are, and only a wait that blocks costs
anything. A future the program submits to a pool of its own is the program's too (named by
the line that submitted it), and so is the event `as_completed` or `concurrent.futures.wait`
makes for the program: a wait on either is woken by the thread that set the future.

- `threading.Lock()` and `threading.RLock()` called from the program give a lock that first
  tries the real one without blocking; only if that fails is the wait noted. Releasing one
  notes the releaser only while a thread waits on it.
- Everything else (Condition, Semaphore, BoundedSemaphore, Event, Barrier, queue.Queue and its
  subclasses) blocks in `Condition.wait`, which they call only when they must wait; that one
  method is wrapped, and `Condition.__init__` notes which primitive a condition is built for
  and the line that built it. A condition something has waited on becomes an instance of a
  subclass whose `notify` notes who let the waiters go.

A thread in `time.sleep`, called by the program's code, is sleeping on its lane until the
delay is over. The traced thread's sleeps are recorded once it has a lane of its own.

The traced thread's own waits are recorded only while no model's lane runs there (a plain
threaded program's main thread); in a loop or a greenlet they are that lane's stall, which
the stall sampler shows with its stack. gevent's monkey-patched `threading.Lock` is gevent's
own lock, whose waits are greenlets' waits (tracer.models._gevent_primitives).
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from loopscope.tracer.events import NO_LANE
from loopscope.tracer.models._program_files import LazyProgramFiles
from loopscope.tracer.notes import add_note
from loopscope.tracer.primitive_names import PrimitiveNames
from loopscope.tracer.recorder import c_extension
from loopscope.tracer.thread_lines import RUNS_POOL_WORK, ThreadLines, _RealLocal, thread_lane
from loopscope.tracer.threads import os_thread_ident

_MADE = "_loopscope_made"  # on a primitive of the program: (file, line, kind, serial)
_NAME = "_loopscope_name"
_LET_GO = "_loopscope_let_go"  # on a condition waited on: (releaser, clock reading)
# The files whose frames build and wait on the primitives for the program: threading's and
# queue's (named as their code objects name them; queue is not imported for this).
_THREADING_FILE = threading.Condition.wait.__code__.co_filename
_BUILDERS = frozenset({_THREADING_FILE,
                       os.path.join(os.path.dirname(_THREADING_FILE), "queue.py")})
# concurrent.futures' files: a future the program submits to its own pool, and the event
# `as_completed` or `wait` makes for it, belong to the program line that called into them.
_FUTURES_FILES = frozenset(os.path.join(os.path.dirname(_THREADING_FILE), "concurrent",
                                        "futures", name)
                           for name in ("_base.py", "thread.py", "process.py"))
_PROCESS_POOL = "concurrent.futures.process"
_FUTURES_WAITS = frozenset({"as_completed", "wait"})  # the module's own waiting functions
# the kinds of primitive a thread that sets a future lets go (its wake's cause: "future")
_FUTURE_KINDS = _FUTURES_WAITS | {"Future"}

_T = TypeVar("_T")
# The run's watcher while installed; the program's locks outlive it and then just block.
_watcher: ThreadWaits | None = None


def _in_place_of(original: Any, factory: Callable[[], Any],
                 made_by: Callable[[FrameType], Any]) -> Any:
    """What stands where the program finds `original`: `factory`, or, since 3.13, where
    `threading.Lock` is a type a program may name in `isinstance()`, a type too, whose call
    makes the lock as `made_by` its caller and whose instances are the original's and the
    program's watched locks, so the program's checks answer as they do untraced."""
    if not isinstance(original, type):
        return factory  # 3.11, 3.12: a factory function, as untraced

    class StandIn(type):
        def __call__(cls) -> Any:
            return made_by(sys._getframe(1))

        def __instancecheck__(cls, instance: Any) -> bool:
            return isinstance(instance, (original, ProgramLock))

        def __subclasscheck__(cls, subclass: type) -> bool:
            return issubclass(subclass, (original, ProgramLock))

    return StandIn(original.__name__, (), {"__module__": original.__module__,
                                           "__qualname__": original.__qualname__,
                                           "__doc__": original.__doc__})


class ThreadWaits:
    def __init__(self, lines: ThreadLines) -> None:
        self.lines = lines
        self.recorder = lines.recorder
        self.is_program = LazyProgramFiles()  # a file name -> is it the program's code?
        self.builders = _BUILDERS | _FUTURES_FILES
        self.names = PrimitiveNames()
        self.local = _RealLocal()  # .waiting: the thread is inside a wait already noted
        self._originals: dict[str, Any] = {}
        self._sleep: Callable[[float], None] | None = None  # time.sleep while installed
        self._undo: list[Callable[[], None]] = []  # what others installed for this watcher

    def install(self) -> None:
        global _watcher
        condition = threading.Condition
        self._originals = {"Lock": threading.Lock, "RLock": threading.RLock,
                           "__init__": condition.__init__, "wait": condition.wait,
                           "sleep": time.sleep, "join": threading.Thread.join}
        new_lock, new_rlock = threading.Lock, threading.RLock
        built, wait, real_sleep = condition.__init__, condition.wait, time.sleep
        thread_join = threading.Thread.join

        def lock_made_by(caller: FrameType) -> Any:
            lock = new_lock()
            watcher = _watcher
            if watcher is None:
                return lock
            made = watcher.guarded(watcher.made_by_program, caller, "Lock")
            return lock if made is None else ProgramLock(lock, made)

        def Lock() -> Any:
            return lock_made_by(sys._getframe(1))

        def RLock() -> Any:
            lock = new_rlock()
            watcher = _watcher
            if watcher is None:
                return lock
            made = watcher.guarded(watcher.made_by_program, sys._getframe(1), "RLock")
            return lock if made is None else ProgramRLock(lock, made)

        def __init__(cond: threading.Condition, lock: Any = None) -> None:
            built(cond, lock)
            watcher = _watcher
            if watcher is not None:
                watcher.guarded(watcher.condition_made, cond, sys._getframe(1))

        def condition_wait(cond: threading.Condition, timeout: float | None = None) -> bool:
            watcher = _watcher
            if watcher is None or getattr(watcher.local, "waiting", False):
                return wait(cond, timeout)
            return bool(watcher.condition_wait(cond, timeout, wait, sys._getframe(1)))

        def sleep(seconds: float) -> None:
            watcher = _watcher
            if watcher is None or getattr(watcher.local, "waiting", False):
                return real_sleep(seconds)
            return watcher.sleep(seconds, real_sleep, sys._getframe(1))

        def join(thread: threading.Thread, timeout: float | None = None) -> None:
            watcher = _watcher
            if watcher is None or getattr(watcher.local, "waiting", False):
                return thread_join(thread, timeout)
            return watcher.join(thread, timeout, thread_join, sys._getframe(1))

        # The stand-ins carry the originals' names: a pool's lane for `to_thread(time.sleep, 1)`
        # is named "sleep", and the program sees what it would untraced.
        for stand_in, original in ((RLock, new_rlock), (__init__, built),
                                   (condition_wait, wait), (sleep, real_sleep),
                                   (join, thread_join)):
            functools.update_wrapper(stand_in, original)
        threading.Lock = _in_place_of(new_lock, Lock, lock_made_by)  # type: ignore[misc,assignment]
        threading.Thread.join = join  # type: ignore[method-assign,assignment]
        threading.RLock = RLock  # type: ignore[assignment]
        condition.__init__ = __init__  # type: ignore[method-assign,assignment]
        condition.wait = condition_wait  # type: ignore[method-assign,assignment]
        time.sleep = self._sleep = sleep  # type: ignore[assignment]
        _watcher = self

    def uninstall(self) -> None:
        global _watcher
        originals = self._originals
        if not originals:
            return
        self._originals = {}
        if _watcher is self:
            _watcher = None
        threading.Lock = originals["Lock"]
        threading.RLock = originals["RLock"]
        threading.Condition.__init__ = originals["__init__"]  # type: ignore[method-assign]
        threading.Condition.wait = originals["wait"]  # type: ignore[method-assign]
        threading.Thread.join = originals["join"]  # type: ignore[method-assign]
        if time.sleep is self._sleep:  # not since replaced by gevent's monkey-patching
            time.sleep = originals["sleep"]
        while self._undo:
            self._undo.pop()()

    def on_uninstall(self, undo: Callable[[], None]) -> None:
        """`undo()` when this watcher is uninstalled (tracer.pool_waits' patch)."""
        self._undo.append(undo)

    # -- where a primitive was made ------------------------------------------------------

    def made_by_program(self, frame: FrameType | None, kind: str
                        ) -> tuple[str, int, str, int] | None:
        """Where the program made a lock `frame` (the caller of threading.Lock) made, or
        None: a library or Loopscope made it."""
        frame = _maker(frame)
        if frame is None or not self.is_program(frame.f_code.co_filename):
            return None
        return self.made(frame, kind)

    def made(self, frame: FrameType, kind: str) -> tuple[str, int, str, int]:
        return self.names.made(frame.f_code.co_filename, frame.f_lineno, kind)

    def condition_made(self, cond: threading.Condition, frame: FrameType | None) -> None:
        """A condition was built: by the program itself, or for a semaphore, event, barrier or
        queue the program makes (the primitive whose constructor called this one's)."""
        owner: Any = cond
        if frame is not None and frame.f_code.co_name == "__init__" and \
                frame.f_code.co_filename in self.builders:
            builder = frame.f_locals.get("self")
            if builder is not None and builder is not cond:
                owner, frame = builder, frame.f_back
                # the constructors of its subclasses (BoundedSemaphore's, a program's Queue's)
                while frame is not None and frame.f_code.co_name == "__init__" and \
                        frame.f_locals.get("self") is owner:
                    frame = frame.f_back
        frame, called = _past_futures(frame)
        # the event `as_completed` waits on is named by the call, not by its class
        kind = called if called in _FUTURES_WAITS else type(owner).__name__
        if called is not None and kind not in _FUTURE_KINDS:
            return  # a pool's own lock or semaphore
        frame = _maker(frame)
        if frame is None or _MADE in owner.__dict__ or \
                not self.is_program(frame.f_code.co_filename):
            return  # not the program's, or a queue's second condition
        owner.__dict__[_MADE] = self.made(frame, kind)

    def name(self, primitive: Any, made: tuple[str, int, str, int]) -> str:
        """`lock (bank.py:12)`: the name the line that made it gave it, else its kind."""
        names = primitive.__dict__ if hasattr(primitive, "__dict__") else None
        name: str | None = names.get(_NAME) if names is not None else getattr(
            primitive, "_name", None)
        if name is None:
            name = self.names.name(made)
            if names is not None:
                names[_NAME] = name
            else:
                primitive._name = name
        return name

    # -- waits ---------------------------------------------------------------------------

    def _waiter(self) -> int | None:
        """Who waits (ThreadLines.who), or None for a wait not recorded: the run is over, or
        the traced thread waits inside a model's lane (that lane's stall)."""
        if self.recorder.closed:
            return None
        lines = self.lines
        if os_thread_ident() == lines._traced and self.recorder.current != NO_LANE:
            return None
        return lines.who()

    def _begin(self, who: int, detail: tuple[Any, ...], sleep: bool = False) -> int:
        started = self.recorder.clock()
        self.lines.add_wait(who, started, detail, sleep)
        if os_thread_ident() == self.lines._traced:
            self.recorder.flush()  # what the other threads did so far, before it waits
        self.local.waiting = True
        return started

    def _end(self, who: int, started: int, let_go: tuple[int, int] | None, name: str,
             frame: FrameType | None, cause: str = "released") -> None:
        """A wait on a primitive is over; `let_go`: who last released it (or set the future
        waited on: `cause` "future"), and when."""
        released = None
        if let_go is not None and let_go[1] >= started:  # a release during this wait
            releaser, at = let_go
            released = (releaser, at, ("cause", cause, "primitive", name))
        self._resumed(who, released, frame)

    def _resumed(self, who: int, released: tuple[int, int, tuple[Any, ...]] | None,
                 frame: FrameType | None) -> None:
        """`who` runs again in `frame`, let go by `released` if known (ThreadLines)."""
        self.local.waiting = False
        self.lines.add_resumed(who, self.recorder.clock(), released, _where(frame))

    def lock_wait(self, lock: Any, timeout: float, frame: FrameType | None) -> bool:
        """The calling thread could not take `lock` at once: it waits for it."""
        noted = self.guarded(self._lock_wait_begins, lock)
        if noted is None:
            return bool(lock._lock.acquire(True, timeout))
        who, started, name = noted
        try:
            return bool(lock._lock.acquire(True, timeout))
        finally:
            lock._waiting.discard(os_thread_ident())
            self.guarded(self._end, who, started, lock._let_go, name, frame)

    def _lock_wait_begins(self, lock: Any) -> tuple[int, int, str] | None:
        who = self._waiter() if not getattr(self.local, "waiting", False) else None
        if who is None:
            return None
        name = self.name(lock, lock._made)
        started = self._begin(who, ("on", f"{lock._made[2]}.acquire", "primitive", name))
        lock._waiting.add(os_thread_ident())
        return who, started, name

    def lets_go(self) -> tuple[int, int] | None:
        """The calling thread releases something another waits on: who it is, and when; None
        for a process pool's manager thread, which sets its futures from the results it
        waits for in `select`: as a lane it would look busy all along."""
        if type(threading.current_thread()).__module__ == _PROCESS_POOL:
            return None
        return self.guarded(lambda: (self.lines.who(), self.recorder.clock()))

    def condition_wait(self, cond: threading.Condition, timeout: float | None, wait: Any,
                       frame: FrameType | None) -> Any:
        """A wait on a condition: the program's own, or that of a primitive it made (the
        innermost frames are threading's or queue's, their `self` the primitive)."""
        if timeout is not None and timeout <= 0:
            return wait(cond, timeout)  # a look, not a wait (Semaphore.acquire(timeout=0))
        noted = self.guarded(self._condition_wait_begins, cond, frame)
        if noted is None:
            return wait(cond, timeout)
        who, started, name, frame, cause = noted
        try:
            return wait(cond, timeout)
        finally:
            self.guarded(self._end, who, started, cond.__dict__.get(_LET_GO), name, frame,
                         cause)

    def _condition_wait_begins(self, cond: threading.Condition, frame: FrameType | None
                               ) -> tuple[int, int, str, FrameType | None, str] | None:
        primitive: Any = cond
        method = "Condition.wait"
        builders = self.builders
        while frame is not None and frame.f_code.co_filename in builders:
            owner = frame.f_locals.get("self")
            if owner is cond:
                method = f"Condition.{frame.f_code.co_name}"
            elif owner is not None and _MADE in getattr(owner, "__dict__", ()):
                primitive = owner
                kind = owner.__dict__[_MADE][2]
                method = kind if kind in _FUTURES_WAITS else \
                    f"{kind}.{frame.f_code.co_name.lstrip('_')}"
            frame = frame.f_back
        made = getattr(primitive, "__dict__", {}).get(_MADE)
        who = self._waiter() if made is not None else None
        if made is None or who is None:
            return None
        if type(cond) is threading.Condition:
            cond.__class__ = NotedCondition  # its notify now says who let waiters go
        name = self.name(primitive, made)
        # a future (or the event `as_completed` waits on) is let go by the thread that set it
        cause = "future" if made[2] in _FUTURE_KINDS else "released"
        return who, self._begin(who, ("on", method, "primitive", name)), name, frame, cause

    def join(self, thread: threading.Thread, timeout: float | None,
             join: Callable[[threading.Thread, float | None], None],
             frame: FrameType | None) -> None:
        """`thread.join()` called by the program's code: the caller waits for that thread to
        end, and is woken by it. A pool's shutdown joins its workers for the program."""
        frame = _past_futures(frame)[0]
        who = self.guarded(self._join_begins, thread, frame)
        if who is None:
            return join(thread, timeout)
        try:
            return join(thread, timeout)
        finally:
            self.guarded(self._joined, who, thread, frame)

    def _join_begins(self, thread: threading.Thread, frame: FrameType | None) -> int | None:
        if frame is None or not self.is_program(frame.f_code.co_filename):
            return None
        if not thread.is_alive() or thread is threading.current_thread():
            return None  # nothing to wait for (or join raises, as untraced)
        who = self._waiter()
        if who is None:
            return None
        self._begin(who, ("on", f"{self.lines.lane_name(thread)}.join()"))
        return who

    def _joined(self, who: int, thread: threading.Thread, frame: FrameType | None) -> None:
        serial = thread_lane(thread)[0]
        # woken by the thread's end, drawn from its lane if it has one (a timeout is not)
        released = (serial, self.recorder.clock(), ("cause", "ended")) if serial >= 0 and \
            not thread.is_alive() else None
        self._resumed(who, released, frame)

    def sleep(self, seconds: float, real_sleep: Callable[[float], None],
              frame: FrameType | None) -> None:
        """`time.sleep` called by the program's code: the thread sleeps, not runs."""
        who = self.guarded(self._sleep_begins, seconds, frame)
        if who is None:
            return real_sleep(seconds)
        try:
            return real_sleep(seconds)
        finally:
            self.guarded(self._resumed, who, None, frame)

    def _sleep_begins(self, seconds: float, frame: FrameType | None) -> int | None:
        if not seconds > 0:  # sleep(0) hands the GIL over rather than sleeping
            return None
        if frame is None or not (self.is_program(frame.f_code.co_filename)
                                 or frame.f_code is RUNS_POOL_WORK):
            return None  # a library's or Loopscope's own sleep
        lines = self.lines
        # The traced thread's sleeps are recorded once it has a lane (it waited on or let go
        # one of the program's locks or queues): a single-threaded script's sleep is not a
        # threads' story.
        if os_thread_ident() == lines._traced and lines._main_serial < 0:
            return None
        who = self._waiter()
        if who is None:
            return None
        delay_s = max(0.0, float(seconds))
        deadline_ns = self.recorder.clock() - self.recorder.origin + int(delay_s * 1e9)
        self._begin(who, ("delay_s", delay_s, "deadline_ns", deadline_ns), sleep=True)
        return who

    # -- when Loopscope itself fails -------------------------------------------------------

    def guarded(self, function: Callable[..., _T], *args: Any) -> _T | None:
        """`function(*args)`, or None if it raised: the program's locks must not fail for
        Loopscope's sake. After a failure no more waits are recorded, and the run says so."""
        try:
            return function(*args)
        except Exception as error:
            global _watcher
            if _watcher is self:
                _watcher = None
                add_note("threads' waits on locks and queues were not recorded after an error "
                         f"in Loopscope ({type(error).__name__}: {error})")
            return None


def _where(frame: FrameType | None) -> tuple[str, int, str] | None:
    """The file, line and function a wait in `frame` resumes at (none for a sleep the program
    handed to a pool: no line of the program's is there)."""
    if frame is None or frame.f_code is RUNS_POOL_WORK:
        return None
    return frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_qualname


def _past_futures(frame: FrameType | None) -> tuple[FrameType | None, str | None]:
    """The first frame past concurrent.futures' own code, and the outermost of its functions
    passed (`as_completed`, `submit`...), if any."""
    called = None
    while frame is not None and frame.f_code.co_filename in _FUTURES_FILES:
        called = frame.f_code.co_name
        frame = frame.f_back
    return frame, called


def _maker(frame: FrameType | None) -> FrameType | None:
    """The frame that made a primitive, past generated code (a dataclass's or attrs'
    `__init__` calling a default factory), which belongs to whoever called it."""
    while frame is not None and frame.f_code.co_filename.startswith("<"):
        frame = frame.f_back
    return frame


class NotedCondition(threading.Condition):
    """A condition some thread has waited on: its notify says who let the waiters go."""

    def notify(self, n: int = 1) -> None:
        watcher = _watcher
        if watcher is not None and self._waiters:  # type: ignore[attr-defined]
            let_go = watcher.lets_go()
            if let_go is not None:
                self.__dict__[_LET_GO] = let_go
        super().notify(n)


class PureLockBase:
    """The pure-Python twin of the C fast paths (tracer/_thread_locks.c): take the real lock
    without blocking first; `_wait` only when that fails, `_letting_go` only while a thread
    waits."""

    __slots__ = ("__weakref__", "_lock", "_waiting")

    def __init__(self, lock: Any) -> None:
        self._lock = lock
        self._waiting: set[int] = set()  # the threads waiting for it (set.add is atomic)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not blocking:
            return bool(self._lock.acquire(False, timeout))
        if self._lock.acquire(False):
            return True
        return self._wait(timeout, sys._getframe(1))

    def __enter__(self) -> bool:
        if self._lock.acquire(False):
            return True
        return self._wait(-1, sys._getframe(1))

    def release(self) -> None:
        if self._waiting:
            self._letting_go()
        self._lock.release()

    def __exit__(self, *exc_info: object) -> None:
        if self._waiting:
            self._letting_go()
        self._lock.release()

    def _wait(self, timeout: float, frame: FrameType | None) -> bool:
        raise NotImplementedError

    def _letting_go(self) -> None:
        raise NotImplementedError


if TYPE_CHECKING:
    from loopscope.tracer._thread_locks import LockBase
else:
    _locks = c_extension("_thread_locks")
    LockBase = _locks.LockBase if _locks is not None else PureLockBase


def lock_types(base: type) -> tuple[type, type]:
    """The program's Lock and RLock on `base`: the C fast paths or their pure twin."""

    class ProgramLock(base):  # type: ignore[valid-type,misc]
        """A lock the program made, while the run lasts: the real one, taken without blocking
        first, so only a wait costs more."""

        __slots__ = ("_let_go", "_made", "_name")

        def __init__(self, lock: Any, made: tuple[str, int, str, int]) -> None:
            super().__init__(lock)
            self._made = made
            self._let_go: tuple[int, int] | None = None
            self._name: str | None = None

        def _wait(self, timeout: float, frame: FrameType | None) -> bool:
            watcher = _watcher
            if watcher is None:
                return bool(self._lock.acquire(True, timeout))
            return watcher.lock_wait(self, timeout, frame)

        def _letting_go(self) -> None:
            watcher = _watcher
            if watcher is not None:
                self._let_go = watcher.lets_go() or self._let_go

        def locked(self) -> bool:
            return bool(self._lock.locked())

        def _at_fork_reinit(self) -> None:
            self._lock._at_fork_reinit()

        def __repr__(self) -> str:
            return repr(self._lock)

    class ProgramRLock(ProgramLock):
        """A reentrant lock the program made; `threading.Condition` uses its owner-aware
        parts."""

        __slots__ = ()

        def _is_owned(self) -> bool:
            return bool(self._lock._is_owned())

        def _release_save(self) -> Any:
            if self._waiting:
                self._letting_go()
            return self._lock._release_save()

        def _acquire_restore(self, state: Any) -> None:
            self._lock._acquire_restore(state)

    return ProgramLock, ProgramRLock


ProgramLock, ProgramRLock = lock_types(LockBase)
