"""A recorded run held in columns: the parent's copy of everything a child streamed.

A Trace is also a BatchSink, so a Recorder can write straight into one in-process (tests do).
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from itertools import compress, repeat
from operator import itemgetter, sub
from typing import Any, SupportsIndex, overload

from loopscope.tracer.events import (
    NO_LANE,
    Batch,
    Code,
    Source,
    detail_to_dict,
)
from loopscope.tracer.samples import Samples
from loopscope.tracer.trace_rows import Event as Event  # re-exported: its home for readers
from loopscope.tracer.trace_rows import LaneInfo as LaneInfo
from loopscope.tracer.values import VALUE_ROW, ValueRows, decode_values, value_detail


class SequenceGapError(Exception):
    """A batch did not start where the previous one ended: events were lost."""


_list_item = list.__getitem__
_list_slice: Callable[[list[dict[str, Any]], slice], list[dict[str, Any]]] = list.__getitem__


def rows_json(value: Any) -> str:
    """JSON as a saved trace holds it: compact, not ASCII-escaped, anything else its repr."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)


class DetailTable(list[dict[str, Any]]):
    """The interned details by index; indexes from VALUE_ROW up read the value rows in `values`
    (as their base detail plus the value), so one lookup serves every detail column entry."""

    def __init__(self, rows: Iterable[dict[str, Any]] = (), values: ValueRows | None = None
                 ) -> None:
        super().__init__(rows)
        self.values = values if values is not None else ValueRows()
        # the first rows as a saved trace's JSON holds them (encode_ahead), in pieces
        self._encoded: list[str] = []
        self._encoded_rows = 0

    def encode_ahead(self) -> None:
        """Encodes the rows added since the last call as a saved trace holds them (`json`),
        so that a save at the end of a run need not: a command that will save calls this as
        batches land, while its child runs. The rows must not change afterwards (they never
        do: a trace only grows)."""
        done = len(self)
        if self._encoded_rows < done:
            text = rows_json(_list_slice(self, slice(self._encoded_rows, done)))
            self._encoded.append(text[1:-1])  # the rows without the list's brackets
            self._encoded_rows = done

    def json(self) -> str:
        """The rows as one JSON list (`rows_json`), the encoded ones not encoded again."""
        if not self._encoded_rows or self._encoded_rows > len(self):
            return rows_json(list(self))
        rest = _list_slice(self, slice(self._encoded_rows, None))
        pieces = [*self._encoded, rows_json(rest)[1:-1]] if rest else self._encoded
        return f"[{','.join(pieces)}]"

    @overload
    def __getitem__(self, index: SupportsIndex) -> dict[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if index.__class__ is not int or index < VALUE_ROW:  # the usual case first
            return _list_item(self, index)
        base, text = self.values.row(index - VALUE_ROW)  # type: ignore[operator]
        return value_detail(_list_item(self, base), text)

    def lane_facts(self, index: int) -> tuple[str | None, str]:
        """(name, kind) of a SPAWN's detail, without building its dict: a spawn detail is a
        value row whose text is the lane's name (Recorder.spawn), or in older traces an
        interned {"name": ..., "kind": ...}."""
        if index < VALUE_ROW:
            row = _list_item(self, index)
            name = row.get("name")
            return (None if name is None else str(name)), str(row.get("kind", ""))
        values = self.values
        number = index - VALUE_ROW
        if not 0 <= number < len(values.bases):
            raise IndexError(f"value row {number} does not exist")
        base = _list_item(self, values.bases[number])
        if base.get("value_key") != "name":
            name = base.get("name")
            return (None if name is None else str(name)), str(base.get("kind", ""))
        return values.text(number), str(base.get("kind", ""))

    def is_valid(self, index: int) -> bool:
        """Whether a detail column entry names a row that exists."""
        if index >= VALUE_ROW:
            return index - VALUE_ROW < len(self.values)
        return 0 <= index < len(self)


def _speedups() -> Any:
    """tracer._speedups, None without the C extension (imported at first use: the recorder
    module, which finds the extension, imports this one)."""
    from loopscope.tracer.recorder import SPEEDUPS

    return SPEEDUPS


def _int32s(column: object) -> bool:
    return isinstance(column, array) and column.typecode == "i"


def _items(values: Sequence[int], indexes: Sequence[int]) -> tuple[int, ...]:
    """values[i] for each of the (one or more) indexes, in a loop in C."""
    found = itemgetter(*indexes)(values)
    return found if len(indexes) > 1 else (found,)


class SpawnedLanes(Sequence[LaneInfo]):
    """A trace's lanes in spawn order, held as the sequence numbers of their SPAWN events.

    A program with 100k tasks has 100k lanes, and most runs never look at most of them (the
    CLI saves them, a report counts them): each LaneInfo is built when it is read, from the
    SPAWN event's columns and its detail (a value row whose text is the lane's name,
    Recorder.spawn; in older traces an interned {"name": ..., "kind": ...})."""

    __slots__ = ("_bases", "_built", "_kinds", "_seqs", "_trace")

    def __init__(self, trace: Trace) -> None:
        self._trace = trace
        self._seqs = array("q")
        # lane position -> its LaneInfo once read: the app reads the same lanes every frame
        self._built: dict[int, LaneInfo] = {}
        # base detail index -> the kind of the lanes whose value rows use it
        self._kinds: dict[int, str] = {}
        # the base detail row of each lane's SPAWN value row, as far as of_kinds has looked
        self._bases = array("i")

    def find_spawns(self, start: int) -> SpawnedLanes:
        """Adds the lanes spawned from event `start` on; returns itself."""
        spawn = Code.SPAWN
        speedups = _speedups()
        if speedups is not None:  # one pass in C, where built
            self._seqs.frombytes(speedups.code_positions(self._trace.code, spawn, start))
            return self
        codes = self._trace.code[start:].tobytes()  # one byte per event: find() walks it in C
        append = self._seqs.append
        find = codes.find
        at = find(spawn)
        while at >= 0:
            append(start + at)
            at = find(spawn, at + 1)
        return self

    def __len__(self) -> int:
        return len(self._seqs)

    @overload
    def __getitem__(self, index: SupportsIndex) -> LaneInfo: ...
    @overload
    def __getitem__(self, index: slice) -> list[LaneInfo]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> LaneInfo | list[LaneInfo]:
        if isinstance(index, slice):
            return [self._read(position) for position in range(len(self._seqs))[index]]
        position = index.__index__()
        if position < 0:
            position += len(self._seqs)
        if not 0 <= position < len(self._seqs):
            raise IndexError("lane index out of range")
        return self._read(position)

    def __iter__(self) -> Iterator[LaneInfo]:
        read = self._read
        for position in range(len(self._seqs)):
            yield read(position)

    def _read(self, position: int) -> LaneInfo:
        info = self._built.get(position)
        if info is None:
            info = self._built[position] = self._info(self._seqs[position])
        return info

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to lists, so unhashable like them

    def __repr__(self) -> str:
        return f"SpawnedLanes({len(self)} lanes)"

    def of_kinds(self, kinds: Container[str]) -> Iterator[LaneInfo]:
        """The lanes of these kinds, in spawn order; only theirs are built (whether a run of
        100k task lanes has a generator lane costs no LaneInfo)."""
        read = self._read
        bases = self._spawn_bases()
        if bases is None:  # some lane's SPAWN detail is interned: each looked at in turn
            kind_of = self._kind_of
            for position, seq in enumerate(self._seqs):
                if kind_of(seq) in kinds:
                    yield read(position)
            return
        # A value row's lane has its base row's kind, and a run's lanes share a few bases:
        # the bases of these kinds are found first, then their lanes with loops in C.
        details = self._trace.details
        wanted = {base for base in set(bases)
                  if str(_list_item(details, base).get("kind", "")) in kinds}
        if wanted:
            for position in compress(range(len(bases)), map(wanted.__contains__, bases)):
                yield read(position)

    def _spawn_bases(self) -> array[int] | None:
        """The base detail row of each lane's SPAWN detail (all value rows), in spawn order;
        None when some lane's SPAWN detail is an interned row."""
        seqs, bases = self._seqs, self._bases
        if len(bases) < len(seqs):
            detail, rows = self._trace.detail, self._trace.details.values.bases
            speedups = _speedups()
            if speedups is not None and _int32s(detail) and _int32s(rows):  # in C, where built
                found = speedups.value_bases(detail, seqs[len(bases) :], rows, VALUE_ROW)
                if found is None:
                    return None
                bases.frombytes(found)
                return bases
            indexes = _items(detail, seqs[len(bases) :])
            if min(indexes) < VALUE_ROW:
                return None
            bases.extend(_items(rows, list(map(sub, indexes, repeat(VALUE_ROW)))))
        return bases

    def _kind_of(self, seq: int) -> str:
        kind = self._value_row_kind(self._trace.detail[seq])
        return kind if kind is not None else self._trace.details.lane_facts(
            self._trace.detail[seq])[1]

    def _value_row_kind(self, index: int) -> str | None:
        """The kind of a lane whose SPAWN detail `index` is a value row, None for an interned
        detail (traces from before lane names were value rows)."""
        bases = self._trace.details.values.bases
        number = index - VALUE_ROW
        base = bases[number] if 0 <= number < len(bases) else -1
        kind = self._kinds.get(base) if base >= 0 else None
        if kind is None and base >= 0:
            row = _list_item(self._trace.details, base)
            if row.get("value_key") == "name":
                kind = self._kinds[base] = str(row.get("kind", ""))
        return kind

    def _info(self, seq: int) -> LaneInfo:
        trace = self._trace
        lane, index = trace.lane[seq], trace.detail[seq]
        details = trace.details
        values = details.values
        number = index - VALUE_ROW
        kind = self._value_row_kind(index)
        name: str | None
        if kind is not None:
            name = values.text(number)
        else:  # an interned detail: traces from before lane names were value rows
            name, kind = details.lane_facts(index)
        return LaneInfo(lane, name if name is not None else f"lane {lane}", kind,
                        trace.other[seq], seq, trace.ts[seq])


class Trace:
    """Columns of events plus the interned tables they index into.

    A plain class, not a dataclass: the child imports this module, and `dataclasses` (with
    `inspect`) is a good part of what a traced one-liner's start-up would import."""

    def __init__(
        self,
        ts: array[int] | None = None,
        lane: array[int] | None = None,
        code: array[int] | None = None,
        other: array[int] | None = None,
        detail: array[int] | None = None,
        source: array[int] | None = None,
        details: Iterable[dict[str, Any]] | None = None,
        sources: list[Source] | None = None,
        lanes: list[LaneInfo] | SpawnedLanes | None = None,
        meta: dict[str, Any] | None = None,
        samples: Samples | None = None,
        listeners: list[Callable[[int, int], None]] | None = None,
    ) -> None:
        self.ts = array("q") if ts is None else ts
        self.lane = array("i") if lane is None else lane
        self.code = array("b") if code is None else code
        self.other = array("i") if other is None else other
        self.detail = array("i") if detail is None else detail
        self.source = array("i") if source is None else source
        self.details = (details if isinstance(details, DetailTable)  # else a list of dicts
                        else DetailTable([{}] if details is None else details))
        self.sources: list[Source] = [("", 0, "")] if sources is None else sources
        # the lanes in spawn order: found from the SPAWN events as batches land
        self.lanes: list[LaneInfo] | SpawnedLanes = SpawnedLanes(self) if lanes is None else lanes
        # What the run was and how it ended: target, model, python, status, exit_code, stderr,
        # error, dropped. Written by the runner; saved and reloaded with the events.
        self.meta: dict[str, Any] = {} if meta is None else meta
        # Stacks the child sampled while steps ran long (tracer.samples); empty for most runs.
        self.samples = Samples() if samples is None else samples
        # Called with (first_seq, count) after each batch lands; the live UI listens here.
        self.listeners: list[Callable[[int, int], None]] = [] if listeners is None else listeners
        # The columns' segments deflated while the child ran, for a native save at the end
        # (tracer.native.DeflateAhead); None when nothing will be saved, or not yet.
        self.deflated_ahead: object | None = None

    def __repr__(self) -> str:
        return f"Trace(meta={self.meta!r})"

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def duration_ns(self) -> int:
        return self.ts[-1] if self.ts else 0

    @property
    def first_event_ns(self) -> int:
        """Where the program's clock starts: its first event (a child records nothing while it
        starts up). The times people read (the axis, the narration, the details) count from
        here; the recorded ones count from the recorder's start."""
        return self.ts[0] if self.ts else 0

    # -- filling ------------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> None:
        first_seq, columns, new_details, new_sources, new_values = batch
        details = [detail_to_dict(d) for d in new_details]
        # checked before anything is added: a refused batch leaves the trace as it was
        values = (decode_values(new_values, len(self.details.values),
                                len(self.details) + len(details)) if new_values else None)
        self.details.extend(details)
        self.sources.extend(tuple(s) for s in new_sources)  # type: ignore[misc]
        if values is not None:
            self.details.values.append(values)
        self.extend_columns(first_seq, columns)

    def extend_columns(self, first_seq: int, columns: tuple[Sequence[int], ...]) -> None:
        """Appends a batch whose tables are already in place; checks it follows on."""
        if first_seq != len(self.ts):
            raise SequenceGapError(
                f"event stream gap: expected sequence {len(self.ts)}, got {first_seq}"
            )
        ts, lane, code, other, detail, source = columns
        start = len(self.ts)
        self.ts.extend(ts)
        self.lane.extend(lane)
        self.code.extend(code)
        self.other.extend(other)
        self.detail.extend(detail)
        self.source.extend(source)
        self._index_spawns(start)
        for listener in list(self.listeners):
            listener(first_seq, len(self.ts) - start)

    @classmethod
    def from_columns(cls, columns: tuple[array[int], ...], details: DetailTable,
                     sources: list[Source], meta: dict[str, Any]) -> Trace:
        """A finished trace made of checked columns, which it takes over without a copy."""
        ts, lane, code, other, detail, source = columns
        trace = cls(ts, lane, code, other, detail, source, details, sources, meta=meta)
        trace._index_spawns(0)
        return trace

    def _index_spawns(self, start: int) -> None:
        lanes = self.lanes
        if isinstance(lanes, SpawnedLanes):
            lanes.find_spawns(start)
        else:  # a list given to the constructor (held_time's copy): kept as a list
            lanes.extend(SpawnedLanes(self).find_spawns(start))

    def write_samples(self, payload: dict[str, Any]) -> None:
        """A sink's samples (an in-process recorder writing straight into this trace)."""
        self.samples.apply_payload(payload)

    # -- reading ------------------------------------------------------------------------

    def event(self, seq: int) -> Event:
        source_index = self.source[seq]
        return Event(
            seq=seq,
            ts=self.ts[seq],
            lane=self.lane[seq],
            code=self.code[seq],
            other=self.other[seq],
            detail=self.details[self.detail[seq]],
            source=self.sources[source_index] if source_index else None,
        )

    def events(self, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        for seq in range(start, len(self.ts) if stop is None else stop):
            yield self.event(seq)

    def lane_info(self, lane: int) -> LaneInfo:
        """The lane with this id (ids are dense and in spawn order)."""
        info = self.lanes[lane]
        if info.id != lane:  # a recorder that numbered lanes otherwise; fall back to a search
            return next(i for i in self.lanes if i.id == lane)
        return info

    def lane_name(self, lane: int) -> str:
        if lane == NO_LANE:
            return "?"
        try:
            return self.lane_info(lane).name
        except (IndexError, StopIteration):
            return f"lane {lane}"
