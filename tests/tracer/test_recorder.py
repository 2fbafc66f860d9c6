"""The Recorder: batches in sequence order, tables sent once, the flush timer, interning."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from loopscope.tracer.events import (
    NO_DETAIL,
    NO_LANE,
    NO_SOURCE,
    Batch,
    Code,
    Detail,
    FakeClock,
    LaneKind,
    Source,
)
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Trace
from loopscope.tracer.values import VALUE_ROW


@dataclass
class Logged:
    """A batch as the log keeps it: its events as rows."""

    first_seq: int
    rows: list[tuple[int, ...]]
    new_details: list[Detail]
    new_sources: list[Source]
    new_values: bytes = b""


@dataclass
class BatchLog:
    """A sink that keeps every batch as rows, to compare with what was recorded."""

    batches: list[Logged] = field(default_factory=list)

    def write_batch(self, batch: Batch) -> None:
        rows = [tuple(int(v) for v in row) for row in zip(*batch.columns, strict=True)]
        self.batches.append(Logged(batch.first_seq, rows, list(batch.new_details),
                                   list(batch.new_sources), batch.new_values))


def test_events_go_out_in_full_batches_in_sequence_order() -> None:
    log = BatchLog()
    clock = FakeClock(tick_ns=10)
    recorder = Recorder(log, clock=clock, batch_size=4)  # the origin takes the clock's 0

    for lane in range(10):
        recorder.record(lane, Code.RUNNING)

    assert [(b.first_seq, len(b.rows)) for b in log.batches] == [(0, 4), (4, 4)]
    assert recorder.event_count == 10
    recorder.close()
    assert [(b.first_seq, len(b.rows)) for b in log.batches] == [(0, 4), (4, 4), (8, 2)]
    rows = [row for batch in log.batches for row in batch.rows]
    assert rows == [
        (10 * (lane + 1), lane, Code.RUNNING, NO_LANE, NO_DETAIL, NO_SOURCE)
        for lane in range(10)
    ]


def test_flush_sends_what_is_pending_and_nothing_when_nothing_is() -> None:
    log = BatchLog()
    recorder = Recorder(log, clock=FakeClock(), batch_size=100)
    recorder.record(0, Code.RUNNING)

    recorder.flush()
    recorder.flush()

    assert [(b.first_seq, len(b.rows)) for b in log.batches] == [(0, 1)]


def test_table_rows_go_out_once_with_the_first_batch_that_may_use_them() -> None:
    log = BatchLog()
    recorder = Recorder(log, clock=FakeClock(), batch_size=2)

    lane = recorder.spawn("main", LaneKind.MAIN)
    recorder.state(lane, Code.IO_WAIT, ("fd", 3, "mode", "read"),
                   source=recorder.source("a.py", 3, "f"))
    recorder.state(lane, Code.IO_WAIT, ("fd", 3, "mode", "read"))
    recorder.state(lane, Code.SLEEPING, ("delay_s", 0.5))
    recorder.close()

    # a lane's name is a value row on its kind's base detail (one base for every such lane)
    assert [b.new_details for b in log.batches] == [
        [("value_key", "name", "kind", "main"), ("fd", 3, "mode", "read")],
        [("delay_s", 0.5)],
    ]
    assert [b.new_sources for b in log.batches] == [[("a.py", 3, "f")], []]
    details = [row[4] for batch in log.batches for row in batch.rows]
    assert details == [VALUE_ROW, 2, 2, 3]


def test_details_and_sources_are_interned() -> None:
    recorder = Recorder(BatchLog(), clock=FakeClock())

    first = recorder.detail(("fd", 1))
    assert recorder.detail(("fd", 1)) == first
    assert recorder.detail(("fd", 2)) == first + 1
    assert recorder.detail(()) == NO_DETAIL
    code = test_details_and_sources_are_interned.__code__
    line = code.co_firstlineno
    source = recorder.source_of(code, line)
    assert recorder.source_of(code, line) == source
    assert recorder.source(code.co_filename, line, code.co_qualname) == source
    assert recorder.source_of(code, line + 1) == source + 1
    assert recorder.source_of(code, None) == source + 2


def test_helpers_write_the_documented_events() -> None:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))

    loop = recorder.spawn("loop", LaneKind.LOOP)
    task = recorder.spawn("task", LaneKind.TASK, parent=loop, extra=("coro", "main()"))
    recorder.wake(task, loop, ("cause", "timer"))
    recorder.switch(task, loop, ("via", "yield"))
    recorder.annotate(loop, ("readable", (4,)))
    recorder.end(task, result=[1, 2])
    recorder.end(loop, error=RuntimeError("it broke"))
    recorder.close()

    assert [(e.kind, e.lane, e.other, e.detail) for e in trace.events()] == [
        ("spawn", 0, -1, {"name": "loop", "kind": "loop"}),
        ("spawn", 1, 0, {"name": "task", "kind": "task", "coro": "main()"}),
        ("wake", 1, 0, {"cause": "timer"}),
        ("ready", 1, 0, {"cause": "timer"}),
        ("switch", 1, 0, {"via": "yield"}),
        ("annotate", 0, -1, {"readable": [4]}),
        ("end", 1, -1, {"result": "[1, 2]"}),
        ("end", 0, -1, {"error": "RuntimeError: it broke"}),
    ]
    assert list(trace.ts) == list(range(1, 9))


def test_the_flush_timer_makes_the_next_event_flush_a_small_batch() -> None:
    log = BatchLog()
    recorder = Recorder(log, clock=FakeClock(), batch_size=1_000_000)
    recorder.record(0, Code.RUNNING)
    recorder.start_flush_timer(interval=0.01)

    # The timer thread never flushes by itself: only an event recorded after it fired does.
    deadline = time.monotonic() + 30
    recorded = 1
    while not log.batches and time.monotonic() < deadline:
        time.sleep(0.02)
        recorder.record(0, Code.READY)
        recorded += 1
    recorder.close()

    assert log.batches, "the flush timer never lowered the threshold"
    first = log.batches[0]
    assert (first.first_seq, len(first.rows)) == (0, recorded)
    assert sum(len(b.rows) for b in log.batches) == recorded


def test_close_flushes_once_and_marks_the_recorder_closed() -> None:
    log = BatchLog()
    recorder = Recorder(log, clock=FakeClock())
    recorder.record(0, Code.RUNNING)

    recorder.close()
    recorder.close()

    assert recorder.closed
    assert [(b.first_seq, len(b.rows)) for b in log.batches] == [(0, 1)]


def test_value_rows_go_out_with_the_batch_of_their_events_and_read_as_base_plus_value() -> None:
    log = BatchLog()
    recorder = Recorder(log, clock=FakeClock(tick_ns=10), batch_size=3)
    sent = recorder.detail(("via", "send"))
    texts = [str(n) for n in range(7)] + ["'naïve'", ""]
    indexes = []
    for text in texts:
        index = recorder.value_row(sent, text)
        indexes.append(index)
        recorder.record(0, Code.SWITCH, 1, index)
    recorder.close()

    assert indexes == [VALUE_ROW + n for n in range(len(texts))]
    # each batch carries exactly the rows its events name, numbered on from the last batch
    trace = Trace()
    for batch in log.batches:
        columns = tuple(list(column) for column in zip(*batch.rows, strict=True))
        trace.write_batch(Batch(batch.first_seq, columns, batch.new_details,
                                batch.new_sources, batch.new_values))
        named = {row[4] for row in batch.rows}
        assert len(trace.details.values) == max(named) - VALUE_ROW + 1
    assert [trace.details[index] for index in trace.detail] == [
        {"via": "send", "value": text} for text in texts]


def test_no_two_lanes_share_a_name() -> None:
    trace = Trace()
    recorder = Recorder(trace)
    first = recorder.spawn("asyncio loop", LaneKind.LOOP)
    second = recorder.spawn("asyncio loop", LaneKind.LOOP)
    third = recorder.spawn("asyncio loop", LaneKind.LOOP)
    taken = recorder.spawn("asyncio loop #2", LaneKind.LOOP)  # a program's own name, taken
    recorder.close()
    assert [trace.lane_name(lane) for lane in (first, second, third, taken)] == [
        "asyncio loop", "asyncio loop #2", "asyncio loop #3", "asyncio loop #2 #2"]


def test_a_taken_name_is_numbered_past_the_numbers_the_program_took() -> None:
    trace = Trace()
    recorder = Recorder(trace)
    lanes = [recorder.spawn(name, LaneKind.TASK)
             for name in ("job #2", "job", "job", "job", "job #2")]
    # more names than the name table first holds, each taken three times
    many = [recorder.spawn(f"t{n % 300}", LaneKind.TASK) for n in range(900)]
    recorder.close()
    assert [trace.lane_name(lane) for lane in lanes] == [
        "job #2", "job", "job #3", "job #4", "job #2 #2"]
    assert [trace.lane_name(lane) for lane in many] == (
        [f"t{n}" for n in range(300)] + [f"t{n} #2" for n in range(300)]
        + [f"t{n} #3" for n in range(300)])


def test_asyncio_s_task_names_are_told_apart_by_their_task_numbers() -> None:
    trace = Trace()
    recorder = Recorder(trace)
    # asyncio's names, the first thousands of numbers and one far past the bits first kept
    made = [f"fetch (Task-{n})" for n in (*range(1, 3000), 100_000, 16_777_215)]
    again = ["fetch (Task-5)",       # the same name: numbered
             "other (Task-5)",       # another task's name showing the same number: numbered too
             "other (Task-5)",       # and again
             "fetch (Task-5) #2",    # the program's own, taken by now
             "外 (Task-100001)", "外 (Task-100001)",  # wide text reads the same
             "外 (Task-100002)", "另 (Task-100002)",
             "other (Task-16777215)"]  # the last number kept apart
    # names like any other, another name with the same number left as it is: not how asyncio
    # writes a number, past the numbers kept apart, more digits than kept
    # (112345678's last eight digits would be a number kept apart)
    for text in ("{} (Task-05)", "{} (Task-16777216)", "{} (Task-112345678)", "{} (task-7)",
                 "{} (Task-7 )", "{} (Task-)", "{}(Task-8)"):
        again += [text.format("fetch"), text.format("other"), text.format("外")]
    lanes = [recorder.spawn(name, LaneKind.TASK) for name in made + again]
    recorder.close()
    names = [trace.lane_name(lane) for lane in lanes]
    assert names[:len(made)] == made
    assert names[len(made):] == [
        "fetch (Task-5) #2", "other (Task-5) #2", "other (Task-5) #3", "fetch (Task-5) #2 #2",
        "外 (Task-100001)", "外 (Task-100001) #2", "外 (Task-100002)", "另 (Task-100002) #2",
        "other (Task-16777215) #2", *again[9:]]


def test_names_beyond_latin_1_are_told_apart_and_numbered_alike() -> None:
    trace = Trace()
    recorder = Recorder(trace)
    # U+0041, U+0141 and U+0241 share their low byte; the last two, 4-byte characters too
    names = ["Ax", "\u0141x", "\u0241x", "\U0001F600x", "\U0002F600x", "\u0141x", "\U0001F600x"]
    lanes = [recorder.spawn(name, LaneKind.TASK) for name in names]
    recorder.close()
    assert [trace.lane_name(lane) for lane in lanes] == [
        *names[:5], "\u0141x #2", "\U0001F600x #2"]


def test_many_lanes_of_one_kind_share_one_interned_detail() -> None:
    log = BatchLog()
    recorder = Recorder(log, clock=FakeClock())
    lanes = [recorder.spawn(f"work() (Task-{n})", LaneKind.TASK, extra=("coro", "work"))
             for n in range(500)]
    recorder.close()

    assert [d for b in log.batches for d in b.new_details] == [
        ("value_key", "name", "kind", "task", "coro", "work")]
    trace = Trace()
    for batch in log.batches:
        columns = tuple(list(column) for column in zip(*batch.rows, strict=True))
        trace.write_batch(Batch(batch.first_seq, columns, batch.new_details,
                                batch.new_sources, batch.new_values))
    assert [(info.id, info.name, info.kind) for info in trace.lanes] == [
        (lane, f"work() (Task-{lane})", "task") for lane in lanes]
    assert list(trace.event(0).detail.items()) == [
        ("name", "work() (Task-0)"), ("kind", "task"), ("coro", "work")]


def test_a_lane_named_by_an_interned_detail_still_reads_as_before() -> None:
    # traces saved before lane names became value rows
    trace = Trace()
    columns = ([5], [0], [int(Code.SPAWN)], [NO_LANE], [1], [0])
    trace.write_batch(Batch(0, columns, [("name", "main", "kind", "main")], []))
    assert [(info.name, info.kind) for info in trace.lanes] == [("main", "main")]
