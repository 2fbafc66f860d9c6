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
bytes.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from array import array
from pathlib import Path
from typing import Any

from loopscope.tracer.samples import SamplePayloadError
from loopscope.tracer.trace import DetailTable, SequenceGapError, Trace
from loopscope.tracer.values import ValueRows, ValueSectionError

# What every native trace file starts with (then " VERSION\n").
NATIVE_MAGIC = b"LOOPSCOPE-TRACE"


def is_trace_file(path: Path) -> bool:
    """Whether the file at `path` is a native trace (by its first bytes, not its name)."""
    try:
        with path.open("rb") as handle:
            return handle.read(len(NATIVE_MAGIC)) == NATIVE_MAGIC
    except OSError:
        return False

FORMAT_VERSION = 2  # 2: value rows after the columns
COLUMN_TYPES = ("q", "i", "b", "i", "i", "i")
COLUMN_NAMES = ("ts", "lane", "code", "other", "detail", "source")
_HEADER_LENGTH = struct.Struct("<I")
_SWAP = sys.byteorder != "little"
_MAX_VERSION_LINE = 64


class NativeFormatError(Exception):
    """Not a Loopscope trace this version can read; the message says why, in one line."""


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


def encode_trace(trace: Trace) -> bytes:
    header = {
        "count": len(trace),
        "meta": trace.meta,
        "details": list(trace.details),
        "sources": [list(source) for source in trace.sources],
    }
    if trace.samples:
        header["samples"] = trace.samples.to_payload()
    header_bytes = _json(header).encode("utf-8")
    parts = [_HEADER_LENGTH.pack(len(header_bytes)), header_bytes]
    for typecode, name in zip(COLUMN_TYPES, COLUMN_NAMES, strict=True):
        column = array(typecode, getattr(trace, name))
        if _SWAP:
            column.byteswap()
        parts.append(column.tobytes())
    parts.append(trace.details.values.encode())
    body = zlib.compress(b"".join(parts), 6)
    # without value rows the body is what format 1 holds: any Loopscope can read it
    version = FORMAT_VERSION if trace.details.values else 1
    return NATIVE_MAGIC + f" {version}\n".encode("ascii") + body


def decode_trace(data: bytes, name: str = "the file") -> Trace:
    """The trace in `data`, or NativeFormatError naming `name` and what is wrong with it."""
    if not data.startswith(NATIVE_MAGIC):
        raise NativeFormatError(f"{name} is not a Loopscope trace")
    newline = data.find(b"\n", 0, _MAX_VERSION_LINE)
    if newline < 0:
        raise NativeFormatError(f"{name} is truncated: its version line is incomplete")
    version_text = data[len(NATIVE_MAGIC) : newline].strip()
    if not version_text.isdigit():
        raise NativeFormatError(f"{name} has an unreadable version line")
    version = int(version_text)
    if version > FORMAT_VERSION:
        raise NativeFormatError(
            f"{name} was saved by a newer Loopscope (trace format {version}; "
            f"this version reads up to {FORMAT_VERSION})"
        )
    if version < 1:
        raise NativeFormatError(f"{name} has an unknown trace format version {version}")
    try:
        body = zlib.decompress(data[newline + 1 :])
    except zlib.error:
        raise NativeFormatError(f"{name} is truncated or corrupt") from None
    return _decode_body(body, name, version)


def _decode_body(body: bytes, name: str, version: int) -> Trace:
    corrupt = NativeFormatError(f"{name} is corrupt: its contents do not add up")
    if len(body) < _HEADER_LENGTH.size:
        raise corrupt
    (header_length,) = _HEADER_LENGTH.unpack_from(body, 0)
    offset = _HEADER_LENGTH.size
    try:
        header = json.loads(body[offset : offset + header_length])
        count = int(header["count"])
        details = header["details"]
        sources = [tuple(source) for source in header["sources"]]
        meta = header["meta"]
        samples = header.get("samples")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise corrupt from None
    offset += header_length
    columns = []
    for typecode in COLUMN_TYPES:
        column = array(typecode)
        size = column.itemsize * count
        if offset + size > len(body):
            raise corrupt
        column.frombytes(body[offset : offset + size])
        if _SWAP:
            column.byteswap()
        columns.append(column)
        offset += size
    if not isinstance(details, list) or not isinstance(meta, dict):
        raise corrupt
    values = ValueRows()
    if offset < len(body):
        if version < 2:
            raise corrupt
        try:
            values.extend_encoded(memoryview(body)[offset:], len(details))
        except ValueSectionError:
            raise corrupt from None
    table = DetailTable(details, values)
    trace = Trace(details=table, sources=sources, meta=meta)  # type: ignore[arg-type]
    if samples is not None:
        try:
            trace.samples.apply_payload(samples)
        except (SamplePayloadError, AttributeError):
            raise corrupt from None
    if count and not all(table.is_valid(index) for index in set(columns[4])):
        raise corrupt
    if count and (min(columns[5]) < 0 or max(columns[5]) >= len(sources)):
        raise corrupt
    try:
        trace.extend_columns(0, tuple(columns))
    except (SequenceGapError, IndexError, AttributeError):
        raise corrupt from None
    return trace


def save_native(trace: Trace, path: str | Path) -> None:
    Path(path).write_bytes(encode_trace(trace))


def load_native(path: str | Path) -> Trace:
    """Reads a saved trace; every failure, including an unreadable file, is NativeFormatError."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise NativeFormatError(f"cannot read {path}: {exc.strerror or exc}") from None
    return decode_trace(data, str(path))
