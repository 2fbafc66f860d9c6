"""The stall sampler: reads the traced thread's stack while one of its steps runs long.

A watchdog on an OS thread of its own looks at the recorder every `check_s` (20 ms): if an
event was recorded since its last look, it goes back to sleep; nothing else happens, and the
traced thread itself does no extra work at all. When nothing was recorded for a whole
interval and the thread is not waiting in a poll (every model records POLL and flushes just
before it blocks), a step has run past the interval: the watchdog then reads the thread's
frame with `sys._current_frames()` every `interval_s` (5 ms) until the next event shows that
the step ended. Each sample is the stack with the tracer's own frames left out.

Samples travel beside the events (tracer.samples): the sampler wraps the recorder's sink and
hands what it collected to the sink's `write_samples` right after each batch, from the traced
thread, so the pipe keeps one writer. A sample taken while the thread is inside the recorder
or the step gate (back-pressure, a paused run) is not a stall and is dropped.

The thread, the sleep and the thread id are taken at import, before gevent can patch them:
the watchdog must stay a real thread whatever the program does.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from collections import deque
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from loopscope.tracer.events import NO_LANE, Batch, Code, Source
from loopscope.tracer.recorder import BatchSink, Recorder

if TYPE_CHECKING:
    # (the type only: the child's start-up does not import the samples' reading side)
    from loopscope.tracer.samples import Stack

_real_sleep = time.sleep
_real_get_ident = _thread.get_ident
_start_real_thread = _thread.start_new_thread
_current_frames = sys._current_frames

CHECK_S = 0.02
INTERVAL_S = 0.005
MAX_DEPTH = 48
SAMPLES_BEFORE_BACKOFF = 1000
MAX_INTERVAL_S = 0.5

_TRACER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# A frame of these files on the stack means the thread is recording, writing to the pipe or
# held by the step gate: not running the program.
_MACHINERY = frozenset(
    _TRACER_DIR + name for name in ("recorder.py", "stream.py", "stepping.py", "sampler.py")
)
_POLL = int(Code.POLL)


class SampleSink(Protocol):
    def write_samples(self, payload: dict[str, Any]) -> None: ...


class _ForwardingSink:
    """The recorder's sink, wrapped: notes each batch's last event and sends samples first."""

    def __init__(self, inner: BatchSink, sampler: StallSampler) -> None:
        self.inner = inner
        self.sampler = sampler
        self.last_code = -1

    def write_batch(self, batch: Batch) -> None:
        codes = batch.columns[2]
        if len(codes):
            self.last_code = codes[-1]
        self.inner.write_batch(batch)
        # After the batch, never before: the child may raise a stop right after any whole
        # frame, and a stop between a samples frame and its batch would lose the batch.
        self.sampler.send_samples()

    def write_held(self, view: dict[str, Any]) -> None:
        """The step gate's held view (tracer.held_frame), passed on to a sink that takes it."""
        write_held = getattr(self.inner, "write_held", None)
        if write_held is not None:
            write_held(view)


class StallSampler:
    """Install with `start()` from the traced thread; `stop()` sends what is left."""

    def __init__(self, recorder: Recorder, check_s: float = CHECK_S,
                 interval_s: float = INTERVAL_S) -> None:
        self.recorder = recorder
        self.check_s = check_s
        self.interval_s = interval_s
        self._forwarder = _ForwardingSink(recorder.sink, self)
        self._thread_id = 0
        self._running = False
        self._pending: deque[tuple[int, int, Stack]] = deque()
        self._stack_ids: dict[Stack, int] = {}
        self._stacks_sent = 0
        self.samples_taken = 0

    def start(self) -> None:
        self._thread_id = _real_get_ident()
        self.recorder.sink = self._forwarder
        self._running = True
        _start_real_thread(self._watch, ())

    def stop(self) -> None:
        """Stops watching (the watchdog exits at its next wake) and sends the last samples."""
        self._running = False
        if self.recorder.sink is self._forwarder:
            self.recorder.sink = self._forwarder.inner
        self.send_samples()

    # -- the watchdog thread ------------------------------------------------------------

    def _watch(self) -> None:
        recorder = self.recorder
        seen = -1
        while self._running:
            _real_sleep(self.check_s)
            count = recorder.event_count
            if count != seen:
                seen = count
                continue
            if not self._running or recorder.closed or self._waiting_in_poll():
                continue
            interval, taken = self.interval_s, 0
            while self._running and recorder.event_count == seen:
                self._sample()
                taken += 1
                if taken % SAMPLES_BEFORE_BACKOFF == 0:
                    # a step that never ends (a hung loop) must not fill the memory: every
                    # so many samples, sample half as often, down to MAX_INTERVAL_S
                    interval = min(interval * 2, MAX_INTERVAL_S)
                _real_sleep(interval)

    def _waiting_in_poll(self) -> bool:
        return self.recorder._pending_count() == 0 and self._forwarder.last_code == _POLL

    def _sample(self) -> None:
        lane = self.recorder.current
        if lane == NO_LANE:  # before the first lane, or between them: no step to blame
            return
        stack = _program_stack(_current_frames().get(self._thread_id))
        if not stack:
            return
        now = self.recorder.clock() - self.recorder.origin
        self._pending.append((now, lane, stack))
        self.samples_taken += 1

    # -- the traced thread ---------------------------------------------------------------

    def send_samples(self) -> None:
        if not self._pending:
            return
        rows: list[list[int]] = []
        new_stacks: list[Stack] = []
        ids = self._stack_ids
        while self._pending:
            ts, lane, stack = self._pending.popleft()
            stack_id = ids.get(stack)
            if stack_id is None:
                stack_id = ids[stack] = len(ids)
                new_stacks.append(stack)
            rows.append([ts, lane, stack_id])
        payload = {
            "first_stack": self._stacks_sent,
            "stacks": [[list(frame) for frame in stack] for stack in new_stacks],
            "samples": rows,
        }
        self._stacks_sent += len(new_stacks)
        write = getattr(self._forwarder.inner, "write_samples", None)
        if write is not None:
            write(payload)


def _program_stack(frame: FrameType | None) -> Stack:
    """The stack from the innermost frame out, without the tracer's own frames; empty when
    the thread is inside the recording machinery."""
    stack: list[Source] = []
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename
        if filename in _MACHINERY:
            return ()
        if not filename.startswith(_TRACER_DIR) and len(stack) < MAX_DEPTH:
            stack.append((filename, frame.f_lineno or 0, code.co_qualname))
        frame = frame.f_back
    return tuple(stack)


def start_stall_sampler(recorder: Recorder) -> StallSampler | None:
    """Starts sampling long steps of the calling thread, unless LOOPSCOPE_STALL_SAMPLER=0."""
    if os.environ.get("LOOPSCOPE_STALL_SAMPLER", "") == "0":
        return None
    sampler = StallSampler(recorder)
    sampler.start()
    return sampler
