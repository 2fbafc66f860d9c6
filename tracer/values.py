"""Value rows: the values handed over at hand-offs, kept as compact rows instead of details.

A generator that is sent a new value at every step would otherwise add a new interned detail
row per send -- a tuple, a dict entry, a JSON row on the pipe and a dict in the parent. A value
row is a base detail (e.g. {"via": "send"}) plus a short text (the value's repr); it reads as
the base with a "value" key. Value rows are numbered from VALUE_ROW up, in the same int32
detail column as interned details, which stay below it.

On the pipe and in saved traces a run of new value rows is one section:

    u32 first row, u32 count, count x i32 base, count x u32 text length, the texts as UTF-8

all little-endian. The recorder (tracer._speedups in C, or its pure twin) writes sections;
ValueRows reads them.

A value row's base may also name an "int_key": then its text is an integer in decimal and the
row reads with that key holding the int. A sleep is one such row -- {"delay_s": d, "int_key":
"deadline_ns"} interned once per delay, plus the deadline -- so a program that sleeps 50,000
times sends no detail row per sleep (each would be new: its deadline is).
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator
from itertools import accumulate, islice
from typing import TYPE_CHECKING, Any

VALUE_ROW = 1 << 30  # the first value row's detail index
MAX_VALUE_ROWS = (1 << 31) - 1 - VALUE_ROW
SECTION_HEADER = struct.Struct("<II")
_SWAP = sys.byteorder != "little"


class ValueSectionError(ValueError):
    """A value section that does not add up."""


def encode_values(first: int, bases: array[int], lengths: array[int], texts: bytes) -> bytes:
    """One section of value rows; `bases` is an array("i"), `lengths` an array("I")."""
    if not bases:
        return b""
    if _SWAP:
        bases, lengths = array("i", bases), array("I", lengths)
        bases.byteswap()
        lengths.byteswap()
    return b"".join((SECTION_HEADER.pack(first, len(bases)), bases.tobytes(),
                     lengths.tobytes(), texts))


# (bases, text lengths, texts) of a decoded section; array is generic only to the type checker
if TYPE_CHECKING:
    DecodedValues = tuple[array[int], array[int], memoryview]
else:
    DecodedValues = tuple


def decode_values(section: bytes | memoryview, first: int, detail_count: int) -> DecodedValues:
    """The rows of a section that must start at row `first` and refer only to the first
    `detail_count` details; ValueSectionError says what is wrong otherwise."""
    view = memoryview(section)
    if len(view) < SECTION_HEADER.size:
        raise ValueSectionError(f"a value section of {len(view)} bytes is too short")
    given_first, count = SECTION_HEADER.unpack_from(view, 0)
    if given_first != first:
        raise ValueSectionError(f"value rows out of order: expected row {first}, got {given_first}")
    if first + count > MAX_VALUE_ROWS:
        raise ValueSectionError("more value rows than a detail index can name")
    offset = SECTION_HEADER.size
    if len(view) < offset + 8 * count:
        raise ValueSectionError("a value section is shorter than its row count says")
    bases = array("i")
    bases.frombytes(view[offset : offset + 4 * count])
    offset += 4 * count
    lengths = array("I")
    lengths.frombytes(view[offset : offset + 4 * count])
    offset += 4 * count
    if _SWAP:
        bases.byteswap()
        lengths.byteswap()
    if len(view) - offset != sum(lengths):
        raise ValueSectionError("a value section's texts do not match their lengths")
    if count and (min(bases) < 0 or max(bases) >= detail_count):
        raise ValueSectionError("a value row refers to a detail that does not exist")
    return bases, lengths, view[offset:]


class ValueRows:
    """The value rows of a trace: bases, text end offsets and the texts, without an object per
    row. A row becomes a dict only when it is read."""

    def __init__(self) -> None:
        self.bases = array("i")
        self.lengths = array("I")  # each row's text length, as a saved trace holds them
        self.texts = bytearray()
        # where each row's text ends in `texts`: worked out from `lengths` when rows are read
        # (a traced run that is only saved never reads one)
        self._ends = array("q")

    def __len__(self) -> int:
        return len(self.bases)

    def row(self, number: int) -> tuple[int, str]:
        """(base detail index, text) of value row `number` (counted from 0)."""
        if not 0 <= number < len(self.bases):
            raise IndexError(f"value row {number} does not exist")
        return self.bases[number], self.text(number)

    def text(self, number: int) -> str:
        """The text of value row `number`, which exists. Where rows' texts end is worked out
        only as far as this row: a run's loop lane, read at its end, is among the first rows
        of 100k."""
        ends = self._ends
        if len(ends) <= number:
            self._extend_ends(number + 1)
        start = ends[number - 1] if number else 0
        return self.texts[start : ends[number]].decode("utf-8", "replace")

    def extend_encoded(self, section: bytes | memoryview, detail_count: int) -> None:
        """Appends a section that must follow on from the rows already here and refer only to
        the first `detail_count` details; ValueSectionError says what is wrong otherwise."""
        self.append(decode_values(section, len(self.bases), detail_count))

    def append(self, rows: DecodedValues) -> None:
        """Appends rows `decode_values` checked."""
        bases, lengths, texts = rows
        self.bases.extend(bases)
        self.lengths.extend(lengths)
        self.texts += texts

    @property
    def ends(self) -> array[int]:
        """Where each row's text ends in `texts` (an array("q"), one entry a row)."""
        self._extend_ends(len(self.lengths))
        return self._ends

    def _extend_ends(self, count: int) -> None:
        """Works out where the first `count` rows' texts end."""
        ends = self._ends
        done = len(ends)
        if done < count:
            ends.extend(islice(accumulate(memoryview(self.lengths)[done:count],
                                          initial=ends[-1] if done else 0), 1, None))

    def encode(self) -> bytes:
        """Every row as one section (what a saved trace holds); b"" when there are none."""
        return b"".join(self.encoded_pieces())

    def encoded_pieces(self, rows_per_piece: int = 1 << 18) -> Iterator[bytes | memoryview]:
        """The section `encode` gives, in pieces of at most `rows_per_piece` rows' worth (views
        of the rows where the bytes are the same), so a big trace is saved without a copy."""
        count = len(self.bases)
        if not count:
            return
        yield SECTION_HEADER.pack(0, count)
        for start in range(0, count, rows_per_piece):
            if _SWAP:
                bases = self.bases[start : start + rows_per_piece]
                bases.byteswap()
                yield bases.tobytes()
            else:
                yield memoryview(self.bases)[start : start + rows_per_piece]
        for start in range(0, count, rows_per_piece):
            if _SWAP:
                lengths = self.lengths[start : start + rows_per_piece]
                lengths.byteswap()
                yield lengths.tobytes()
            else:
                yield memoryview(self.lengths)[start : start + rows_per_piece]
        texts = memoryview(self.texts)
        piece = 64 * rows_per_piece
        for start in range(0, len(texts), piece):
            yield texts[start : start + piece]


def value_detail(base: dict[str, Any], text: str) -> dict[str, Any]:
    """How a value row reads: its base detail with the value added, under "value" at the end,
    or under the key the base names as its "value_key", in that entry's place (a printed
    line's row reads as {..., "text": line}, a lane's spawn as {"name": name, "kind": ...}).
    A base that names its key as "int_key" instead holds an integer written in decimal (a
    sleep's {"delay_s": d, "deadline_ns": t}): it reads as that int, or None when the text is
    not one a detail may hold (trace_checks: an int64)."""
    key = base.get("value_key")
    if key is None:
        key = base.get("int_key")
        if key is None:
            return {**base, "value": text}
        return _keyed_row(base, "int_key", str(key), int_of_text(text))
    return _keyed_row(base, "value_key", str(key), text)


def _keyed_row(base: dict[str, Any], marker: str, key: str, value: object) -> dict[str, Any]:
    """`base` with its `marker` entry replaced by key: value."""
    row: dict[str, Any] = {}
    for name, entry in base.items():
        if name == marker:
            row[key] = value
        else:
            row[name] = entry
    return row


_INT64 = 1 << 63


def int_of_text(text: str) -> int | None:
    """The int64 a value row of an "int_key" base holds ("-12", "345"), None for any other
    text (a damaged trace: readers take a missing deadline as unknown)."""
    digits = text[1:] if text[:1] == "-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        return None
    number = int(text)
    return number if -_INT64 <= number < _INT64 else None
