"""Lines printed by threads other than the traced one, each thread on a lane of its own.

The recorder has one writer (tracer.threads), so a line another thread prints waits in a
queue with the clock reading of its print; the traced thread records it at its next flush
(which the flush timer brings within its interval while the program records anything, and
every model makes before it blocks, as does `Thread.join` here), on a lane of kind "thread"
named after the thread's target function (or its name), spawned with its first line. The
line keeps the time it was printed: it is merged by time into the events not sent yet, and
only a line older than the last batch sent (timestamps never go back) is moved up to it.
A thread's lane ends when the thread does (a thread-local marker is released as the thread
exits) or, for a thread still running, at the end of the run.

A thread's waits on the program's locks, queues and events (tracer.thread_waits) go through
the same queue and the same lanes: the wait, who let it go, and the line it resumed at.
"""

from __future__ import annotations

import _thread
import itertools
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from loopscope.tracer.events import NO_LANE, NO_SOURCE, Code, LaneKind
from loopscope.tracer.models._program_files import LazyProgramFiles
from loopscope.tracer.recorder import Recorder, _buffer_clock
from loopscope.tracer.threads import os_thread_ident

# taken before gevent can patch them: a real thread's own storage, a real thread's join
_RealLocal = _thread._local
_LINE, _END, _WORK_LINE = 0, 1, 2
# a thread's wait (extra: the BLOCKED detail), its release (extra: (releaser, cause detail)),
# and its running again (extra: the file, line and function it waited at)
_WAIT, _LET_GO, _RESUMED = 3, 4, 5
_SEEN = 6  # a thread's first line, wait or release: its lane starts then
_SLEEP = 7  # a thread's time.sleep (extra: the SLEEPING detail); it ends with a _RESUMED
_MAIN_LINE = 8  # a line the main thread printed before it had a lane (extra: its source)
# the main thread's lines held until it has a lane (a threaded script's first prints), at most
MAIN_LINES_HELD = 200
_LANE_OF_THREAD = "_loopscope_lane"  # on a Thread with a lane: (its serial, its lane's name)
_NAME_OF_THREAD = "_loopscope_lane_name"  # on a Thread: its lane's name, once decided
# The ThreadLines of the run, once installed: thread pools put their work's lines on its lane.
_installed: ThreadLines | None = None


def on_lane(lane: int, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function`, which a pool runs in a worker thread as the work of lane `lane`: what it
    prints there goes on that lane rather than on a lane of the worker thread."""
    lines = _installed
    if lines is None:
        return function
    return _OnLane(lines._local, lane, function)


class _OnLane:
    """A pool's work run as the work of its lane (see on_lane)."""

    __slots__ = ("function", "lane", "local")

    def __init__(self, local: Any, lane: int, function: Callable[..., Any]) -> None:
        self.local = local
        self.lane = lane
        self.function = function

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        local = self.local
        local.lane = self.lane
        try:
            return self.function(*args, **kwargs)
        finally:
            local.lane = NO_LANE


# The frame that calls a pool's work: a `time.sleep` called from it was handed to the pool by
# the program itself (`asyncio.to_thread(time.sleep, 1)`), a sleep of the program's own.
RUNS_POOL_WORK = _OnLane.__call__.__code__


def record_waiting_lines() -> None:
    """In the traced thread, before it ends a pool work's lane: what the work printed is
    recorded first (it was printed before the work was done)."""
    if _installed is not None:
        _installed.drain()


class _ThreadEnd:
    """Kept in a real thread-local: released, and so deleted, when its thread exits."""

    def __init__(self, lines: ThreadLines, serial: int) -> None:
        self.lines = lines
        self.serial = serial

    def __del__(self) -> None:
        self.lines.queue.append((_END, self.serial, self.lines.recorder.clock(), "", ()))


class ThreadLines:
    def __init__(self, recorder: Recorder,
                 record_line: Callable[[int, str, tuple[str, ...], int], None]) -> None:
        self.recorder = recorder
        self.record_line = record_line
        # (what, who: a thread's serial number or a lane (see `who`), clock reading, text,
        # detail extra), appended by any thread
        self.queue: deque[tuple[int, int, int, str, tuple[Any, ...]]] = deque()
        self.lanes: dict[int, int] = {}
        self._ended: dict[int, int] = {}  # serial -> lane, of threads that ended
        self._names: dict[int, str] = {}
        self._serials = itertools.count()
        # thread name -> the numbers its threads' lanes take (lane_name): the second is
        # "teller #2" here, as the recorder would number it, so a join names the right lane
        self._name_counts: dict[str, Iterator[int]] = {}
        self._local = _RealLocal()
        self._flushed_at = recorder.clock()
        self._traced = os_thread_ident()
        # the clock the recorder's buffer reads, given back after a line is back-dated
        self._buffer_clock = _buffer_clock(recorder.clock)
        self._draining = False
        self._main_serial = -1  # the traced thread's serial, if it has one
        # (clock reading, text, extra, source) of lines the traced thread printed while no
        # lane of its own or a model's ran (see hold_main_line)
        self._main_lines: list[tuple[int, str, tuple[str, ...], int]] = []
        self._flush: Any = None
        self._join: Any = None

    # -- from any thread ----------------------------------------------------------------------

    def add(self, text: str, extra: tuple[str, ...]) -> None:
        """A line printed by a thread that is not the traced one."""
        work_lane = getattr(self._local, "lane", NO_LANE)
        if work_lane != NO_LANE:
            self.queue.append((_WORK_LINE, work_lane, self.recorder.clock(), text, extra))
            return
        self.queue.append((_LINE, self._serial(), self.recorder.clock(), text, extra))

    def _serial(self) -> int:
        """The calling thread's serial number, given it on its first line or wait."""
        marker = getattr(self._local, "end", None)
        if marker is None:
            # numbered here, not by OS thread id: an ended thread's id is given to the next
            marker = self._local.end = _ThreadEnd(self, next(self._serials))
            if os_thread_ident() == self._traced:  # waits while no model's lane runs there
                self._names[marker.serial] = "main thread"
                self._main_serial = marker.serial
                if self._main_lines:  # its lane starts at the first line it printed
                    self._main_lines_to_queue(marker.serial)
            else:
                thread = threading.current_thread()
                name = self._names[marker.serial] = self.lane_name(thread)
                thread.__dict__[_LANE_OF_THREAD] = (marker.serial, name)  # for its joiners
            # the lane starts now, before the thread can end: a thread that only let another
            # go is named in that one's wake, which may be queued after its end
            self.queue.append((_SEEN, marker.serial, self.recorder.clock(), "", ()))
        return int(marker.serial)

    def hold_main_line(self, text: str, extra: tuple[str, ...], source: int) -> None:
        """A line the traced thread printed while it had no lane and no model's lane ran. A
        threaded script's main thread gets its lane at its first wait; what it printed before
        then goes on that lane, at the time it was printed. In the traced thread."""
        if len(self._main_lines) < MAIN_LINES_HELD:
            self._main_lines.append((self.recorder.clock(), text, extra, source))

    def drop_main_lines(self) -> None:
        """A model's lane ran on the traced thread: what it printed before belongs to no
        threads' story (a script's set-up before `asyncio.run`)."""
        self._main_lines.clear()

    def _main_lines_to_queue(self, serial: int) -> None:
        held, self._main_lines = self._main_lines, []
        self.queue.append((_SEEN, serial, held[0][0], "", ()))
        for at, text, extra, source in held:
            self.queue.append((_MAIN_LINE, serial, at, text, (extra, source)))

    def lane_name(self, thread: threading.Thread) -> str:
        """The name of `thread`'s lane, decided when first asked: at its first line or wait,
        or by a join of it before either. A second thread of one name is "teller #2"."""
        name: str | None = thread.__dict__.get(_NAME_OF_THREAD)
        if name is None:
            base = thread_name(thread)
            number = next(self._name_counts.setdefault(base, itertools.count(1)))
            # setdefault: of two threads asking at once, both get the first one's answer
            name = thread.__dict__.setdefault(
                _NAME_OF_THREAD, base if number == 1 else f"{base} #{number}")
        return name

    def main_lane(self) -> int:
        """The traced thread's own lane (it waited on or let go a lock, or joined a thread), or
        NO_LANE. In the traced thread, after a drain (the lane is spawned when its first wait
        is recorded)."""
        return self.lanes.get(self._main_serial, NO_LANE)

    def who(self) -> int:
        """Whose lane the calling thread's wait or release goes on: a pool work's lane or the
        traced thread's current lane, as -2 - lane, else the thread's own (its serial)."""
        work_lane: int = getattr(self._local, "lane", NO_LANE)
        if work_lane != NO_LANE:
            return -2 - work_lane
        if os_thread_ident() == self._traced and self.recorder.current != NO_LANE:
            return -2 - self.recorder.current
        return self._serial()

    def add_wait(self, who: int, at: int, detail: tuple[Any, ...], sleep: bool = False) -> None:
        """`who` (see `who`) started waiting at `at`; `detail` says on what (or, for a
        sleep, for how long)."""
        self.queue.append((_SLEEP if sleep else _WAIT, who, at, "", detail))

    def add_resumed(self, who: int, at: int, released: tuple[int, int, tuple[Any, ...]] | None,
                    where: tuple[str, int, str] | None) -> None:
        """`who`'s wait ended at `at`, let go by `released` (the releaser's `who`, the time it
        released, the wake's cause) if known, back in the program at `where`."""
        if released is not None:
            releaser, released_at, cause = released
            self.queue.append((_LET_GO, who, released_at, "", (releaser, cause)))
        self.queue.append((_RESUMED, who, at, "", where or ()))

    # -- in the traced thread -----------------------------------------------------------------

    def install(self) -> None:
        recorder = self.recorder
        flush = self._flush = recorder.flush

        def flush_with_lines() -> None:
            self.drain()
            flush()
            self._flushed_at = recorder.clock()

        # The recorder calls its own flush (batch full, flush timer, a model before it polls):
        # an instance attribute puts the queued lines in before each batch goes out.
        recorder.flush = flush_with_lines  # type: ignore[method-assign]
        global _installed
        _installed = self
        join = self._join = threading.Thread.join

        def joined(thread: threading.Thread, timeout: float | None = None) -> None:
            if os_thread_ident() == self._traced and not recorder.closed:
                flush_with_lines()  # so the lines printed while it waits keep their times
            join(thread, timeout)

        threading.Thread.join = joined  # type: ignore[method-assign,assignment]

    def uninstall(self) -> None:
        global _installed
        _installed = None
        if self._join is not None:
            threading.Thread.join = self._join  # type: ignore[method-assign]
            self._join = None

    def drain(self) -> None:
        """Records the queued lines, each at the time it was printed: merged by time with the
        events not yet sent (so a line printed while the traced thread waited comes before
        what it did next), and never before the last batch that went out."""
        queue = self.queue
        if not queue or self._draining or os_thread_ident() != self._traced:
            return
        self._draining = True
        recorder = self.recorder
        try:
            # A held step moves the recorder's origin: nothing is back-dated while stepping.
            floor = self._flushed_at if recorder.gate is None else recorder.clock()
            lines = []
            while queue:
                what, serial, at, text, extra = queue.popleft()
                lines.append((max(at, floor), serial, what, text, extra))
            pending = list(zip(*recorder._take(0), strict=True)) if (
                recorder._pending_count() and recorder.gate is None) else []
            # Lanes are numbered in the order their SPAWNs are recorded, and a pending lane
            # has its number already: a line that spawns its thread's lane must not come
            # before a pending SPAWN, or the newer lane's SPAWN (and number) would precede
            # the older's. Such a line goes at that SPAWN's time.
            spawned_at = max((event[0] for event in pending if event[2] == Code.SPAWN),
                             default=None)
            if spawned_at is not None:
                lines = [(max(line[0], spawned_at), *line[1:]) for line in lines]
            lines.sort(key=lambda line: line[0])
            at_pending = 0
            for line in lines:
                while at_pending < len(pending) and pending[at_pending][0] <= line[0]:
                    self._again(pending[at_pending])
                    at_pending += 1
                self._at(*line)
            for event in pending[at_pending:]:
                self._again(event)
        finally:
            recorder._set_clock(self._buffer_clock)
            self._draining = False

    def _again(self, event: tuple[int, ...]) -> None:
        """Records again an event taken out of the buffer, at its own time."""
        at, lane, code, other, detail, source = event
        self.recorder._set_clock(lambda: at)
        self.recorder.record(lane, code, other, detail, source)

    def finish(self) -> None:
        """The run is over: the last lines, and the lanes of threads still running end."""
        self.drain()
        recorder = self.recorder
        for serial, lane in self.lanes.items():
            if serial == self._main_serial:  # the program's main thread ends with the run
                recorder.end(lane)
            else:
                recorder.record(lane, Code.END, NO_LANE,
                                recorder.detail(("result", "still running")))
        self.lanes.clear()
        if self._flush is not None:
            recorder.flush = self._flush  # type: ignore[method-assign]

    def _at(self, at: int, serial: int, what: int, text: str, extra: tuple[Any, ...]) -> None:
        recorder = self.recorder
        # the events below carry the clock reading of the print, not of this moment
        recorder._set_clock(lambda: at)
        if what == _END:
            if serial in self.lanes:
                lane = self._ended[serial] = self.lanes.pop(serial)
                recorder.end(lane)
            self._names.pop(serial, None)
            return
        if what == _SEEN:
            self._lane(serial)
            return
        # a pool's work: the line goes on the work's own lane
        lane = serial if what == _WORK_LINE else self._lane(serial)
        if what == _MAIN_LINE:
            line_extra, source = extra
            self.record_line(lane, text, line_extra, source)
            return
        if what >= _WAIT:
            self._waited(lane, what, extra)
            return
        self.record_line(lane, text, extra, NO_SOURCE)

    def _lane(self, who: int) -> int:
        """The lane of `who` (see `who`), spawned for a thread on its first line or wait."""
        if who <= -2:
            return -2 - who
        lane = self.lanes.get(who, NO_LANE)
        if lane == NO_LANE and who in self._ended:
            return self._ended[who]  # a wake queued after its thread ended
        if lane == NO_LANE:
            recorder = self.recorder
            lane = self.lanes[who] = recorder.spawn(self._names.get(who, "thread"),
                                                    LaneKind.THREAD)
            recorder.state(lane, Code.RUNNING)
        return lane

    def _waited(self, lane: int, what: int, extra: tuple[Any, ...]) -> None:
        recorder = self.recorder
        if what == _WAIT:
            recorder.state(lane, Code.BLOCKED, extra)
        elif what == _SLEEP:
            recorder.state(lane, Code.SLEEPING, extra)
        elif what == _LET_GO:
            releaser, cause = extra
            releaser_lane = self._lane(releaser)
            if releaser_lane != lane:
                recorder.wake(lane, releaser_lane, cause)
        else:
            source = recorder.source(*extra) if extra else NO_SOURCE
            recorder.state(lane, Code.RUNNING, source=source)


def thread_lane(thread: threading.Thread) -> tuple[int, str]:
    """The serial number and lane name of `thread`: -1 for a thread that has no lane (yet)."""
    found: tuple[int, str] | None = thread.__dict__.get(_LANE_OF_THREAD)
    return found if found is not None else (-1, thread_name(thread))


def thread_name(thread: threading.Thread) -> str:
    """A thread's lane name: the name the program gave it (`Thread(name="teller-1")`), else its
    target's when the program wrote the target (`teller`), else its class's when it is a kind
    of thread (`class Downloader(Thread)`, a `Timer`, a process pool's
    `_ExecutorManagerThread`), else the thread's own (a pool's `ThreadPoolExecutor-0_1`, not
    the pool's `_worker`)."""
    if not _DEFAULT_NAME.match(thread.name):
        return thread.name
    target: Any = getattr(thread, "_target", None)
    code = getattr(target, "__code__", None)
    if code is not None and _is_program(code.co_filename):
        return str(target.__name__)
    kind = type(thread)
    if kind is not threading.Thread:
        known = _LIBRARY_THREAD_KINDS.get(f"{kind.__module__}.{kind.__qualname__}")
        return known or kind.__name__.lstrip("_") or thread.name
    return thread.name


# library thread classes whose own names say nothing to the program's author, by what the
# author wrote instead
_LIBRARY_THREAD_KINDS = {"multiprocessing.dummy.DummyProcess": "ThreadPool worker"}


# what threading names a thread nobody named: "Thread-3", or "Thread-3 (worker)"
_DEFAULT_NAME = re.compile(r"Thread-\d+(?: \(.*\))?\Z")


_is_program = LazyProgramFiles()
