"""Checks that what a trace file or an event pipe holds is a trace every consumer can use.

A saved trace comes from anywhere, and a traced program can write anything on its event
pipe, so neither is trusted: before the loader (tracer.native) or the pipe decoder
(tracer.stream) builds on a table or a column, it passes these checks, and anything else is
one TraceCheckError naming what is wrong. After them every consumer (the span fold, the
narration, the exports, the app) may rely on:

- details are dicts with string keys whose values are JSON scalars or (nested) lists of
  them, integers within int64, at most a few levels deep;
- sources are (file, line, function) with a string file and function and a line in
  [0, 2**31);
- the run's meta is a dict whose well-known keys have their types (text or None, integer
  or None) and whose other values are such JSON values too;
- every code is a known event code; every lane id is in [0, number of events) and every
  other lane -1 or such an id (a lane with no SPAWN event reads as "lane N"); timestamps
  never decrease and lie in [0, 2**62); every detail and source index names a row that
  exists.

The column checks are one pass of C loops (tracer/_column_checks.c), or vectorised numpy in
the pure-Python build, so they cost little next to reading the columns.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from itertools import chain, compress, repeat
from operator import is_
from typing import Any

from loopscope.tracer.events import CODE_NAMES, Source, detail_to_dict
from loopscope.tracer.values import VALUE_ROW

INT64 = 1 << 63
MAX_LINE = (1 << 31) - 1
MAX_TS = 1 << 62
MAX_DEPTH = 4  # a detail value: a list of lists of scalars is the deepest any model writes
# the well-known meta keys and their types; None is always allowed
TEXT_META = ("target", "model", "kind", "status", "python", "error", "stderr", "traceback")
INT_META = ("exit_code", "dropped", "events", "pid")
KNOWN_CODES = tuple(sorted(CODE_NAMES))


class TraceCheckError(ValueError):
    """Not a trace the consumers can rely on; the message says what, briefly."""


def parse_json(data: bytes | bytearray | memoryview) -> Any:
    """JSON from a trace or a frame; a nesting too deep for the parser, an integer too long
    to read or text that is not JSON is a TraceCheckError."""
    try:
        return json.loads(bytes(data))
    except (RecursionError, ValueError) as exc:  # UnicodeDecodeError is a ValueError too
        what = "nested too deeply" if isinstance(exc, RecursionError) else "not JSON"
        raise TraceCheckError(what) from None


def _plain(value: object, depth: int = 0) -> bool:
    """A JSON value every consumer can format: scalars, shallow lists, bounded integers."""
    if value is None or isinstance(value, (str, bool, float)):
        return True
    if isinstance(value, int):
        return -INT64 <= value < INT64
    if isinstance(value, list) and depth < MAX_DEPTH:
        return all(_plain(item, depth + 1) for item in value)
    return False


# detail keys (docs/architecture.md) that consumers compute or format with, and their types
_NUMBER_KEYS = ("timeout_s", "delay_s")
_INT_KEYS = ("deadline_ns", "paused_ns")
_LIST_KEYS = ("readable", "writable")


def _fits(key: str, value: object) -> bool:
    if key in _NUMBER_KEYS:
        return value is None or isinstance(value, (int, float))
    if key in _INT_KEYS:
        return value is None or type(value) is int
    if key in _LIST_KEYS:
        return isinstance(value, list)
    return True


def check_detail(row: object) -> dict[str, Any]:
    if not isinstance(row, dict) or not all(
        isinstance(key, str) and _plain(value) and _fits(key, value)
        for key, value in row.items()
    ):
        raise TraceCheckError("a detail row is malformed")
    return row


def check_details(rows: object) -> list[dict[str, Any]]:
    if not isinstance(rows, list):
        raise TraceCheckError("the detail table is not a list")
    if set(map(type, rows)) <= _DICT and _all_plain(
            list(chain.from_iterable(rows)), list(chain.from_iterable(map(dict.values, rows)))):
        return rows
    return [check_detail(row) for row in rows]


def details_of_pairs(rows: list[Any]) -> list[dict[str, Any]]:
    """The event pipe's detail rows, each a flat [key, value, key, value...] list, as checked
    dicts (what `check_detail(detail_to_dict(row))` makes of each)."""
    if set(map(type, rows)) <= _LIST and not any(map(_odd, map(len, rows))):
        flat = list(chain.from_iterable(rows))
        if _all_plain(flat[0::2], flat[1::2]):
            # a dict display is several times quicker than dict(zip(...)); most rows are
            # one or two pairs
            return [{r[0]: r[1], r[2]: r[3]} if len(r) == 4 else {r[0]: r[1]} if len(r) == 2
                    else dict(zip(r[0::2], r[1::2], strict=True)) for r in rows]
    details = []
    for row in rows:
        if not isinstance(row, list):
            raise TraceCheckError("a detail row is not a list")
        details.append(check_detail(detail_to_dict(tuple(row))))
    return details


# A run of io-bound asyncio sends two details per sleep (its delay and deadline, its wake-up),
# so a batch can bring thousands of rows: they are checked all at once with loops in C (the
# builtins over the table's keys and values), and only a table that may hold something wrong
# (a key that is not text, a row of odd length, a value no consumer can take) is checked row
# by row, which says what.
_DICT = frozenset({dict})
_LIST = frozenset({list})
_odd = (1).__and__
_VALUE_TYPES = frozenset({str, bool, float, int, type(None), list})  # a list: as _plain says
# what _fits lets through, by type, for the keys it knows
_TYPES_OF_KEY = {
    **dict.fromkeys(_NUMBER_KEYS, frozenset({int, float, bool, type(None)})),
    **dict.fromkeys(_INT_KEYS, frozenset({int, type(None)})),
    **dict.fromkeys(_LIST_KEYS, frozenset({list})),
}


def _all_plain(keys: list[Any], values: list[Any]) -> bool:
    """Whether every key is text and every value one that `check_detail` accepts for its
    key; False leaves the verdict to the row-by-row check."""
    types = list(map(type, values))
    try:
        # (key, type of its value): a handful in a whole table
        pairs = set(zip(keys, types, strict=True))
    except TypeError:  # a key that is a list or an object
        return False
    if not all(key.__class__ is str and kind in _VALUE_TYPES for key, kind in pairs):
        return False
    for key, kind in pairs:
        allowed = _TYPES_OF_KEY.get(key)
        if allowed is not None and kind not in allowed:
            return False
    kinds = {kind for _key, kind in pairs}
    if list in kinds and not all(map(_plain, compress(values, map(is_, types, repeat(list))))):
        return False
    if int in kinds:
        ints = list(compress(values, map(is_, types, repeat(int))))
        if min(ints) < -INT64 or max(ints) >= INT64:
            return False
    return True


def check_source(row: object) -> Source:
    if (
        not isinstance(row, (list, tuple))
        or len(row) != 3
        or not isinstance(row[0], str)
        or not isinstance(row[2], str)
        or type(row[1]) is not int
        or not 0 <= row[1] <= MAX_LINE
    ):
        raise TraceCheckError("a source row is malformed")
    return (row[0], row[1], row[2])


def check_sources(rows: object) -> list[Source]:
    if not isinstance(rows, list):
        raise TraceCheckError("the source table is not a list")
    return [check_source(row) for row in rows]


def check_meta(meta: object) -> dict[str, Any]:
    if not isinstance(meta, dict) or not all(isinstance(key, str) for key in meta):
        raise TraceCheckError("the run information is not a JSON object")
    for key, value in meta.items():
        if value is None:
            continue
        if key in TEXT_META:
            good = isinstance(value, str)
        elif key in INT_META:
            good = type(value) is int and -INT64 <= value < INT64
        elif key == "source_files":
            good = _source_files(value)
        else:
            good = _plain(value)
        if not good:
            raise TraceCheckError(f"the run information's {key!r} is malformed")
    return meta


def _source_files(value: object) -> bool:
    """{path: [size, sha256 hex]} (see tracer.source_files)."""
    return isinstance(value, dict) and all(
        isinstance(path, str)
        and isinstance(identity, list)
        and len(identity) == 2
        and type(identity[0]) is int
        and 0 <= identity[0] < INT64
        and isinstance(identity[1], str)
        for path, identity in value.items()
    )


def check_header(header: object) -> tuple[int, dict[str, Any], list[dict[str, Any]],
                                          list[Source]]:
    """(count, meta, details, sources) of a saved trace's header JSON."""
    if not isinstance(header, dict):
        raise TraceCheckError("the header is not a JSON object")
    count = header.get("count")
    if type(count) is not int or not 0 <= count < (1 << 40):
        raise TraceCheckError("the event count is malformed")
    details = check_details(header.get("details"))
    if not details:
        raise TraceCheckError("the detail table has no empty row")
    sources = check_sources(header.get("sources"))
    if not sources:
        raise TraceCheckError("the source table has no empty row")
    return count, check_meta(header.get("meta")), details, sources


def check_columns(columns: Sequence[array[int]], detail_count: int, value_count: int,
                  source_count: int, previous_events: int = 0, previous_ts: int = 0) -> None:
    """Checks one run of events (ts, lane, code, other, detail, source) against the tables
    they index (`detail_count` interned details, `value_count` value rows, `source_count`
    sources); a pipe batch follows `previous_events` events, the last at `previous_ts`."""
    from loopscope.tracer.recorder import SPEEDUPS  # the C checks, when built

    if SPEEDUPS is not None and all(
        type(c) is array and c.typecode == t for c, t in zip(columns, _WIRE_TYPES, strict=True)
    ):
        problem = SPEEDUPS.column_problem(*columns, _KNOWN_CODE_BYTES, detail_count,
                                          value_count, source_count, previous_events,
                                          previous_ts)
    else:
        problem = numpy_column_problem(columns, detail_count, value_count, source_count,
                                       previous_events, previous_ts)
    if problem is not None:
        raise TraceCheckError(problem)


# the columns' array typecodes (tracer.stream's COLUMN_TYPES), which the C checks read
_WIRE_TYPES = ("q", "i", "b", "i", "i", "i")
# byte (code & 0xff) is 1 for each known event code
_KNOWN_CODE_BYTES = bytes(1 if (byte if byte < 128 else byte - 256) in CODE_NAMES else 0
                          for byte in range(256))


def numpy_column_problem(columns: Sequence[array[int]], detail_count: int, value_count: int,
                         source_count: int, previous_events: int = 0,
                         previous_ts: int = 0) -> str | None:
    """What check_columns finds wrong, or None: the pure twin of _speedups.column_problem."""
    import numpy as np  # here, not at import: the CLI's start-up need not pay for it

    ts, lane, code, other, detail, source = (np.frombuffer(c, dtype=c.typecode)
                                            for c in columns)
    if not len(ts):
        return None
    if not all(len(column) == len(ts) for column in (lane, code, other, detail, source)):
        return "the columns differ in length"
    if not np.isin(code, KNOWN_CODES).all():
        return "an event has an unknown code"
    if ts[0] < previous_ts or ts[-1] >= MAX_TS:
        return "a timestamp is out of range"
    if len(ts) > 1 and (ts[1:] < ts[:-1]).any():
        return "the timestamps go backwards"
    # Lanes are numbered from 0 as they spawn, so no lane id reaches the number of events;
    # consumers may size per-lane tables by the largest id.
    lanes = previous_events + len(ts)
    if lane.min() < 0 or lane.max() >= lanes:
        return "an event is on a lane out of range"
    if other.min() < -1 or other.max() >= lanes:
        return "an event names a lane out of range"
    if source.min() < 0 or source.max() >= source_count:
        return "an event names a source location that does not exist"
    interned = detail < VALUE_ROW
    if interned.any():
        named = detail[interned]
        if named.min() < 0 or named.max() >= detail_count:
            return "an event names a detail that does not exist"
    if not interned.all() and detail[~interned].max() - VALUE_ROW >= value_count:
        return "an event names a value row that does not exist"
    return None
