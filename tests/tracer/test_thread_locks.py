"""The program's locks while traced (tracer.thread_waits): the C fast paths
(tracer/_thread_locks.c) against their pure-Python twin, with real threads. A lock nobody
waits for never reaches Python; a take that fails calls `_wait` with the caller's frame; a
release calls `_letting_go` only while a thread waits."""

from __future__ import annotations

import gc
import sys
import threading
import time
import weakref
from types import FrameType
from typing import Any

import pytest

from loopscope.tracer.recorder import c_extension
from loopscope.tracer.thread_waits import PureLockBase, lock_types

_C = c_extension("_thread_locks")
BASES = [pytest.param(PureLockBase, id="pure"),
         pytest.param(_C.LockBase if _C is not None else None, id="C",
                      marks=pytest.mark.skipif(_C is None, reason="_thread_locks not built"))]
MADE = ("prog.py", 3, "Lock", 1)


def _noting(base: type, reentrant: bool = False) -> Any:
    """A program lock on `base` that notes its slow paths instead of recording them."""
    plain, rlock = lock_types(base)

    class Noting(rlock if reentrant else plain):  # type: ignore[misc,valid-type]
        __slots__ = ("calls",)

        def _wait(self, timeout: float, frame: FrameType | None) -> bool:
            self.calls.append(("wait", timeout, frame.f_code.co_name if frame else None))
            return bool(self._lock.acquire(True, timeout))

        def _letting_go(self) -> None:
            self.calls.append(("letting go",))

    lock = Noting(threading.RLock() if reentrant else threading.Lock(), MADE)
    lock.calls = []
    return lock


def _hold_in_thread(lock: Any, seconds: float) -> threading.Thread:
    taken = threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            time.sleep(seconds)

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait()
    return thread


@pytest.mark.parametrize("base", BASES)
def test_an_uncontended_lock_never_reaches_the_slow_paths(base: type) -> None:
    lock = _noting(base)
    with lock:
        assert lock.locked()
    assert not lock.locked()
    assert lock.acquire() and lock.acquire(False) is False
    lock.release()
    assert lock.calls == []
    assert weakref.ref(lock)() is lock


@pytest.mark.parametrize("base", BASES)
def test_a_take_that_fails_waits_with_the_callers_frame(base: type) -> None:
    lock = _noting(base)
    holder = _hold_in_thread(lock, 0.2)
    assert lock.acquire(False) is False  # not blocking: no wait
    assert lock.acquire(timeout=0.01) is False

    def comes_for_it() -> None:
        with lock:
            pass

    comes_for_it()
    holder.join()
    assert lock.calls == [("wait", 0.01, "test_a_take_that_fails_waits_with_the_callers_frame"),
                          ("wait", -1, "comes_for_it")]
    assert not lock.locked()


@pytest.mark.parametrize("base", BASES)
def test_a_release_says_who_let_go_only_while_a_thread_waits(base: type) -> None:
    lock = _noting(base)
    with lock:
        pass
    lock._waiting.add(7)  # as a waiting thread does
    with lock:
        pass
    lock.acquire()
    lock.release()
    lock._waiting.discard(7)
    with lock:
        pass
    assert lock.calls == [("letting go",), ("letting go",)]


@pytest.mark.parametrize("base", BASES)
def test_a_reentrant_lock_works_under_a_condition_between_threads(base: type) -> None:
    rlock = _noting(base, reentrant=True)
    ready = threading.Condition(rlock)
    seen: list[str] = []

    def signal() -> None:
        time.sleep(0.02)
        with rlock, rlock:  # reentrant: taken twice, no wait
            seen.append("ready")
            ready.notify_all()

    thread = threading.Thread(target=signal)
    thread.start()
    with ready:
        assert ready.wait_for(lambda: seen, timeout=10)
    thread.join()
    assert seen == ["ready"]
    assert rlock._is_owned() is False


@pytest.mark.parametrize("base", BASES)
def test_a_lock_is_freed_with_its_references(base: type) -> None:
    lock = _noting(base)
    inner = lock._lock
    before = sys.getrefcount(inner)
    gone = weakref.ref(lock)
    del lock
    gc.collect()
    assert gone() is None
    assert sys.getrefcount(inner) < before


class _Sink:
    def write_batch(self, batch: Any) -> None:
        pass


def test_a_failure_in_loopscope_stops_the_recording_not_the_program() -> None:
    from loopscope.tracer import thread_waits
    from loopscope.tracer.notes import take_notes
    from loopscope.tracer.recorder import Recorder
    from loopscope.tracer.thread_lines import ThreadLines

    take_notes()
    original_lock = threading.Lock
    lines = ThreadLines(Recorder(_Sink()), lambda lane, text, extra: None)
    watcher = thread_waits.ThreadWaits(lines)

    def broken(primitive: Any, made: Any) -> str:
        raise ValueError("no name")

    watcher.name = broken  # type: ignore[method-assign]
    watcher.install()
    try:
        lock = threading.Lock()  # made by this file: the program's
        assert isinstance(lock, thread_waits.ProgramLock)
        holder = _hold_in_thread(lock, 0.05)
        with lock:  # waits: the wait's bookkeeping fails
            pass
        holder.join()
        assert thread_waits._watcher is None  # nothing more is recorded ...
        with lock:  # ... and the lock goes on working
            pass
    finally:
        watcher.uninstall()
    assert threading.Lock is original_lock  # put back
    assert any("ValueError: no name" in note for note in take_notes())
