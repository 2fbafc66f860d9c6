"""The event stream codec: what goes in comes out, and anything else is refused at once."""

from __future__ import annotations

import contextlib
import io
import random
import struct
from array import array

import pytest

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.stream import (
    BATCH,
    BATCH_HEADER,
    END,
    HEADER,
    HELLO,
    FrameDecoder,
    FrameWriter,
    StreamError,
    encode_batch,
    encode_end,
    encode_hello,
)
from loopscope.tracer.trace import SequenceGapError, Trace
from loopscope.tracer.values import encode_values

HELLO_FRAME = encode_hello({"pid": 1, "model": "toy", "target": "t", "python": "3.11"})


def record_some(recorder: Recorder) -> None:
    """A realistic little run: lanes, states with details and sources, arrows, an end."""
    clock = recorder.clock
    assert isinstance(clock, FakeClock)
    loop = recorder.spawn("loop", LaneKind.LOOP)
    task = recorder.spawn("task-1", LaneKind.TASK, parent=loop, extra=("coro", "main()"))
    here = recorder.source("/tmp/program.py", 12, "main")
    for step in range(40):
        clock.advance(1000 + step)
        recorder.state(task, Code.RUNNING, source=here)
        recorder.state(task, Code.IO_WAIT, ("fd", 7, "mode", "read", "peer", "127.0.0.1:9"))
        recorder.state(loop, Code.POLL, ("timeout_s", None))
        recorder.annotate(loop, ("readable", (7,), "writable", ()))
        recorder.wake(task, loop, ("cause", "fd", "fd", 7, "mode", "read"))
        recorder.state(loop, Code.DISPATCH, ("callback", f"cb-{step % 3}"))
        recorder.switch(task, loop, ("via", "yield", "value", 1.5))
        sent = recorder.value_row(recorder.detail(("via", "send")), f"'é{step}'")
        recorder.record(loop, Code.SWITCH, task, sent)
    recorder.end(task, result=42)
    recorder.end(loop, error=ValueError("broken\nloop"))


def streamed(batch_size: int) -> bytes:
    out = io.BytesIO()
    writer = FrameWriter(out)
    writer.hello({"pid": 1, "model": "toy", "target": "t", "python": "3.11"})
    recorder = Recorder(writer, clock=FakeClock(), batch_size=batch_size)
    record_some(recorder)
    recorder.close()
    writer.end({"status": "ok", "events": recorder.event_count, "dropped": 0})
    return out.getvalue()


def recorded_in_process() -> Trace:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(), batch_size=7)
    record_some(recorder)
    recorder.close()
    return trace


def as_rows(trace: Trace) -> list[tuple[object, ...]]:
    return [tuple(event) for event in trace.events()]


def test_a_stream_decodes_to_the_trace_recorded_in_process() -> None:
    expected = recorded_in_process()
    trace = Trace()
    decoder = FrameDecoder(trace)

    decoder.feed(streamed(batch_size=50))
    decoder.finish()

    assert as_rows(trace) == as_rows(expected)
    assert [(i.id, i.name, i.kind, i.parent) for i in trace.lanes] == [
        (0, "loop", "loop", -1), (1, "task-1", "task", 0),
    ]
    assert trace.event(3).detail == {"fd": 7, "mode": "read", "peer": "127.0.0.1:9"}
    assert trace.event(5).detail == {"readable": [7], "writable": []}
    assert trace.event(2).source == ("/tmp/program.py", 12, "main")
    assert decoder.hello is not None and decoder.hello["model"] == "toy"
    assert decoder.end == {"status": "ok", "events": len(expected), "dropped": 0}


@pytest.mark.parametrize("chunking", ["byte by byte", "random chunks"])
def test_frames_cut_anywhere_decode_the_same(chunking: str) -> None:
    data = streamed(batch_size=13)
    trace = Trace()
    decoder = FrameDecoder(trace)
    pieces: list[bytes] = []
    if chunking == "byte by byte":
        pieces = [data[i : i + 1] for i in range(len(data))]
    else:
        rng = random.Random(7)
        offset = 0
        while offset < len(data):
            step = rng.randint(1, 300)
            pieces.append(data[offset : offset + step])
            offset += step
    seen_lengths = []

    for piece in pieces:
        decoder.feed(piece)
        seen_lengths.append(len(trace))
    decoder.finish()

    assert as_rows(trace) == as_rows(recorded_in_process())
    assert seen_lengths == sorted(seen_lengths)  # batches land whole, in order


def test_a_stream_cut_short_is_refused_at_the_end_keeping_whole_batches() -> None:
    data = streamed(batch_size=100)
    whole = FrameDecoder(Trace())
    whole.feed(data)
    cut = len(HELLO_FRAME) + HEADER.size + 150  # inside the first batch
    trace = Trace()
    decoder = FrameDecoder(trace)

    decoder.feed(data[:cut])

    assert len(trace) == 0
    assert decoder.pending_bytes == cut - len(HELLO_FRAME)
    with pytest.raises(StreamError, match="ended inside a frame"):
        decoder.finish()


def test_garbage_before_the_hello_is_refused_from_its_first_bytes() -> None:
    decoder = FrameDecoder(Trace())

    with pytest.raises(StreamError, match="did not start with a Loopscope hello"):
        decoder.feed(b"Traceback (most recent call last):\n")


def test_a_hello_with_the_wrong_magic_is_refused_before_it_is_whole() -> None:
    decoder = FrameDecoder(Trace())

    with pytest.raises(StreamError, match="hello"):
        decoder.feed(HEADER.pack(1000, HELLO) + b"NOPE")


def test_random_bytes_after_the_hello_are_refused_and_batches_before_kept() -> None:
    good = streamed(batch_size=1000)
    first_batch_end = len(HELLO_FRAME) + HEADER.size + struct.unpack_from(
        "<I", good, len(HELLO_FRAME)
    )[0]
    first_batch = FrameDecoder(Trace())
    first_batch.feed(good[:first_batch_end])
    kept = len(first_batch.trace)
    rng = random.Random(99)
    refused = 0
    for _ in range(500):
        trace = Trace()
        decoder = FrameDecoder(trace)
        garbage = rng.randbytes(rng.randint(5, 2000))
        try:
            decoder.feed(good[:first_batch_end] + garbage)
            decoder.finish()
        except (StreamError, SequenceGapError):
            refused += 1
        assert len(trace) == kept  # nothing of the garbage became events

    assert kept > 0
    assert refused == 500


def test_a_batch_that_skips_sequence_numbers_is_a_gap_and_earlier_events_stay() -> None:
    columns = ([10, 20], [0, 0], [Code.RUNNING, Code.READY], [-1, -1], [0, 0], [0, 0])
    trace = Trace()
    decoder = FrameDecoder(trace)
    decoder.feed(HELLO_FRAME + encode_batch(0, columns, [], []))

    with pytest.raises(SequenceGapError, match="expected sequence 2, got 3"):
        decoder.feed(encode_batch(3, columns, [("name", "x")], []))

    assert list(trace.ts) == [10, 20]
    assert len(trace.details) == 1  # the refused batch's table rows did not land either


def test_malformed_frames_are_stream_errors() -> None:
    columns = ([1], [0], [0], [-1], [0], [0])
    good_batch = encode_batch(0, columns, [], [])
    cases = {
        "short batch": HEADER.pack(4, BATCH) + b"\x00" * 4,
        "count lies": HEADER.pack(BATCH_HEADER.size, BATCH) + BATCH_HEADER.pack(0, 5, 0, 0),
        "tables not json": _batch_with_tables(b"{nope"),
        "tables not an object": _batch_with_tables(b"[1, 2]"),
        "sources malformed": _batch_with_tables(b'{"sources": [[1]]}'),
        "value rows out of order": _batch_with_values(_value_section(first=3, base=0)),
        "value row without its base": _batch_with_values(_value_section(first=0, base=7)),
        "value texts cut short": _batch_with_values(_value_section(first=0, base=0)[:-1]),
        "good tables, bad value rows": _batch_with_values(
            _value_section(first=0, base=9),
            b'{"details": [["via", "send"]], "sources": [["a.py", 1, "f"]]}'),
        "end not an object": HEADER.pack(2, END) + b"[]",
        "second hello": HELLO_FRAME,
        "unknown frame type": HEADER.pack(0, 9),
        "huge frame": HEADER.pack(2**31, BATCH),
        "after the end": encode_end({"status": "ok"}) + good_batch,
    }
    for name, frames in cases.items():
        decoder = FrameDecoder(Trace())
        decoder.feed(HELLO_FRAME)
        with pytest.raises(StreamError):
            decoder.feed(frames)
            decoder.finish()
        assert len(decoder.trace) == 0, name
        # a refused batch adds nothing, not even its table rows
        assert decoder.trace.details == [{}] and decoder.trace.sources == [("", 0, "")], name
        assert len(decoder.trace.details.values) == 0, name


def _batch_with_tables(tables: bytes) -> bytes:
    payload = BATCH_HEADER.pack(0, 0, len(tables), 0) + tables
    return HEADER.pack(len(payload), BATCH) + payload


def _value_section(first: int, base: int) -> bytes:
    return encode_values(first, array("i", [base]), array("I", [3]), b"'a'")


def _batch_with_values(section: bytes, tables: bytes = b"") -> bytes:
    payload = BATCH_HEADER.pack(0, 0, len(tables), len(section)) + tables + section
    return HEADER.pack(len(payload), BATCH) + payload


def test_unserialisable_detail_values_travel_as_their_repr() -> None:
    trace = Trace()
    decoder = FrameDecoder(trace)
    marker = object()
    columns = ([5], [0], [Code.MARK], [-1], [1], [0])

    decoder.feed(HELLO_FRAME + encode_batch(0, columns, [("text", marker)], []))

    assert trace.event(0).detail == {"text": repr(marker)}


def test_batches_written_to_a_pipe_arrive_whole_though_signals_cut_writes_short() -> None:
    """The child writes a batch's buffers straight to the pipe (writev). A slow reader fills
    the pipe, and a timer signal every millisecond cuts the blocked writes short part-way:
    the rest must still follow, so the parent decodes what was recorded."""
    import os
    import signal
    import threading
    import time

    read_fd, write_fd = os.pipe()
    received = bytearray()

    def read_slowly() -> None:
        while chunk := os.read(read_fd, 4096):
            received.extend(chunk)
            time.sleep(0.0002)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    interrupted = [0]

    def count(*_: object) -> None:
        interrupted[0] += 1

    previous = signal.signal(signal.SIGALRM, count)
    signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
    try:
        with open(write_fd, "wb", buffering=1 << 16) as out:
            writer = FrameWriter(out)
            writer.hello({"pid": 1, "model": "toy", "target": "t", "python": "3.11"})
            recorder = Recorder(writer, clock=FakeClock(), batch_size=20_000)
            for _ in range(60):
                record_some(recorder)
            recorder.close()
            writer.end({"status": "ok", "events": recorder.event_count, "dropped": 0})
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, previous)
        reader.join()
        os.close(read_fd)
    assert interrupted[0] > 0  # the writes were interrupted while they waited

    expected = Trace()
    in_process = Recorder(expected, clock=FakeClock())
    for _ in range(60):
        record_some(in_process)
    in_process.close()
    trace = Trace()
    decoder = FrameDecoder(trace)
    decoder.feed(bytes(received))
    decoder.finish()
    assert as_rows(trace) == as_rows(expected)
    assert decoder.end is not None and decoder.end["events"] == len(expected)


def test_a_batch_write_that_waits_for_the_reader_is_counted_and_noted() -> None:
    """A write into a full pipe holds the program until the parent reads; the writer counts
    such waits, and the child tells the user how long they held the program."""
    import os
    import threading

    from loopscope.tracer.child import _note_write_waits
    from loopscope.tracer.notes import take_notes

    read_fd, write_fd = os.pipe()
    received = bytearray()
    drain = threading.Event()
    now = [0]

    def clock() -> int:
        # The writer reads the clock right before its write: that lets the reader go, and the
        # reader moves the clock 30 ms on before it reads, so the write ends after that.
        drain.set()
        return now[0]

    def read_late() -> None:
        drain.wait()
        now[0] += 30_000_000
        while chunk := os.read(read_fd, 1 << 16):
            received.extend(chunk)

    reader = threading.Thread(target=read_late)
    reader.start()
    try:
        with open(write_fd, "wb", buffering=1 << 16) as out:
            writer = FrameWriter(out, clock=clock)
            recorder = Recorder(writer, clock=FakeClock(), batch_size=100_000)
            while recorder.event_count < 20_000:  # about 560 KB of columns: the pipe holds 64 KB
                record_some(recorder)
            assert writer.waits == 0
            assert not drain.is_set()
            recorder.flush()
            assert writer.waits == 1
            assert writer.waited_ns == 30_000_000
            assert writer.longest_wait_ns == writer.waited_ns
            take_notes()
            _note_write_waits(writer, 2 * writer.waited_ns)  # a run twice as long: noted
            (note,) = take_notes()
            _note_write_waits(writer, 100 * writer.waited_ns)  # 1% of the run: not worth it
            assert take_notes() == []
    finally:
        drain.set()
        reader.join()
        os.close(read_fd)
    assert note.startswith("the program was held ")
    assert "(once, up to " in note
    assert "running lane's step" in note
    assert len(received) > 20_000 * 20


_A_BATCH = (0, ([10], [0], [int(Code.SPAWN)], [-1], [0], [-1]), [("name", "loop")], [], b"")


@pytest.mark.parametrize("first_write", ["batch", "frame"])
def test_a_writer_whose_descriptor_the_program_closed_writes_nothing_more_and_keeps_why(
    first_write: str,
) -> None:
    """The program closes the event pipe's descriptor: the first write that fails, a batch
    (written to the descriptor) or any other frame (through the file), sets `lost`, and no
    write after it is tried or lets after_write run."""
    import os

    read_fd, write_fd = os.pipe()
    out = open(write_fd, "wb", buffering=1 << 16)  # noqa: SIM115
    writer = FrameWriter(out)
    frames_written: list[int] = []
    writer.after_write = lambda: frames_written.append(1)
    writer.hello({"pid": 1})
    assert frames_written == [1]
    os.close(write_fd)  # as the program does; a descriptor number nobody has reused
    try:
        if first_write == "batch":
            writer.write_batch(_A_BATCH)
        else:
            writer.write_samples({"stacks": []})
        assert isinstance(writer.lost, OSError)
        lost = writer.lost
        writer.write_batch(_A_BATCH)
        writer.end({"status": "ok"})
        assert writer.lost is lost
        assert frames_written == [1]
        assert writer.waits == 0
    finally:
        with contextlib.suppress(OSError):
            out.close()
        os.close(read_fd)


@pytest.mark.parametrize("first_write", ["batch", "frame"])
def test_a_writer_whose_reader_is_gone_raises_broken_pipe(first_write: str) -> None:
    """The parent closed its end: that is not a lost pipe but the end of the run (the
    child's watcher ends it), so BrokenPipeError goes up from either kind of write."""
    import os

    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    with open(write_fd, "wb", buffering=1 << 16) as out:
        writer = FrameWriter(out)
        with pytest.raises(BrokenPipeError):
            if first_write == "batch":
                writer.write_batch(_A_BATCH)
            else:
                writer.hello({"pid": 1})
        assert writer.lost is None
        with contextlib.suppress(BrokenPipeError):
            out.close()  # what the buffer still holds cannot go either
