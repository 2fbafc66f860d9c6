"""The wire format of the child-to-parent event pipe, and its two ends.

A frame is a 5-byte header (payload length as u32, frame type as u8) and a payload:

- HELLO: b"LSCP" + JSON {version, pid, target, model, python}; always the first frame.
- BATCH: u64 first_seq, u32 count, u32 tables length, u32 values length, tables JSON
  {"details", "sources"} (the rows new since the last batch; length 0 when there are none),
  the new value rows as one section (tracer.values; length 0 when there are none), then the
  six columns raw, little-endian: ts int64, lane int32, code int8, other int32, detail int32,
  source int32.
- END: JSON {status, error, traceback, dropped, events}; the child's last word.
- SAMPLES: JSON, the stall sampler's stacks and samples (see tracer.samples); any number,
  between the hello and the end, each right after a batch.
- HELD: JSON, what the program's paused frame holds each time the step gate holds the child
  (tracer.held_frame: seq, lane, where, locals), right before the gate's empty batch. The
  decoder keeps the last one (`held`); it never changes the trace.

Writes block when the pipe is full, which is the back-pressure: the child waits for a slow
parent instead of dropping events. The decoder checks every header as soon as its five bytes
are in, so garbage is refused at once instead of being buffered as a frame that never ends.
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from array import array
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from loopscope.tracer.events import Batch, Detail, Source

if TYPE_CHECKING:
    from loopscope.tracer.held_frame import HeldView
    from loopscope.tracer.trace import Trace

# The decoder's half (the trace, its checks) is imported by FrameDecoder, in the parent: the
# child only writes frames, and its start-up is part of every traced run's.

PROTOCOL_VERSION = 2
MAGIC = b"LSCP"
HEADER = struct.Struct("<IB")
BATCH_HEADER = struct.Struct("<QIII")
# A batch is at most a recorder's batch size of 25-byte events plus the new table rows; a
# header claiming more is garbage, and refusing it early bounds what the parent buffers.
MAX_FRAME = 64 * 1024 * 1024
MAX_HELLO = 64 * 1024

HELLO, BATCH, END, SAMPLES, HELD = 1, 2, 3, 4, 5
# A held view's bounds: what the app shows of it, and what the decoder accepts.
MAX_HELD = 256 * 1024
COLUMN_TYPES = ("q", "i", "b", "i", "i", "i")
EVENT_SIZE = sum(array(t).itemsize for t in COLUMN_TYPES)
_SWAP = sys.byteorder != "little"
# A batch write into a pipe with room takes tens of microseconds; one that took this long
# waited for the parent to read.
WAITED_WRITE_NS = 1_000_000


# The child's one line when the program closed or reused the event pipe's descriptor (the
# parent finds it in the child's stderr and says the trace ended there)
PIPE_LOST = "loopscope: the program closed the event pipe"


class StreamError(Exception):
    """The pipe carried something that is not our protocol."""


def _frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind) + payload


def encode_hello(info: dict[str, Any]) -> bytes:
    body = {"version": PROTOCOL_VERSION, **info}
    return _frame(HELLO, MAGIC + json.dumps(body).encode())


def encode_end(info: dict[str, Any]) -> bytes:
    return _frame(END, json.dumps(info, default=_jsonable).encode())


def encode_samples(payload: dict[str, Any]) -> bytes:
    return _frame(SAMPLES, json.dumps(payload, default=_jsonable).encode())


def encode_held(view: dict[str, Any]) -> bytes:
    return _frame(HELD, json.dumps(view, default=_jsonable).encode())


def encode_batch(
    first_seq: int,
    columns: tuple[Sequence[int], ...],
    new_details: list[Detail],
    new_sources: list[Source],
    new_values: bytes = b"",
) -> bytes:
    return b"".join(batch_parts(first_seq, columns, new_details, new_sources, new_values))


def batch_parts(
    first_seq: int,
    columns: tuple[Sequence[int], ...],
    new_details: list[Detail],
    new_sources: list[Source],
    new_values: bytes = b"",
) -> list[bytes | array[int]]:
    """A batch frame as the buffers that make it up, in order: the child writes them to the
    pipe as they are (one `writev`), without first copying them into one."""
    count = len(columns[0])
    if new_details or new_sources:
        tables = json.dumps(
            # json writes tuples as lists, so the rows need no copying (byte-identical output).
            {"details": new_details, "sources": new_sources},
            default=_jsonable,
        ).encode()
    else:
        tables = b""
    header = BATCH_HEADER.pack(first_seq, count, len(tables), len(new_values))
    parts: list[bytes | array[int]] = [b"", header, tables, new_values]
    for typecode, column in zip(COLUMN_TYPES, columns, strict=True):
        if _SWAP or not isinstance(column, array) or column.typecode != typecode:
            column = array(typecode, column)  # a copy: the caller's column stays as it was
            if _SWAP:
                column.byteswap()
        parts.append(column)
    payload_length = sum(memoryview(p).nbytes for p in parts)  # an array's len counts items
    parts[0] = HEADER.pack(payload_length, BATCH)
    return parts


def _write_all(fd: int, parts: list[bytes | array[int]]) -> None:
    """Writes the buffers to `fd` in order, however many calls the pipe takes (a signal can
    cut a blocking write short once part of it is in)."""
    views = [memoryview(part).cast("B") for part in parts if len(part)]
    while views:
        written = os.writev(fd, views)
        while views and written >= views[0].nbytes:
            written -= views[0].nbytes
            views.pop(0)
        if written:
            views[0] = views[0][written:]


def _jsonable(value: object) -> object:
    return repr(value)


# What one of FrameWriter's guarded writes takes: a frame's bytes, or a batch it encodes as
# it writes it
_Frame = TypeVar("_Frame", bytes, Batch)


class FrameWriter:
    """The child's end: a BatchSink that writes frames to a binary file (the event pipe)."""

    def __init__(self, out: BinaryIO, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.out = out
        self._clock = clock  # times the batch writes; tests inject one they drive
        try:  # a batch goes straight to the file's descriptor, its buffers not joined first
            self._fd = out.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = -1  # an in-memory file (tests)
        # Called after each whole frame is written: the one moment the child can be
        # interrupted without losing events or cutting a frame in half.
        self.after_write: Callable[[], None] | None = None
        # The batch writes that waited for the parent to read (a full pipe): the program is
        # held meanwhile, and the wait counts as the running lane's time.
        self.waits = 0
        self.waited_ns = 0
        self.longest_wait_ns = 0
        # Set when the program closed or reused the pipe's descriptor: nothing more is
        # written, and the program goes on as it would untraced (child._finish_stream says so)
        self.lost: OSError | None = None

    @property
    def fd(self) -> int:
        """The descriptor batches go to (-1 for an in-memory file)."""
        return self._fd

    def hello(self, info: dict[str, Any]) -> None:
        self._send(encode_hello(info))

    def write_batch(self, batch: Batch) -> None:
        if self._fd < 0:
            self._send(encode_batch(*batch))
        else:
            self._guarded_write(self._write_batch_to_fd, batch)

    def end(self, info: dict[str, Any]) -> None:
        self._send(encode_end(info))

    def write_samples(self, payload: dict[str, Any]) -> None:
        self._send(encode_samples(payload))

    def write_held(self, view: dict[str, Any]) -> None:
        self._send(encode_held(view))

    def _send(self, frame: bytes) -> None:
        self._guarded_write(self._write_to_file, frame)

    def _guarded_write(self, write: Callable[[_Frame], None], frame: _Frame) -> None:
        """write(frame), one whole frame, then after_write. Once the program has closed or
        reused the pipe's descriptor, nothing more is written (`lost` says why)."""
        if self.lost is not None:
            return
        try:
            write(frame)
        except BrokenPipeError:
            raise  # the parent is gone: the child's watcher ends the run
        except OSError as error:
            self.lost = error
            return
        if self.after_write is not None:
            self.after_write()

    def _write_to_file(self, frame: bytes) -> None:
        self.out.write(frame)
        self.out.flush()

    def _write_batch_to_fd(self, batch: Batch) -> None:
        parts = batch_parts(*batch)
        self.out.flush()  # what the buffer holds goes first
        started = self._clock()
        _write_all(self._fd, parts)
        took = self._clock() - started
        if took >= WAITED_WRITE_NS:
            self.waits += 1
            self.waited_ns += took
            self.longest_wait_ns = max(self.longest_wait_ns, took)


class FrameDecoder:
    """The parent's end, independent of how bytes arrive: feed bytes, get frames applied.

    Usable from asyncio (see tracer.runner) or synchronously in tests and benchmarks. Raises
    StreamError for anything that is not the protocol and SequenceGapError for a batch that
    does not follow on; in both cases what was applied before stays in the trace.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.hello: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        # The program's paused frame at the last hold (tracer.held_frame), checked.
        self.held: HeldView | None = None
        self._buffer = bytearray()
        self._needed = 0  # bytes the buffered frame needs before it can be applied

    @property
    def pending_bytes(self) -> int:
        """Bytes of a frame that has not fully arrived yet."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._needed:
                return  # the frame is still incomplete: no copy until it is whole
            chunk = bytes(self._buffer)
            self._buffer.clear()
        else:
            chunk = bytes(data)
        used = self._consume(chunk)
        if used < len(chunk):
            self._buffer += memoryview(chunk)[used:]

    def finish(self) -> None:
        """The stream has ended: refuses a frame cut short."""
        if self._buffer:
            raise StreamError(
                f"the event stream ended inside a frame ({len(self._buffer)} bytes left over)"
            )

    def _consume(self, chunk: bytes) -> int:
        """Applies every whole frame in `chunk`; returns how many bytes they took."""
        view = memoryview(chunk)
        size = len(chunk)
        header_size = HEADER.size
        offset = 0
        self._needed = 0
        while size - offset >= header_size:
            length, kind = HEADER.unpack_from(chunk, offset)
            self._check_header(kind, length, chunk, offset)
            start = offset + header_size
            stop = start + length
            if stop > size:
                if self.hello is None and size - start >= len(MAGIC):
                    self._check_magic(chunk, start)
                self._needed = stop - offset
                break
            if kind == BATCH:
                self._apply_batch(view[start:stop])
            elif kind == HELLO:
                self._apply_hello(chunk[start:stop])
            elif kind == SAMPLES:
                self._apply_samples(chunk[start:stop])
            elif kind == HELD:
                self._apply_held(chunk[start:stop])
            else:
                self._apply_end(chunk[start:stop])
            offset = stop
        return offset

    def _check_header(self, kind: int, length: int, chunk: bytes, offset: int) -> None:
        if self.end is not None:
            raise StreamError(f"data after the end frame: {_sample(chunk, offset)}")
        if self.hello is None:
            if kind != HELLO or length > MAX_HELLO:
                raise StreamError(
                    "the child did not start with a Loopscope hello frame: "
                    + _sample(chunk, offset)
                )
        elif (kind not in (BATCH, END, SAMPLES, HELD) or length > MAX_FRAME
              or (kind == HELD and length > MAX_HELD)):
            if kind == HELLO:
                raise StreamError("a second hello frame in one stream")
            raise StreamError(f"garbage on the event pipe: {_sample(chunk, offset)}")

    def _check_magic(self, chunk: bytes, start: int) -> None:
        if chunk[start : start + len(MAGIC)] != MAGIC:
            raise StreamError(
                f"the child did not start with a Loopscope hello frame: {_sample(chunk, 0)}"
            )

    def _apply_hello(self, payload: bytes) -> None:
        self._check_magic(payload, 0)
        hello = _json_object(payload[len(MAGIC) :], "hello")
        if hello.get("version") != PROTOCOL_VERSION:
            raise StreamError(f"protocol version {hello.get('version')!r:.40} is not supported")
        if not isinstance(hello.get("python"), str | None):  # it lands in the trace's meta
            raise StreamError("the hello frame's python version is not text")
        self.hello = hello

    def _apply_samples(self, payload: bytes) -> None:
        from loopscope.tracer.samples import SamplePayloadError

        try:
            self.trace.samples.apply_payload(_json_object(payload, "samples"))
        except SamplePayloadError as exc:
            raise StreamError(str(exc)) from None

    def _apply_held(self, payload: bytes) -> None:
        # imported here: it loads dataclasses, which the child (a writer) never needs
        from loopscope.tracer.held_frame import held_view_of

        try:
            self.held = held_view_of(_json_object(payload, "held"))
        except ValueError as exc:
            raise StreamError(str(exc)) from None

    def _apply_end(self, payload: bytes) -> None:
        self.end = _json_object(payload, "end")

    def _apply_batch(self, payload: memoryview) -> None:
        from loopscope.tracer.trace import SequenceGapError
        from loopscope.tracer.trace_checks import TraceCheckError, check_columns
        from loopscope.tracer.values import ValueSectionError, decode_values

        if len(payload) < BATCH_HEADER.size:
            raise StreamError(f"a batch frame of {len(payload)} bytes is too short")
        first_seq, count, tables_length, values_length = BATCH_HEADER.unpack_from(payload, 0)
        offset = BATCH_HEADER.size
        if len(payload) != offset + tables_length + values_length + count * EVENT_SIZE:
            raise StreamError("a batch frame's length does not match its event count")
        trace = self.trace
        if first_seq != len(trace):
            raise SequenceGapError(
                f"event stream gap: expected sequence {len(trace)}, got {first_seq}"
            )
        details: list[dict[str, Any]] = []
        sources: list[Source] = []
        if tables_length:
            details, sources = _tables(bytes(payload[offset : offset + tables_length]))
            offset += tables_length
        values = None
        if values_length:
            try:
                values = decode_values(payload[offset : offset + values_length],
                                       len(trace.details.values),
                                       len(trace.details) + len(details))
            except ValueSectionError as exc:
                raise StreamError(f"a batch's value rows are malformed: {exc}") from None
            offset += values_length
        columns = []
        for typecode in COLUMN_TYPES:
            column = array(typecode)
            size = column.itemsize * count
            column.frombytes(payload[offset : offset + size])
            if _SWAP:
                column.byteswap()
            offset += size
            columns.append(column)
        try:
            check_columns(columns, len(trace.details) + len(details),
                          len(trace.details.values) + (len(values[0]) if values else 0),
                          len(trace.sources) + len(sources), len(trace), trace.duration_ns)
        except TraceCheckError as exc:
            raise StreamError(f"a batch does not add up: {exc}") from None
        trace.details.extend(details)
        trace.sources.extend(sources)
        if values is not None:
            trace.details.values.append(values)
        trace.extend_columns(first_seq, tuple(columns))


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    from loopscope.tracer.trace_checks import TraceCheckError, parse_json

    try:
        value = parse_json(payload)
    except TraceCheckError as exc:
        raise StreamError(f"the {what} frame is {exc}") from None
    if not isinstance(value, dict):
        raise StreamError(f"the {what} frame is not a JSON object")
    return value


def _tables(payload: bytes) -> tuple[list[dict[str, Any]], list[Source]]:
    from loopscope.tracer.trace_checks import TraceCheckError, check_source, details_of_pairs

    tables = _json_object(payload, "batch tables")
    try:
        rows, locations = tables.get("details", []), tables.get("sources", [])
        if not isinstance(rows, list) or not isinstance(locations, list):
            raise TraceCheckError("a table is not a list")
        details = details_of_pairs(rows)
        sources: list[Source] = [check_source(row) for row in locations]
    except TraceCheckError as exc:
        raise StreamError(f"a batch's tables are malformed: {exc}") from None
    return details, sources


def _sample(chunk: bytes, offset: int) -> str:
    return repr(chunk[offset : offset + 24])
