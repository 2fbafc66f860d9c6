"""Seeded, structure-aware mutations of saved traces and of event-pipe streams.

Each case is made from a seed alone (`native_case(base, seed)`, `pipe_case(frames, seed)`), so
a finding is reproduced by its seed. Most mutations act on the structure (the header JSON,
the tables, the columns, the frames) and re-encode it properly, so they reach the checks and
the consumers behind the compression and the framing; the rest act on the raw bytes
(truncations and flips).
"""

from __future__ import annotations

import copy
import json
import random
import struct
import zlib
from array import array
from dataclasses import dataclass
from typing import Any

from loopscope.tracer.events import Code
from loopscope.tracer.native import COLUMN_TYPES, FORMAT_VERSION, NATIVE_MAGIC
from loopscope.tracer.stream import BATCH, BATCH_HEADER, END, HEADER, HELLO
from loopscope.tracer.values import VALUE_ROW

DEEP = 100_000  # nesting deeper than any JSON parser's recursion limit


@dataclass
class Body:
    """A saved trace taken apart: what its zlib body holds."""

    header: dict[str, Any]
    columns: list[array[int]]
    values: bytes

    @classmethod
    def parse(cls, data: bytes) -> Body:
        newline = data.index(b"\n")
        body = zlib.decompress(data[newline + 1 :])
        (length,) = struct.unpack_from("<I", body)
        header = json.loads(body[4 : 4 + length])
        offset = 4 + length
        columns = []
        for typecode in COLUMN_TYPES:
            column = array(typecode)
            size = column.itemsize * header["count"]
            column.frombytes(body[offset : offset + size])
            columns.append(column)
            offset += size
        return cls(header, columns, body[offset:])

    def encode(self, header_text: bytes | None = None, version: int = FORMAT_VERSION) -> bytes:
        text = header_text if header_text is not None else _json(self.header)
        raw = b"".join([struct.pack("<I", len(text)), text,
                        *(c.tobytes() for c in self.columns), self.values])
        return NATIVE_MAGIC + f" {version}\n".encode() + zlib.compress(raw, 1)


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


# Values that are the wrong type, size or kind for nearly any place they land.
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1 << 31, -(1 << 31) - 1, 1 << 63, 1 << 70, -(1 << 70), 0.5,
    -0.0, 1e308, -1e308, float("inf"), float("-inf"), float("nan"), "", "x", "\x00",
    "<img src=\"/dev/zero\">", "<b>bold</b>", "‮right-to-left", "a" * 5000, [], {},
    [1, 2], [[1, [2, [3, [4, [5]]]]]], {"a": 1}, {"name": None}, ["x", None], [-5],
]
SPECIAL_PATHS = ["/dev/zero", "/dev/urandom", "/etc/shadow", "/etc/passwd", "/proc/self/mem",
                 "/", "", "<string>", "relative.py", "/nonexistent/x.py", "FIFO"]


def _odd(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(ODD_VALUES))  # never one object in two places


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON tree (keys and indexes), the root's children first."""
    found = []
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return found
    for key, child in items:
        found.append((*path, key))
        if len(found) < 4000:
            found.extend(_nodes(child, (*path, key)))
    return found


def _set(tree: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree[key]
    tree[path[-1]] = value


def _deep(kind: str) -> bytes:
    return (b"[" * DEEP + b"]" * DEEP) if kind == "list" else (b'{"a":' * DEEP + b"1"
                                                                + b"}" * DEEP)


def _zeros_compressed(size: int) -> bytes:
    """zlib of `size` zero bytes, made without holding them all (a zlib bomb)."""
    packer = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = [packer.compress(block) for _ in range(size >> 20)]
    return b"".join([*parts, packer.compress(bytes(size % (1 << 20))), packer.flush()])


def _bomb(body: Body, rng: random.Random) -> bytes:
    """Small files that inflate to far more than their header declares, or declare far more
    than they hold."""
    shape = rng.choice(["trailing", "declared", "header"])
    head = NATIVE_MAGIC + f" {FORMAT_VERSION}\n".encode()
    if shape == "header":  # a header length of 4 GiB, followed by zeros
        return head + _zeros_compressed(rng.choice([1 << 20, 16 << 20]))[:-4]
    if shape == "declared":  # a count of 100 M events over a body of a few hundred
        body.header["count"] = 100_000_000
        return body.encode()
    # a proper trace followed by 16 MiB of zeros inside the same zlib stream
    text = _json(body.header)
    raw = b"".join([struct.pack("<I", len(text)), text, *(c.tobytes() for c in body.columns),
                    body.values])
    packer = zlib.compressobj(9)
    parts = [packer.compress(raw)]
    block = bytes(1 << 20)
    parts += [packer.compress(block) for _ in range(16)]
    parts.append(packer.flush())
    return head + b"".join(parts)


def native_case(base: bytes, seed: int, fifo: str = "") -> tuple[str, bytes]:
    """(what the mutation did, the mutated file) for one seed."""
    rng = random.Random(seed)
    body = Body.parse(base)
    header = body.header
    kind = rng.choice(["truncate", "flip", "body-flip", "count", "odd-value", "odd-value",
                       "odd-value", "deep", "column", "column", "column", "bomb", "paths",
                       "header-length", "values", "meta-markup", "version"])
    if kind == "truncate":
        return kind, base[: rng.randrange(len(base))]
    if kind == "flip":
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return kind, bytes(data)
    if kind == "body-flip":  # past the compression: flips the contents themselves
        newline = base.index(b"\n")
        raw = bytearray(zlib.decompress(base[newline + 1 :]))
        for _ in range(rng.randint(1, 4)):
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        return kind, base[: newline + 1] + zlib.compress(bytes(raw), 1)
    if kind == "count":
        header["count"] = rng.choice([-1, 0, header["count"] + 1, header["count"] - 1,
                                      1 << 31, 1 << 40, 10**30, 1.5, "3", None,
                                      float("inf"), float("nan")])
        return kind, body.encode()
    if kind == "odd-value":
        nodes = _nodes(header)
        for _ in range(rng.randint(1, 3)):
            _set(header, rng.choice(nodes), _odd(rng))
            nodes = _nodes(header)
        return kind, body.encode()
    if kind == "deep":
        where = rng.choice(["meta", "details", "sources", "whole", "detail-value"])
        marker = '"@@DEEP@@"'
        if where == "whole":
            return kind, body.encode(_deep("list"))
        if where == "detail-value" and len(header["details"]) > 1:
            header["details"][rng.randrange(1, len(header["details"]))]["x"] = "@@DEEP@@"
        else:
            header[where if where != "detail-value" else "meta"] = "@@DEEP@@"
        text = _json(header).replace(marker.encode(), _deep(rng.choice(["list", "dict"])))
        return kind, body.encode(text)
    if kind == "column":
        for _ in range(rng.randint(1, 4)):
            index = rng.randrange(6)
            column = body.columns[index]
            if not column:
                break
            limit = 1 << (8 * column.itemsize - 1)
            choices = [-limit, limit - 1, -1, -2, 0, 7, 15, 23, 127,
                       len(header["details"]), len(header["sources"]), VALUE_ROW,
                       VALUE_ROW + 1_000_000, rng.randrange(-limit, limit)]
            if index == 2:
                choices += [Code.SPAWN, Code.END, Code.ANNOTATE, Code.WAKE, Code.SWITCH]
            value = (rng.choice(choices) + limit) % (2 * limit) - limit  # fits the column
            column[rng.randrange(len(column))] = value
        return kind, body.encode()
    if kind == "bomb":
        return kind, _bomb(body, rng)
    if kind == "paths":
        path = rng.choice(SPECIAL_PATHS)
        path = fifo if path == "FIFO" else path
        for source in header["sources"][1:]:
            source[0] = path
        header["meta"]["kind"] = "script"
        header["meta"]["target"] = path
        if rng.random() < 0.5:
            header["meta"]["source_files"] = {path: [rng.randrange(1 << 20), "0" * 64]}
        return kind, body.encode()
    if kind == "header-length":
        newline = base.index(b"\n")
        raw = bytearray(zlib.decompress(base[newline + 1 :]))
        raw[0:4] = struct.pack("<I", rng.choice([0, 1, 0xFFFFFFFF, len(raw), len(raw) - 3]))
        return kind, base[: newline + 1] + zlib.compress(bytes(raw), 1)
    if kind == "values":
        if body.values:
            raw = bytearray(body.values)
            offset = rng.choice([0, 4, 8, rng.randrange(len(raw))])
            raw[offset : offset + 4] = struct.pack("<I", rng.choice([0, 1, 0xFFFFFFFF, 1 << 30]))
            body.values = bytes(raw)
        else:
            body.values = struct.pack("<II", 0, rng.choice([1, 0xFFFFFFFF]))
        return kind, body.encode(version=rng.choice([1, 2]))
    if kind == "meta-markup":
        markup = rng.choice([*ODD_VALUES[18:24], f'<img src="{fifo}">'])
        for key in ("target", "model", "status", "error", "python", "kind", "stderr"):
            header["meta"][key] = markup
        if len(header["details"]) > 1:
            header["details"][1]["name"] = markup
        return kind, body.encode()
    version = rng.choice([0, 1, 2, 3, 99, 10**30])
    return kind, body.encode(version=version)


# -- the event pipe ---------------------------------------------------------------------------


def split_frames(stream: bytes) -> list[tuple[int, bytes]]:
    frames = []
    offset = 0
    while offset < len(stream):
        length, kind = HEADER.unpack_from(stream, offset)
        frames.append((kind, stream[offset + HEADER.size : offset + HEADER.size + length]))
        offset += HEADER.size + length
    return frames


def join_frames(frames: list[tuple[int, bytes]]) -> bytes:
    return b"".join(HEADER.pack(len(payload), kind) + payload for kind, payload in frames)


def pipe_case(stream: bytes, seed: int) -> tuple[str, bytes]:
    """(what the mutation did, the mutated stream of frames) for one seed."""
    rng = random.Random(seed)
    frames = split_frames(stream)
    kind = rng.choice(["truncate", "flip", "deep-end", "end-types", "tables", "tables",
                       "columns", "columns", "batch-header", "frame-kind", "reorder"])
    if kind == "truncate":
        return kind, stream[: rng.randrange(len(stream))]
    if kind == "flip":
        data = bytearray(stream)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        return kind, bytes(data)
    if kind == "deep-end":
        frames[-1] = (END, _deep(rng.choice(["list", "dict"])))
        return kind, join_frames(frames)
    if kind == "end-types":
        end = json.loads(frames[-1][1])
        for key in rng.sample(sorted(end), k=min(len(end), 2)):
            end[key] = _odd(rng)
        frames[-1] = (END, _json(end))
        return kind, join_frames(frames)
    batches = [i for i, (k, _) in enumerate(frames) if k == BATCH]
    index = rng.choice(batches)
    payload = bytearray(frames[index][1])
    first, count, tables_length, values_length = BATCH_HEADER.unpack_from(payload)
    tables_at = BATCH_HEADER.size
    if kind == "tables" and tables_length:
        tables = json.loads(payload[tables_at : tables_at + tables_length])
        nodes = _nodes(tables)
        for _ in range(rng.randint(1, 3)):
            _set(tables, rng.choice(nodes), _odd(rng))
            nodes = _nodes(tables)
        text = _json(tables)
        payload[tables_at : tables_at + tables_length] = text
        struct.pack_into("<I", payload, 12, len(text))
    elif kind in ("columns", "tables") and count:
        columns_at = tables_at + tables_length + values_length
        offsets = [columns_at]
        for typecode in COLUMN_TYPES:
            offsets.append(offsets[-1] + array(typecode).itemsize * count)
        which = rng.randrange(6)
        size = array(COLUMN_TYPES[which]).itemsize
        at = offsets[which] + size * rng.randrange(count)
        limit = 1 << (8 * size - 1)
        value = rng.choice([-limit, limit - 1, -1, -2, 99, VALUE_ROW + 5, 1 << 20])
        value = (value + limit) % (2 * limit) - limit  # fits the column
        payload[at : at + size] = value.to_bytes(size, "little", signed=True)
    elif kind == "batch-header":
        field = rng.randrange(4)
        fmt_offsets = [(0, "<Q"), (8, "<I"), (12, "<I"), (16, "<I")]
        offset, fmt = fmt_offsets[field]
        struct.pack_into(fmt, payload, offset, rng.choice([0, 1, first + 1, 0xFFFFFFFF]))
    elif kind == "frame-kind":
        frames.insert(rng.randrange(len(frames) + 1), (rng.choice([0, HELLO, 4, 255]), b"x"))
        return kind, join_frames(frames)
    else:  # reorder
        rng.shuffle(frames)
        return kind, join_frames(frames)
    frames[index] = (BATCH, bytes(payload))
    return kind, join_frames(frames)
