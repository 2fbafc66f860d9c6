"""The native trace file: versioned, lossless, and byte-for-byte stable across save -> load -> save.

Layout:

    b"LOOPSCOPE-TRACE <version>\\n"
    zlib( u32 header length | header JSON | the six columns raw, little-endian
          | the value rows as one section (tracer.values; format 2 on, empty when none) )

The header JSON holds the event count, the run's meta, and the detail and source tables, and,
for a run whose steps were sampled, its stack samples under "samples" (tracer.samples): a key
older readers skip, so the format version does not change for it.
Columns have the same types as the event pipe (ts int64, lane int32, code int8, other int32,
detail int32, source int32). Lanes are not stored: they are derived from the SPAWN events on
load, exactly as when the events arrived from a child. The JSON keeps the tables' key order
and uses fixed separators, and zlib is deterministic, so the same trace always gives the same
bytes. A body of 2 MB or more is deflated in segments: its parts (the header, each column, the
value rows) are cut at their starts and every 2 MB after, each segment deflated from an empty
window and ending on a byte boundary, on several threads -- a run that will be saved deflates
its columns' segments while its child runs (DeflateAhead) -- and joined under one zlib header,
an empty final block and the adler32 of the whole: still one stream (any zlib, any older
Loopscope reads it), whose bytes depend only on the trace.

A trace file is data from anywhere, so loading trusts nothing in it (tracer.trace_checks):
the body is inflated a section at a time, each no larger than the sizes already read declare
and never more than deflate can make of the file's size (a zlib bomb is refused before it
inflates); every table, column, index and count is checked before a Trace is built; and any
other surprise is the same one-line NativeFormatError.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import sys
import threading
import zlib
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from loopscope.tracer.formats import NATIVE_MAGIC, is_trace_file
from loopscope.tracer.safe_write import write_file
from loopscope.tracer.samples import SamplePayloadError
from loopscope.tracer.trace import DetailTable, SequenceGapError, Trace, rows_json
from loopscope.tracer.trace_checks import (
    TraceCheckError,
    check_columns,
    check_header,
    parse_json,
)
from loopscope.tracer.values import SECTION_HEADER, ValueRows, ValueSectionError

# What every native trace file starts with (then " VERSION\n") and how a path is told to be
# one live in tracer.formats: telling a trace from a script loads none of this module.
FORMAT_VERSION = 2  # 2: value rows after the columns
COLUMN_TYPES = ("q", "i", "b", "i", "i", "i")
COLUMN_NAMES = ("ts", "lane", "code", "other", "detail", "source")
_HEADER_LENGTH = struct.Struct("<I")
_SWAP = sys.byteorder != "little"
_MAX_VERSION_LINE = 64
_MAX_DEFLATE_RATIO = 1032
_READ_SIZE = 1 << 20  # compressed bytes read at a time
_PIECE = 16 << 20  # inflated bytes per step; raw bytes compressed per step when saving
# Level 1: about four times faster than 6 for a file about a tenth bigger; the save is part of
# every traced run's wall time.
_LEVEL = 1
_ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, fastest level (what compressobj(1) writes)
# A body this long or longer is deflated in segments of at most this size, several at once
# (_deflate), each part of the body cut at its start (_segments). (2 MB: a run of 200k-300k
# events, about 8 MB, is deflated on two cores, its columns' segments while its child runs)
_SEGMENT = 2 << 20
_MAX_DEFLATE_WORKERS = 4
_COLUMN_PIECE = 1 << 20  # events a column is read and checked by, when loading
# What a progress report says once the file is read and inflated, and once it is checked.
_READ_SHARE = 0.8
_CHECKED_SHARE = 0.9
Progress = Callable[[float], None]


__all__ = ["NATIVE_MAGIC", "NativeFormatError", "is_trace_file", "load_native", "save_native"]


class NativeFormatError(Exception):
    """Not a Loopscope trace this version can read; the message says why, in one line."""


_json = rows_json


def header_json(trace: Trace) -> str:
    """The header's JSON: {"count", "meta", "details", "sources"[, "samples"]}, the details
    as `DetailTable.json` gives them (those encoded ahead not encoded again); the same text
    as the whole header dict encoded at once."""
    parts = [f'{{"count":{len(trace)},"meta":{_json(trace.meta)},"details":',
             trace.details.json() if isinstance(trace.details, DetailTable)
             else _json(list(trace.details)),
             f',"sources":{_json([list(source) for source in trace.sources])}']
    if trace.samples:
        parts.append(f',"samples":{_json(trace.samples.to_payload())}')
    parts.append("}")
    return "".join(parts)


def write_trace(trace: Trace, out: BinaryIO) -> None:
    """Writes the native file of `trace` to `out`, compressed a piece at a time: the columns
    and value rows are read where they are, never copied whole (a save takes little memory
    beyond the trace's own). Column segments deflated ahead (`DeflateAhead`, while a child
    ran) are used as they are when their bytes are still the column's."""
    header_bytes = header_json(trace).encode("utf-8")
    # without value rows the body is what format 1 holds: any Loopscope can read it
    version = FORMAT_VERSION if trace.details.values else 1
    out.write(NATIVE_MAGIC + f" {version}\n".encode("ascii"))
    parts = _body_parts(trace, header_bytes)
    if sum(len(view) for part in parts for view in part) < _SEGMENT:
        # the plain stream, byte for byte what it always was
        compressor = zlib.compressobj(_LEVEL)
        for part in parts:
            for view in part:
                packed = compressor.compress(view)
                if packed:
                    out.write(packed)
        out.write(compressor.flush())
        return
    ahead = trace.deflated_ahead if isinstance(trace.deflated_ahead, DeflateAhead) else None
    # parts from the second on are the ones DeflateAhead knows, in `_growing` order, but for
    # the value rows' section header (the count is known only at the end: never ahead)
    growing = [-1, *range(len(COLUMN_NAMES)), -1, *range(len(COLUMN_NAMES), len(_GROWING))]
    segments = ((segment, ahead.segment(growing[number], index)
                 if ahead is not None and growing[number] >= 0 else None)
                for number, part in enumerate(parts)
                for index, segment in enumerate(_segments(part)))
    _deflate(segments, out)


# The parts of the body that grow while a run goes, as DeflateAhead numbers them: the six
# columns, then the value rows' bases, text lengths and texts (tracer.values' section after
# its header), with their array types ("B" for the texts' bytearray).
_GROWING = (*COLUMN_NAMES, "bases", "lengths", "texts")
_GROWING_TYPES = (*COLUMN_TYPES, "i", "I", "B")


def _growing(trace: Trace) -> list[array[int] | bytearray]:
    """The buffers of the body's growing parts (`_GROWING`), as the trace holds them."""
    values = trace.details.values
    return [*(getattr(trace, name) for name in COLUMN_NAMES),
            values.bases, values.lengths, values.texts]


def _body_parts(trace: Trace, header_bytes: bytes) -> list[list[memoryview]]:
    """The body, uncompressed, as its parts -- the header, each column, then the value rows'
    section as its header, bases, text lengths and texts (none when there are no rows) --
    each a list of pieces: views of the columns and value rows where they are held (a copy
    only where the machine's byte order is not the file's)."""
    parts = [[memoryview(_HEADER_LENGTH.pack(len(header_bytes))), memoryview(header_bytes)]]
    buffers = _growing(trace)
    for buffer, typecode in zip(buffers[: len(COLUMN_NAMES)], COLUMN_TYPES, strict=True):
        parts.append(_pieces(buffer, typecode))
    count = len(trace.details.values)
    parts.append([memoryview(SECTION_HEADER.pack(0, count))] if count else [])
    for buffer, typecode in zip(buffers[len(COLUMN_NAMES) :],
                                _GROWING_TYPES[len(COLUMN_NAMES) :], strict=True):
        parts.append(_pieces(buffer, typecode) if count else [])
    return parts


def _pieces(buffer: array[int] | bytearray, typecode: str) -> list[memoryview]:
    """A part's bytes as views of at most _PIECE bytes, little-endian."""
    column = buffer
    if typecode != "B" and not (isinstance(buffer, array) and buffer.typecode == typecode):
        column = array(typecode, buffer)  # a column a test filled with a list
    itemsize = column.itemsize if isinstance(column, array) else 1
    step = _PIECE // itemsize
    pieces = []
    for start in range(0, len(column), step):
        if _SWAP and isinstance(column, array) and itemsize > 1:
            swapped = column[start : start + step]
            swapped.byteswap()
            pieces.append(memoryview(swapped).cast("B"))
        else:
            pieces.append(memoryview(column)[start : start + step].cast("B"))
    return pieces


def _segments(pieces: list[memoryview]) -> Iterator[list[memoryview]]:
    """One part of the body cut into segments of exactly _SEGMENT bytes (the last one
    shorter, none empty), each a list of views: the cuts fall at the part's start and every
    _SEGMENT bytes after it, whatever its pieces, so a column's segments are the same bytes
    while it grows and once it is whole (DeflateAhead deflates them before the save)."""
    segment: list[memoryview] = []
    size = 0
    for piece in pieces:
        while len(piece):
            taken = piece[: _SEGMENT - size]
            piece = piece[len(taken) :]
            segment.append(taken)
            size += len(taken)
            if size == _SEGMENT:
                yield segment
                segment, size = [], 0
    if segment:
        yield segment


class _OpenSegment:
    """One segment being deflated: from an empty window, its bytes taken in any pieces (zlib
    writes the same bytes however its input is cut, short of a flush), ending on a byte
    boundary (a sync flush), so segments deflated apart join into one stream."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        self.checksum = 1  # adler32 of nothing
        self.taken = 0
        self.packed: list[bytes] = []

    def take(self, view: memoryview) -> None:
        self.checksum = zlib.adler32(view, self.checksum)
        self.packed.append(self.compressor.compress(view))
        self.taken += len(view)

    def finish(self) -> tuple[int, bytes]:
        """(adler32, raw deflate) of the segment, all of whose bytes are taken; this object
        is done with."""
        self.packed.append(self.compressor.flush(zlib.Z_SYNC_FLUSH))
        return self.checksum, b"".join(self.packed)

    def finished(self, rest: list[memoryview]) -> tuple[int, bytes]:
        """(adler32, raw deflate) of the segment once `rest`, its bytes not taken yet, are;
        this object is left as it was (a copy of it finishes)."""
        ending = _OpenSegment(self.index)
        ending.compressor = self.compressor.copy()
        ending.checksum, ending.packed = self.checksum, list(self.packed)
        for view in rest:
            ending.take(view)
        return ending.finish()


def _deflate_segment(segment: list[memoryview]) -> tuple[int, bytes]:
    """(adler32, raw deflate) of one whole segment (`_OpenSegment`)."""
    whole = _OpenSegment()
    for view in segment:
        whole.take(view)
    return whole.finish()


def _after(segment: list[memoryview], count: int) -> list[memoryview]:
    """A segment's views without its first `count` bytes."""
    rest = []
    for view in segment:
        if count >= len(view):
            count -= len(view)
            continue
        rest.append(view[count:])
        count = 0
    return rest


_ADLER_BASE = 65521


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The adler32 of two byte strings one after the other, from theirs and the second's
    length (zlib's adler32_combine, which Python's zlib does not offer)."""
    low = ((first & 0xFFFF) + (second & 0xFFFF) - 1) % _ADLER_BASE
    high = ((first >> 16) + (second >> 16)
            + (second_length % _ADLER_BASE) * ((first & 0xFFFF) - 1)) % _ADLER_BASE
    return high << 16 | low


# A segment of the body as the save meets it: its views, and what was done of it ahead (all
# of it, as (adler32, raw deflate); part of it, as the open segment; or nothing).
_Ahead = tuple[int, bytes] | _OpenSegment | None


class _DeflatePool:
    """The segments of a body that were not deflated ahead (or only in part), deflated on
    `workers` threads (zlib lets the GIL go while it works), in order: each thread takes the
    next segment nobody has taken, and at most `4 * workers` are done but not written."""

    def __init__(self, jobs: list[tuple[list[memoryview], _OpenSegment | None]],
                 workers: int) -> None:
        self._jobs = jobs
        self._results: list[tuple[int, bytes] | None] = [None] * len(jobs)
        self._errors: list[BaseException | None] = [None] * len(jobs)
        self._done = [threading.Event() for _ in jobs]
        self._next = 0
        self._lock = threading.Lock()
        self._window = threading.Semaphore(4 * workers)
        self._threads = [threading.Thread(target=self._work, name="loopscope-deflate",
                                          daemon=True)
                         for _ in range(min(workers, len(jobs)))]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            self._window.acquire()
            with self._lock:
                index = self._next
                self._next += 1
            if index >= len(self._jobs):
                self._window.release()
                return
            segment, begun = self._jobs[index]
            try:
                self._results[index] = (
                    _deflate_segment(segment) if begun is None
                    else begun.finished(_after(segment, begun.taken)))
            except BaseException as error:  # handed to the saving thread
                self._errors[index] = error
            self._done[index].set()

    def result(self, index: int) -> tuple[int, bytes]:
        """Job `index` deflated (waiting for it); its place in the window is freed."""
        self._done[index].wait()
        self._window.release()
        error = self._errors[index]
        if error is not None:
            raise error
        done = self._results[index]
        assert done is not None
        self._results[index] = None
        return done

    def close(self) -> None:
        """No more jobs are taken (the save failed, or all are done): the threads end."""
        with self._lock:
            self._next = len(self._jobs)
        for _ in self._threads:
            self._window.release()


def _deflate(segments: Iterator[tuple[list[memoryview], _Ahead]], out: BinaryIO) -> None:
    """Writes the zlib stream of a body of several segments: one stream (any zlib reads it)
    made of its segments deflated independently, several at once on as many cores (as pigz
    does), or ahead, then joined in order under one header, an empty final block and the
    checksum of the whole. Which bytes come out depends only on the body, never on how many
    cores did the work or what was deflated ahead."""
    listed = list(segments)
    jobs = [(segment, ahead) for segment, ahead in listed
            if ahead is None or isinstance(ahead, _OpenSegment)]
    pool = _DeflatePool(jobs, _deflate_workers()) if jobs else None
    out.write(_ZLIB_HEADER)
    checksum = 1  # adler32 of nothing
    taken = 0
    try:
        for segment, ahead in listed:
            if ahead is None or isinstance(ahead, _OpenSegment):
                assert pool is not None
                ahead = pool.result(taken)
                taken += 1
            part_checksum, packed = ahead
            checksum = adler32_combine(checksum, part_checksum,
                                       sum(len(view) for view in segment))
            out.write(packed)
    finally:
        if pool is not None:
            pool.close()
    out.write(_FINAL_BLOCK)
    out.write(checksum.to_bytes(4, "big"))


# the last block of a stream whose segments all end on a sync flush: empty, marked final
_FINAL_BLOCK = zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS).flush()

# How many bytes DeflateAhead.work deflates at a call: about a quarter of a millisecond, in
# which a child fills a small part of its events pipe (tracer.early_child.EVENTS_PIPE_SIZE).
_AHEAD_SLICE = 1 << 16


class DeflateAhead:
    """The body's growing parts deflated while a child runs, a slice at a time, by the
    thread that reads the child's events whenever it has nothing to read (`work`): each
    column, and the value rows' bases, lengths and texts, in the segments the save cuts
    (`_segments`: at every part's start and every _SEGMENT bytes after). The save uses the
    segments done and finishes the one each part has begun (`segment`), deflating only the
    rest, on every core; nothing done ahead is lost, and no thread or copy is needed (the
    bytes are read where they are, between two batches). As for DetailTable.encode_ahead,
    the trace must only grow: a part's buffer replaced by another is deflated anew, but one
    changed in place would be saved as it was (nothing does that: a run's trace only
    grows)."""

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        parts = len(_GROWING)
        # by part: the buffer deflated (its segments are used only while the trace still
        # holds it), the segments done, and the one begun
        self._sources: list[array[int] | bytearray | None] = [None] * parts
        self._done: list[list[tuple[int, bytes]]] = [[] for _ in range(parts)]
        self._open: list[_OpenSegment | None] = [None] * parts

    def work(self, budget: int = _AHEAD_SLICE) -> bool:
        """Deflates up to `budget` more bytes of the growing parts; True if it used all of
        it (there may be more to do), False once it has caught up with them."""
        if _SWAP:
            return False
        for number, (buffer, typecode) in enumerate(zip(_growing(self.trace), _GROWING_TYPES,
                                                        strict=True)):
            if self._sources[number] is not buffer:  # a new buffer: its segments start over
                self._sources[number] = buffer
                self._done[number] = []
                self._open[number] = None
            size = _part_size(buffer, typecode)
            while budget > 0:
                begun = self._open[number]
                if begun is None:
                    begun = _OpenSegment(len(self._done[number]))
                start = begun.index * _SEGMENT + begun.taken
                end = min(size, (begun.index + 1) * _SEGMENT, start + budget)
                if end <= start:
                    break
                # a view only for this call: the buffer must be free to grow after it
                with memoryview(buffer) as whole, whole.cast("B") as raw, \
                        raw[start:end] as piece:
                    begun.take(piece)
                budget -= end - start
                if begun.taken == _SEGMENT:
                    self._done[number].append(begun.finish())
                    self._open[number] = None
                else:
                    self._open[number] = begun
            if budget <= 0:
                return True
        return False

    def catch_up(self) -> None:
        """Deflates all there is to deflate now."""
        while self.work():
            pass

    def segment(self, part: int, index: int) -> tuple[int, bytes] | _OpenSegment | None:
        """Segment `index` of growing part number `part` (the columns, then the value rows'
        bases, lengths and texts) as far as it was deflated ahead from the buffer the trace
        holds now: (adler32, raw deflate) when done, the open segment when begun, else
        None."""
        if _growing(self.trace)[part] is not self._sources[part]:
            return None
        done = self._done[part]
        if index < len(done):
            return done[index]
        begun = self._open[part]
        return begun if begun is not None and begun.index == index else None


def _part_size(buffer: array[int] | bytearray, typecode: str) -> int:
    """How many bytes of a growing part's buffer can be deflated ahead: all of them, or
    none when it is not what the part holds in a run (a list a test filled: the save
    converts it)."""
    if typecode == "B":
        return len(buffer) if isinstance(buffer, bytearray) else 0
    if isinstance(buffer, array) and buffer.typecode == typecode:
        return len(buffer) * buffer.itemsize
    return 0


def _deflate_workers() -> int:
    """How many segments are deflated at once: the cores this process may use, up to 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_DEFLATE_WORKERS))


def encode_trace(trace: Trace) -> bytes:
    """The native file of `trace` as bytes (what `save_native` writes)."""
    buffer = io.BytesIO()
    write_trace(trace, buffer)
    return buffer.getvalue()


def decode_trace(data: bytes, name: str = "the file") -> Trace:
    """The trace in `data`, or NativeFormatError naming `name` and what is wrong with it."""
    return read_trace(io.BytesIO(data), len(data), name)


def read_trace(source: BinaryIO, size: int, name: str = "the file",
               progress: Progress | None = None) -> Trace:
    """The trace in the `size` bytes `source` holds, read and inflated a piece at a time.
    Every failure is NativeFormatError naming `name`, in one line. `progress`, if given, is
    called from time to time with the fraction done (0 to 1), in the reading thread."""
    head = source.read(_MAX_VERSION_LINE)
    if not head.startswith(NATIVE_MAGIC):
        raise NativeFormatError(f"{name} is not a Loopscope trace")
    newline = head.find(b"\n")
    if newline < 0:
        raise NativeFormatError(f"{name} is truncated: its version line is incomplete")
    version_text = head[len(NATIVE_MAGIC) : newline].strip()
    if not (version_text.isascii() and version_text.isdigit()):
        raise NativeFormatError(f"{name} has an unreadable version line")
    version = int(version_text)
    if version > FORMAT_VERSION:
        raise NativeFormatError(
            f"{name} was saved by a newer Loopscope (trace format {version}; "
            f"this version reads up to {FORMAT_VERSION})"
        )
    if version < 1:
        raise NativeFormatError(f"{name} has an unknown trace format version {version}")
    body = _Inflater(source, head[newline + 1 :], size - newline - 1, name, progress)
    try:
        return _decode_body(body, name, version, progress)
    except NativeFormatError:
        raise
    except (zlib.error, MemoryError):
        raise NativeFormatError(f"{name} is truncated or corrupt") from None
    except (TraceCheckError, RecursionError, OverflowError, ValueError, KeyError, TypeError,
            IndexError, AttributeError, SequenceGapError):
        # whatever the checks name (or, should one be missed, whatever slips past them) is
        # still one line, never a traceback
        raise NativeFormatError(f"{name} is corrupt: its contents do not add up") from None


class _Inflater:
    """A trace's body, inflated on demand. `take(n)` inflates exactly n more bytes, reading
    the compressed file a piece at a time; nothing is inflated beyond what is asked for, and
    nothing may be asked for beyond what deflate can make of the file's size."""

    def __init__(self, source: BinaryIO, start: bytes, compressed_size: int, name: str,
                 progress: Progress | None = None) -> None:
        self.source = source
        self.compressed_size = max(compressed_size, 1)
        self.read = 0  # compressed bytes read so far
        self.progress = progress
        self.pending = start
        self.ahead = b""  # inflated by `at_end`, not yet taken
        self.inflater = zlib.decompressobj()
        # deflate expands its input at most about 1032 times (zlib's own figure)
        self.most = max(compressed_size, 0) * _MAX_DEFLATE_RATIO + 4096
        self.taken = 0
        self.name = name

    def take(self, count: int) -> bytes:
        if not 0 <= count <= self.most - self.taken:
            raise NativeFormatError(
                f"{self.name} is corrupt: it declares more data than the file can hold")
        parts = [self.ahead[:count]]
        self.ahead = self.ahead[count:]
        wanted = count - len(parts[0])
        while wanted:
            piece = self._inflate(min(wanted, _PIECE))
            if not piece:
                raise NativeFormatError(f"{self.name} is truncated or corrupt")
            parts.append(piece)
            wanted -= len(piece)
        self.taken += count
        return b"".join(parts)

    def at_end(self) -> bool:
        """Whether the body ends here (and the compressed stream is complete)."""
        if self.ahead:
            return False
        self.ahead = self._inflate(1)
        if self.ahead:
            return False
        if not self.inflater.eof:
            raise NativeFormatError(f"{self.name} is truncated or corrupt")
        return True

    def _inflate(self, most: int) -> bytes:
        """Up to `most` more bytes of the body; b"" only at its end (or the file's)."""
        inflater = self.inflater
        while not inflater.eof:
            data = inflater.unconsumed_tail or self.pending
            self.pending = b""
            if not data:
                data = self.source.read(_READ_SIZE)
                if not data:
                    return b""
                self.read += len(data)
                if self.progress is not None:
                    self.progress(_READ_SHARE * min(self.read / self.compressed_size, 1.0))
            piece = inflater.decompress(data, most)
            if piece:
                return piece
        return b""


def _decode_body(body: _Inflater, name: str, version: int,
                 progress: Progress | None = None) -> Trace:
    (header_length,) = _HEADER_LENGTH.unpack(body.take(_HEADER_LENGTH.size))
    header = parse_json(body.take(header_length))
    count, meta, details, sources = check_header(header)
    columns = []
    for typecode in COLUMN_TYPES:
        column = array(typecode)
        if column.itemsize * count > body.most:  # before multiplying up a huge count
            raise NativeFormatError(
                f"{name} is corrupt: it declares more data than the file can hold")
        # a piece at a time: one copy of a whole column would keep the GIL for as long, and
        # the app loads traces on a thread beside its window
        left = column.itemsize * count
        while left:
            piece = min(left, _COLUMN_PIECE * column.itemsize)
            column.frombytes(body.take(piece))
            left -= piece
        if _SWAP:
            column.byteswap()
        columns.append(column)
    values = ValueRows()
    if not body.at_end():
        if version < 2:
            raise TraceCheckError("value rows in a format 1 file")
        section_header = body.take(SECTION_HEADER.size)
        _, row_count = SECTION_HEADER.unpack(section_header)
        bases_and_lengths = body.take(8 * row_count)
        lengths = array("I", bases_and_lengths[4 * row_count :])
        if _SWAP:
            lengths.byteswap()
        texts = body.take(sum(lengths))
        if not body.at_end():
            raise TraceCheckError("data after the value rows")
        try:
            values.extend_encoded(section_header + bases_and_lengths + texts, len(details))
        except ValueSectionError:
            raise TraceCheckError("malformed value rows") from None
    table = DetailTable(details, values)
    # checked as a run's streamed batches are, a piece at a time (the C check keeps the GIL)
    for first in range(0, max(count, 1), _COLUMN_PIECE):
        stop = min(count, first + _COLUMN_PIECE)
        check_columns([column[first:stop] for column in columns], len(details), len(values),
                      len(sources), first, columns[0][first - 1] if first else 0)
    if progress is not None:
        progress(_CHECKED_SHARE)
    trace = Trace.from_columns(tuple(columns), table, sources, meta)
    samples = header.get("samples") if isinstance(header, dict) else None
    if samples is not None:
        try:
            trace.samples.apply_payload(samples)
        except (SamplePayloadError, AttributeError):
            raise TraceCheckError("malformed stack samples") from None
    if progress is not None:
        progress(1.0)
    return trace


def save_native(trace: Trace, path: str | Path) -> None:
    """Writes the trace, all or nothing (tracer.safe_write): OutputError (an OSError) names
    the path when it cannot be written, and an old file there is left untouched."""
    write_file(path, lambda out: write_trace(trace, out))


def load_native(path: str | Path, progress: Progress | None = None) -> Trace:
    """Reads a saved trace; every failure, including an unreadable file, is NativeFormatError.
    Only a regular file is read (a FIFO or a device is refused without waiting on it).
    `progress(fraction)` is called as the reading goes on (see read_trace)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise NativeFormatError(f"cannot read {path}: {reason or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise NativeFormatError(f"cannot read {path}: it is {what}")
        os.set_blocking(fd, True)
        size = os.fstat(fd).st_size
    except BaseException:
        os.close(fd)
        raise
    with open(fd, "rb") as handle:
        try:
            return read_trace(handle, size, str(path), progress)
        except OSError as exc:
            raise NativeFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
