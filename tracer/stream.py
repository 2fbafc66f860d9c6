"""The wire format of the child-to-parent event pipe, and its two ends.

A frame is a 5-byte header (payload length as u32, frame type as u8) and a payload:

- HELLO: b"LSCP" + JSON {version, pid, target, model, python}; always the first frame.
- BATCH: u64 first_seq, u32 count, u32 tables length, tables JSON {"details", "sources"}
  (the rows new since the last batch), then the six columns raw, little-endian:
  ts int64, lane int32, code int8, other int32, detail int32, source int32.
- END: JSON {status, error, traceback, dropped}; the child's last word.

Writes block when the pipe is full, which is the back-pressure: the child waits for a slow
parent instead of dropping events.
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from tracer.events import Detail, Source, detail_to_dict
from tracer.trace import Trace

PROTOCOL_VERSION = 1
MAGIC = b"LSCP"
HEADER = struct.Struct("<IB")
BATCH_HEADER = struct.Struct("<QII")
MAX_FRAME = 256 * 1024 * 1024

HELLO, BATCH, END = 1, 2, 3
COLUMN_TYPES = ("q", "i", "b", "i", "i", "i")
_SWAP = sys.byteorder != "little"


class StreamError(Exception):
    """The pipe carried something that is not our protocol."""


def _frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(len(payload), kind) + payload


def encode_hello(info: dict[str, Any]) -> bytes:
    body = {"version": PROTOCOL_VERSION, **info}
    return _frame(HELLO, MAGIC + json.dumps(body).encode())


def encode_end(info: dict[str, Any]) -> bytes:
    return _frame(END, json.dumps(info).encode())


def encode_batch(
    first_seq: int,
    columns: tuple[Sequence[int], ...],
    new_details: list[Detail],
    new_sources: list[Source],
) -> bytes:
    count = len(columns[0])
    tables = json.dumps(
        {"details": [list(d) for d in new_details], "sources": new_sources},
        default=_jsonable,
    ).encode()
    parts = [BATCH_HEADER.pack(first_seq, count, len(tables)), tables]
    for typecode, column in zip(COLUMN_TYPES, columns, strict=True):
        packed = array(typecode, column)
        if _SWAP:
            packed.byteswap()
        parts.append(packed.tobytes())
    return _frame(BATCH, b"".join(parts))


def _jsonable(value: object) -> object:
    return repr(value)


class FrameWriter:
    """The child's end: a BatchSink that writes frames to a binary file (the event pipe)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def hello(self, info: dict[str, Any]) -> None:
        self._send(encode_hello(info))

    def write_batch(
        self,
        first_seq: int,
        columns: tuple[Sequence[int], ...],
        new_details: list[Detail],
        new_sources: list[Source],
    ) -> None:
        self._send(encode_batch(first_seq, columns, new_details, new_sources))

    def end(self, info: dict[str, Any]) -> None:
        self._send(encode_end(info))

    def _send(self, frame: bytes) -> None:
        self.out.write(frame)
        self.out.flush()


@dataclass
class Frame:
    kind: int
    payload: bytes


class FrameDecoder:
    """The parent's end, independent of how bytes arrive: feed bytes, get frames applied.

    Usable from asyncio (see tracer.runner) or synchronously in tests and benchmarks.
    """

    def __init__(self, trace: Trace) -> None:
        self.trace = trace
        self.hello: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= HEADER.size:
            length, kind = HEADER.unpack_from(buffer, offset)
            if kind not in (HELLO, BATCH, END) or length > MAX_FRAME:
                raise StreamError(_garbage(buffer, offset))
            if len(buffer) - offset - HEADER.size < length:
                break
            start = offset + HEADER.size
            self.apply(Frame(kind, bytes(buffer[start : start + length])))
            offset = start + length
        del buffer[:offset]

    @property
    def pending_bytes(self) -> int:
        return len(self._buffer)

    def apply(self, frame: Frame) -> None:
        if self.hello is None:
            if frame.kind != HELLO or not frame.payload.startswith(MAGIC):
                raise StreamError("the child did not start with a Loopscope hello frame")
            self.hello = json.loads(frame.payload[len(MAGIC) :])
            if self.hello.get("version") != PROTOCOL_VERSION:
                raise StreamError(f"protocol version {self.hello.get('version')} is not supported")
            return
        if frame.kind == BATCH:
            self._apply_batch(frame.payload)
        elif frame.kind == END:
            self.end = json.loads(frame.payload)
        else:
            raise StreamError("a second hello frame in one stream")

    def _apply_batch(self, payload: bytes) -> None:
        first_seq, count, tables_length = BATCH_HEADER.unpack_from(payload, 0)
        offset = BATCH_HEADER.size
        tables = json.loads(payload[offset : offset + tables_length])
        offset += tables_length
        columns = []
        for typecode in COLUMN_TYPES:
            column = array(typecode)
            size = column.itemsize * count
            column.frombytes(payload[offset : offset + size])
            if _SWAP:
                column.byteswap()
            offset += size
            columns.append(column)
        if offset != len(payload):
            raise StreamError("a batch frame's length does not match its event count")
        trace = self.trace
        trace.details.extend(detail_to_dict(tuple(d)) for d in tables["details"])
        trace.sources.extend(tuple(s) for s in tables["sources"])
        trace.extend_columns(first_seq, tuple(columns))


def _garbage(buffer: bytearray, offset: int) -> str:
    sample = bytes(buffer[offset : offset + 40])
    return f"garbage on the event pipe: {sample!r}"
