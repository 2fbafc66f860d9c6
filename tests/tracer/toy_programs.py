"""Behaviours for the toy model: each function is a `main(recorder, lane)`.

Run one as Target("scenario", name, (), "tests.tracer.toy_model",
"tests.tracer.toy_programs:NAME"). Each behaviour that ends badly first records and flushes
MARKED_EVENTS marks, so tests can check that what was sent before the end is kept.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import time

from loopscope.tracer.events import Code, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.stream import FrameWriter

MARKED_EVENTS = 50
# Far more than a pipe buffer (64 KiB on Linux, at most 1 MiB): 25 bytes an event.
FLOOD_EVENTS = 200_000
FLOOD_BATCH = 1000
GARBAGE_SEED = 1234


def main(recorder: Recorder, lane: int) -> None:
    print("hello from the toy")
    for _ in range(3):
        recorder.state(lane, Code.READY)
        recorder.state(lane, Code.RUNNING)


def _marks(recorder: Recorder, lane: int) -> None:
    for index in range(MARKED_EVENTS):
        recorder.record(lane, Code.MARK, detail=recorder.detail(("text", f"mark {index}")))
    recorder.flush()


def _block_forever_in_c() -> None:
    # A read on a pipe nobody writes to: the thread sits in the kernel, not in Python.
    read_end, _write_end = os.pipe()
    os.read(read_end, 1)


def flood(recorder: Recorder, lane: int) -> None:
    """Sends FLOOD_EVENTS events, the MARK's detail counting up, in batches of FLOOD_BATCH."""
    for start in range(0, FLOOD_EVENTS, FLOOD_BATCH):
        for index in range(start, start + FLOOD_BATCH):
            recorder.record(lane, Code.MARK, other=index)
        recorder.flush()


def prints(recorder: Recorder, lane: int) -> None:
    """Prints on two lanes; a line written in pieces counts once, when it ends."""
    other = recorder.spawn("other", LaneKind.TASK, parent=lane)
    print("first line from toy")
    recorder.current = other
    sys.stdout.write("second ")
    sys.stdout.write("line from other\nthird line from other\n")
    recorder.current = lane
    print("last line from toy")
    sys.stdout.write("no newline at the end")


def long_line(recorder: Recorder, lane: int) -> None:
    """A line longer than any stream reader's default limit."""
    print("x" * 300_000)
    print("after the long line")


def sleeps(recorder: Recorder, lane: int) -> None:
    """Sends its marks, then sleeps far longer than any test waits (a hang)."""
    _marks(recorder, lane)
    time.sleep(600)


def ignores_stop(recorder: Recorder, lane: int) -> None:
    """Ignores SIGTERM, blocks it too, and sits in a blocking C call."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    with contextlib.suppress(BaseException):  # a stop raised as the marks go out
        _marks(recorder, lane)
    _block_forever_in_c()


def swallows_stop(recorder: Recorder, lane: int) -> None:
    """Catches every exception, the stop included, and carries on sleeping."""
    marked = False
    while True:
        try:
            if not marked:
                marked = True
                _marks(recorder, lane)
            time.sleep(600)
        except BaseException:  # catching the stop is the point of this behaviour
            print("caught and ignored")


def records_until_stopped(recorder: Recorder, lane: int) -> None:
    """Records as fast as it can, forever: a stop lands while the recorder is busy."""
    _marks(recorder, lane)
    detail = recorder.detail(("text", "busy"))
    while True:
        recorder.record(lane, Code.MARK, detail=detail)


def exits_abruptly(recorder: Recorder, lane: int) -> None:
    _marks(recorder, lane)
    sys.stderr.write("about to leave without a word\n")
    sys.stderr.flush()
    os._exit(7)


def segfaults(recorder: Recorder, lane: int) -> None:
    _marks(recorder, lane)
    os.kill(os.getpid(), signal.SIGSEGV)


def raises(recorder: Recorder, lane: int) -> None:
    _marks(recorder, lane)
    raise ValueError("the toy failed\non two lines")


def exits_nonzero(recorder: Recorder, lane: int) -> None:
    _marks(recorder, lane)
    sys.exit(5)


def _event_pipe(recorder: Recorder) -> FrameWriter:
    """The child's frame writer, behind the stall sampler's wrapper (tracer.sampler)."""
    sink = recorder.sink
    writer = getattr(sink, "inner", sink)
    assert isinstance(writer, FrameWriter)
    return writer


def writes_garbage(recorder: Recorder, lane: int) -> None:
    """Writes random bytes straight onto the event pipe, between two proper batches."""
    _marks(recorder, lane)
    writer = _event_pipe(recorder)
    writer.out.write(random.Random(GARBAGE_SEED).randbytes(4096))
    writer.out.flush()
    _marks(recorder, lane)
    time.sleep(600)  # the parent kills a child that broke the stream


def truncates_a_frame(recorder: Recorder, lane: int) -> None:
    """Writes half a frame and leaves: the stream ends inside it."""
    _marks(recorder, lane)
    writer = _event_pipe(recorder)
    writer.out.write(b"\x40\x00\x00\x00\x02partial")
    writer.out.flush()
    os._exit(0)


def skips_a_sequence_number(recorder: Recorder, lane: int) -> None:
    """Loses one event on the way: the next batch starts one sequence number too late."""
    _marks(recorder, lane)
    recorder.flush()
    recorder._next_seq += 1
    _marks(recorder, lane)
    time.sleep(600)  # the parent kills a child that broke the stream


def starts_a_server_child(recorder: Recorder, lane: int) -> None:
    """Starts a grandchild that would outlive the run if nobody cleaned up, then returns."""
    import subprocess

    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        stdin=subprocess.DEVNULL,
    )
    print(f"grandchild {grandchild.pid}")
