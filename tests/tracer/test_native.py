"""The native trace file: lossless, byte-stable, and one clear error for anything else."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from loopscope.tracer.events import (
    NO_DETAIL,
    NO_LANE,
    NO_SOURCE,
    Batch,
    Code,
    FakeClock,
    LaneKind,
)
from loopscope.tracer.native import (
    FORMAT_VERSION,
    NATIVE_MAGIC,
    DeflateAhead,
    NativeFormatError,
    decode_trace,
    encode_trace,
    is_trace_file,
    load_native,
    save_native,
)
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.runner import RunResult
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace
from loopscope.tracer.values import VALUE_ROW


def _hand_built(halfway: Callable[[Trace], None] | None = None,
                trace: Trace | None = None) -> Trace:
    """A small trace with every kind of row; `halfway(trace)` is called after its first
    events (each batch of a child's reaches the trace as the recorder flushes)."""
    trace = Trace() if trace is None else trace
    clock = FakeClock(tick_ns=1_500)
    rec = Recorder(trace, clock=clock, batch_size=4)  # several batches, as from a child
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    task = rec.spawn("fetch-1 (Task-2)", LaneKind.TASK, parent=loop, extra=("coro", "fetch()"))
    rec.wake(task, loop, ("cause", "spawn"))
    rec.state(task, Code.RUNNING, source=rec.source("/tmp/ünïcode.py", 12, "fetch"))
    rec.state(task, Code.IO_WAIT, ("fd", 7, "mode", "read", "peer", "127.0.0.1:40123"))
    rec.state(loop, Code.POLL, ("timeout_s", None))
    clock.advance(123_456_789)
    rec.annotate(loop, ("readable", (7,), "writable", ()))
    rec.wake(task, loop, ("cause", "fd", "fd", 7, "mode", "read"))
    rec.state(task, Code.SLEEPING, ("delay_s", 0.1, "deadline_ns", 223_456_789))
    if halfway is not None:
        halfway(trace)
    rec.record(task, Code.OUTPUT, detail=rec.detail(("text", "naïve “quotes” \\ and \t tabs")))
    sent = rec.detail(("via", "send"))
    for text in ("1", "'ünï'", "b'\\x00'"):
        rec.handoff(loop, task, rec.value_row(sent, text), Code.BLOCKED, NO_DETAIL, NO_SOURCE)
    rec.end(task, error=ValueError("bad value"))
    rec.close()
    trace.meta.update(target="hand-built", model="asyncio", status="ok", exit_code=0,
                      ratio=0.1 + 0.2, nothing=None)
    return trace


def _same(left: Trace, right: Trace) -> None:
    for column in ("ts", "lane", "code", "other", "detail", "source"):
        assert getattr(left, column) == getattr(right, column), column
    assert left.details == right.details
    assert [left.details[d] for d in left.detail] == [right.details[d] for d in right.detail]
    assert left.sources == right.sources
    assert left.meta == right.meta
    assert left.lanes == right.lanes


def test_save_load_save_gives_the_same_trace_and_the_same_bytes(tmp_path: Path) -> None:
    original = _hand_built()
    path = tmp_path / "run.loopscope"
    save_native(original, path)
    loaded = load_native(path)
    _same(original, loaded)
    assert [info.name for info in loaded.lanes] == ["asyncio loop", "fetch-1 (Task-2)"]
    values = [loaded.details[d] for d, code in zip(loaded.detail, loaded.code, strict=True)
              if d >= VALUE_ROW and code != Code.SPAWN]  # a spawn's name is a value row too
    assert values == [{"via": "send", "value": text} for text in ("1", "'ünï'", "b'\\x00'")]
    assert encode_trace(loaded) == path.read_bytes()
    assert is_trace_file(path)


def test_a_reloaded_trace_derives_the_same_spans() -> None:
    original = _hand_built()
    loaded = decode_trace(encode_trace(original))
    before, after = derive_spans(original), derive_spans(loaded)
    assert list(before.state) == list(after.state)
    assert list(before.start) == list(after.start)
    assert list(before.end) == list(after.end)
    assert before.annotated == after.annotated
    assert list(before.arrow_seq) == list(after.arrow_seq)


def test_an_empty_trace_round_trips() -> None:
    data = encode_trace(Trace())
    loaded = decode_trace(data)
    assert len(loaded) == 0 and loaded.lanes == [] and loaded.details == [{}]
    assert encode_trace(loaded) == data


def test_a_trace_from_a_real_child_round_trips_byte_for_byte(
    record_scenario: Callable[..., RunResult], tmp_path: Path
) -> None:
    received = record_scenario("producer-consumer").trace
    assert len(received) > 0
    path = tmp_path / "pc.loopscope"
    save_native(received, path)
    loaded = load_native(path)
    _same(received, loaded)
    again = tmp_path / "again.loopscope"
    save_native(loaded, again)
    assert again.read_bytes() == path.read_bytes()


def _assert_one_line_error(data: bytes, *expected_words: str) -> None:
    with pytest.raises(NativeFormatError) as caught:
        decode_trace(data, "t.loopscope")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("t.loopscope ")
    for word in expected_words:
        assert word in message


def test_a_file_that_is_not_a_trace_is_refused() -> None:
    _assert_one_line_error(b"print('hello')\n", "not a Loopscope trace")
    _assert_one_line_error(b"", "not a Loopscope trace")


def test_every_truncation_is_refused_with_one_line() -> None:
    data = encode_trace(_hand_built())
    for cut in [len(NATIVE_MAGIC) + 1, len(NATIVE_MAGIC) + 3, *range(20, len(data), 37),
                len(data) - 1]:
        with pytest.raises(NativeFormatError) as caught:
            decode_trace(data[:cut], "t.loopscope")
        assert "\n" not in str(caught.value)
        assert "truncated" in str(caught.value) or "corrupt" in str(caught.value)


def test_a_future_version_is_refused_with_both_versions_named() -> None:
    data = encode_trace(_hand_built())
    header_end = data.index(b"\n")
    future = NATIVE_MAGIC + f" {FORMAT_VERSION + 1}\n".encode() + data[header_end + 1 :]
    _assert_one_line_error(future, "newer Loopscope", str(FORMAT_VERSION + 1),
                           str(FORMAT_VERSION))


def test_a_mangled_version_line_or_body_is_refused() -> None:
    data = encode_trace(_hand_built())
    body = data[data.index(b"\n") + 1 :]
    _assert_one_line_error(NATIVE_MAGIC + b" x1\n" + body, "version line")
    _assert_one_line_error(NATIVE_MAGIC + b" 1\n" + zlib.compress(b"\x05\x00\x00\x00{}"),
                           "corrupt")
    inflated = zlib.decompress(body)
    # The last event (the source column comes last) pointing beyond the source table.
    wrong_index = inflated[:-4] + (10_000).to_bytes(4, "little")
    _assert_one_line_error(NATIVE_MAGIC + b" 1\n" + zlib.compress(wrong_index), "corrupt")
    _assert_one_line_error(NATIVE_MAGIC + b" 1\n" + zlib.compress(inflated + b"\x00"),
                           "corrupt")


def test_an_unreadable_path_is_a_format_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(NativeFormatError, match=r"cannot read .*missing\.loopscope"):
        load_native(tmp_path / "missing.loopscope")
    with pytest.raises(NativeFormatError, match="cannot read"):
        load_native(tmp_path)


def _body(data: bytes) -> tuple[bytes, bytes]:
    """(version line, decompressed body) of a saved trace."""
    newline = data.index(b"\n")
    return data[: newline + 1], zlib.decompress(data[newline + 1 :])


def _before_value_rows() -> Trace:
    """A trace as Loopscope made them before value rows: lane names in interned details."""
    trace = Trace()
    columns = ([1, 2, 3], [0, 1, 1], [int(Code.SPAWN), int(Code.SPAWN), int(Code.END)],
               [NO_LANE, 0, NO_LANE], [1, 2, 3], [0, 0, 0])
    trace.write_batch(Batch(0, columns, [("name", "loop", "kind", "loop"),
                                         ("name", "task", "kind", "task"), ("result", "None")],
                            []))
    return trace


def test_a_trace_without_value_rows_saves_as_format_1_for_older_readers() -> None:
    assert encode_trace(_before_value_rows()).startswith(NATIVE_MAGIC + b" 1\n")
    assert encode_trace(_hand_built()).startswith(NATIVE_MAGIC + f" {FORMAT_VERSION}\n".encode())


def test_a_format_1_file_from_before_value_rows_still_loads() -> None:
    original = _before_value_rows()
    _, body = _body(encode_trace(original))
    old = NATIVE_MAGIC + b" 1\n" + zlib.compress(body)
    loaded = decode_trace(old)
    _same(original, loaded)
    assert [(info.name, info.kind, info.parent) for info in loaded.lanes] == [
        ("loop", "loop", NO_LANE), ("task", "task", 0)]


def test_value_rows_that_do_not_add_up_are_refused_with_one_line() -> None:
    version, body = _body(encode_trace(_hand_built()))
    naming_a_missing_row = _hand_built()
    naming_a_missing_row.detail[-1] = VALUE_ROW + 99
    cases = {
        "texts cut short": body[:-1],
        "value rows in a format 1 file": body,
        "an event naming a value row that is not there":
            _body(encode_trace(naming_a_missing_row))[1],
    }
    for case, broken in cases.items():
        line = version if case != "value rows in a format 1 file" else NATIVE_MAGIC + b" 1\n"
        with pytest.raises(NativeFormatError, match="corrupt") as error:
            decode_trace(line + zlib.compress(broken))
        assert "\n" not in str(error.value), case


def test_printed_lines_are_value_rows_that_read_as_text_and_survive_a_reload(
        tmp_path: Path) -> None:
    trace = Trace()
    recorder = Recorder(trace)
    lane = recorder.spawn("main", LaneKind.MAIN)
    stdout_base = recorder.detail(("value_key", "text"))
    stderr_base = recorder.detail(("value_key", "text", "stream", "stderr"))
    recorder.record(lane, Code.OUTPUT, -1, recorder.value_row(stdout_base, "hello"))
    recorder.record(lane, Code.OUTPUT, -1, recorder.value_row(stderr_base, "oops"))
    recorder.close()
    saved = tmp_path / "printed.loopscope"
    save_native(trace, saved)
    for loaded in (trace, load_native(saved)):
        rows = [loaded.details[loaded.detail[seq]] for seq in range(len(loaded))
                if loaded.code[seq] == Code.OUTPUT]
        assert rows == [{"text": "hello"}, {"text": "oops", "stream": "stderr"}]


def test_a_sleeps_deadline_is_a_value_row_that_reads_as_an_int_and_survives_a_reload(
        tmp_path: Path) -> None:
    trace = Trace()
    recorder = Recorder(trace)
    lane = recorder.spawn("sleeper", LaneKind.TASK)
    slept = recorder.detail(("delay_s", 0.5, "int_key", "deadline_ns"))
    timer = recorder.detail(("cause", "timer", "int_key", "deadline_ns"))
    for text in ("1500000000", "-7", str((1 << 63) - 1), str(1 << 63), "12a", "", "\u0663"):
        recorder.record(lane, Code.SLEEPING, -1, recorder.value_row(slept, text))
    recorder.record(lane, Code.WAKE, 0, recorder.value_row(timer, "1500000000"))
    recorder.close()
    saved = tmp_path / "slept.loopscope"
    save_native(trace, saved)
    for loaded in (trace, load_native(saved)):
        rows = [loaded.details[detail] for detail in loaded.detail]
        # read as the detail rows they replace; a text that is no int64 reads as unknown
        assert rows[1:] == [
            {"delay_s": 0.5, "deadline_ns": 1_500_000_000}, {"delay_s": 0.5, "deadline_ns": -7},
            {"delay_s": 0.5, "deadline_ns": (1 << 63) - 1},
            *[{"delay_s": 0.5, "deadline_ns": None}] * 4,
            {"cause": "timer", "deadline_ns": 1_500_000_000}]


def _many_values(handoffs: int) -> Trace:
    trace = Trace()
    rec = Recorder(trace, clock=FakeClock(tick_ns=700), batch_size=512)
    main = rec.spawn("main", LaneKind.MAIN)
    worker = rec.spawn("worker", LaneKind.GENERATOR, parent=main)
    sent = rec.detail(("via", "send"))
    for k in range(handoffs):
        origin, target = (main, worker) if k % 2 == 0 else (worker, main)
        rec.handoff(origin, target, rec.value_row(sent, "ü" * (k % 5) + str(k)), Code.BLOCKED,
                    NO_DETAIL, rec.source("/src/gens.py", 1 + k % 7, "walk"))
    rec.close()
    trace.meta.update(target="many values", model="generator")
    return trace


def _encoded_in_one_piece(trace: Trace) -> bytes:
    """The file as the format defines it, built the plain way: every section joined, then
    compressed at once (what save_native wrote before it streamed)."""
    import json
    import struct
    from array import array

    header = json.dumps({"count": len(trace), "meta": trace.meta, "details": list(trace.details),
                         "sources": [list(source) for source in trace.sources]},
                        ensure_ascii=False, separators=(",", ":"), default=repr).encode()
    parts = [struct.pack("<I", len(header)), header]
    for typecode, name in zip("qibiii", ("ts", "lane", "code", "other", "detail", "source"),
                              strict=True):
        parts.append(array(typecode, getattr(trace, name)).tobytes())
    values = trace.details.values
    lengths = array("I", (end - start for start, end in
                          zip([0, *values.ends[:-1]], values.ends, strict=True)))
    parts += [struct.pack("<II", 0, len(values)), values.bases.tobytes(), lengths.tobytes(),
              bytes(values.texts)]
    return NATIVE_MAGIC + b" 2\n" + zlib.compress(b"".join(parts), 1)


def test_a_save_streamed_in_small_pieces_gives_the_bytes_of_a_save_in_one_piece(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The save compresses the columns and value rows a piece at a time, straight from where
    they are held; the file is byte for byte what compressing it all at once gives."""
    import loopscope.tracer.native as native

    trace = _many_values(3000)
    expected = _encoded_in_one_piece(trace)
    assert encode_trace(trace) == expected
    monkeypatch.setattr(native, "_PIECE", 1000)  # many pieces, none aligned to a row
    path = tmp_path / "pieces.loopscope"
    save_native(trace, path)
    assert path.read_bytes() == expected
    _same(trace, load_native(path))


@pytest.mark.parametrize("rows_per_piece", [1, 7, 2999, 3000, 1 << 18])
def test_value_rows_encode_the_same_in_any_piece_size(rows_per_piece: int) -> None:
    values = _many_values(3000).details.values
    pieces = b"".join(values.encoded_pieces(rows_per_piece))
    assert pieces == values.encode()
    assert len(pieces) == 8 + 8 * len(values) + len(values.texts)


@pytest.mark.parametrize("segment", [1000, 4096, "the whole body"])
def test_a_long_body_is_deflated_in_segments_any_zlib_reads_and_no_core_count_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, segment: int | str
) -> None:
    """A body longer than a segment is deflated a segment at a time on several threads and
    joined into one zlib stream: the file inflates (plain zlib) to the body the format
    defines, loads back as the trace, and is the same bytes whatever the number of threads
    or the size of the pieces the body is read in."""
    import loopscope.tracer.native as native

    trace = _many_values(3000)
    one_piece = _encoded_in_one_piece(trace)
    line, body = _body(one_piece)
    # "the whole body": one full segment, then an empty last one that ends the stream
    monkeypatch.setattr(native, "_SEGMENT", len(body) if isinstance(segment, str) else segment)
    files = []
    for workers, piece in ((1, 16 << 20), (2, 16 << 20), (3, 999)):
        monkeypatch.setattr(native, "_deflate_workers", lambda workers=workers: workers)
        monkeypatch.setattr(native, "_PIECE", piece)
        files.append(encode_trace(trace))
    assert files[0] == files[1] == files[2]
    assert files[0] != one_piece  # segmented indeed
    assert _body(files[0]) == (line, body)
    path = tmp_path / "segments.loopscope"
    save_native(trace, path)
    assert path.read_bytes() == files[0]
    _same(trace, load_native(path))


def _header_of(trace: Trace) -> str:
    import json

    header = {"count": len(trace), "meta": trace.meta, "details": list(trace.details),
              "sources": [list(source) for source in trace.sources]}
    if trace.samples:
        header["samples"] = trace.samples.to_payload()
    return json.dumps(header, ensure_ascii=False, separators=(",", ":"), default=repr)


def test_the_header_is_the_whole_header_dict_encoded_at_once() -> None:
    from loopscope.tracer.native import header_json

    trace = _hand_built()
    assert header_json(trace) == _header_of(trace)
    trace.samples.apply_payload({"first_stack": 0, "stacks": [[["/f.py", 3, "f"]]],
                                 "samples": [[5, 1, 0]]})
    assert trace.samples
    assert header_json(trace) == _header_of(trace)
    assert header_json(Trace()) == _header_of(Trace())


def test_details_encoded_ahead_as_batches_land_save_the_same_bytes() -> None:
    plain = _hand_built()
    ahead = Trace()
    ahead.listeners.append(lambda first, count: ahead.details.encode_ahead())

    def halfway(trace: Trace) -> None:
        assert trace.details._encoded  # some rows were encoded as their batches landed
        trace.listeners.clear()  # the rest are encoded by the save

    _hand_built(halfway, ahead)
    assert ahead.details._encoded_rows < len(ahead.details)
    assert encode_trace(ahead) == encode_trace(plain)
    ahead.details.encode_ahead()
    assert ahead.details._encoded_rows == len(ahead.details)
    assert encode_trace(ahead) == encode_trace(plain)


def _grown_in_batches(whole: Trace, batch: int, ahead_each: bool) -> Trace:
    """A trace filled with `whole`'s events `batch` at a time, as a run's batches land, its
    columns deflated ahead after each batch (or not at all)."""
    grown = Trace(details=whole.details, sources=whole.sources, meta=whole.meta)
    ahead = DeflateAhead(grown)
    grown.deflated_ahead = ahead
    for first in range(0, len(whole), batch):
        for name in ("ts", "lane", "code", "other", "detail", "source"):
            getattr(grown, name).extend(getattr(whole, name)[first : first + batch])
        if ahead_each:
            ahead.catch_up()
    return grown


def test_columns_deflated_ahead_as_they_grow_save_the_bytes_of_a_save_without(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that will be saved deflates its columns a segment at a time as they grow (the
    body's cuts fall at each column's start); the save uses those segments, and writes the
    bytes a save of the same trace deflated at once writes, which any zlib reads."""
    import loopscope.tracer.native as native

    monkeypatch.setattr(native, "_SEGMENT", 4096)
    whole = _many_values(3000)
    expected = encode_trace(whole)
    assert zlib.decompress(expected[expected.index(b"\n") + 1 :])  # one plain zlib stream
    grown = _grown_in_batches(whole, 333, ahead_each=True)
    ahead = grown.deflated_ahead
    assert isinstance(ahead, DeflateAhead)
    # every full segment of every column and of the value rows' bases, lengths and texts
    # is done, and the rest of each begun
    values = whole.details.values
    sizes = [*(len(whole) * size for size in (8, 4, 1, 4, 4, 4)),
             len(values) * 4, len(values) * 4, len(values.texts)]
    assert [sum(1 for index in range(1000) if isinstance(ahead.segment(part, index), tuple))
            for part in range(9)] == [size // 4096 for size in sizes]
    for part, size in enumerate(sizes):
        begun = ahead.segment(part, size // 4096)
        assert isinstance(begun, native._OpenSegment)
        assert begun.taken == size % 4096 > 0
    assert encode_trace(grown) == expected
    assert encode_trace(_grown_in_batches(whole, 333, ahead_each=False)) == expected
    _same(whole, decode_trace(encode_trace(grown)))
    # a save while segments are half done (as when the child ends) finishes them from
    # where they are, without changing what was done: deflating goes on after it as before
    partly = _grown_in_batches(whole, 333, ahead_each=False)
    partly_ahead = partly.deflated_ahead
    assert isinstance(partly_ahead, DeflateAhead)
    for budget in (1000, 5000, 3, 4096, 20000):
        assert partly_ahead.work(budget)
        assert any(isinstance(partly_ahead.segment(part, index), native._OpenSegment)
                   for part in range(9) for index in range(1000))
        assert encode_trace(partly) == expected
    partly_ahead.catch_up()
    assert encode_trace(partly) == expected
    assert not partly_ahead.work()


def _deflated_ahead_in_small_segments(monkeypatch: pytest.MonkeyPatch
                                      ) -> tuple[Trace, Trace, DeflateAhead]:
    """A trace, the same grown in batches with its columns deflated ahead in 4 KB segments,
    and the deflater once it has caught up."""
    import loopscope.tracer.native as native

    monkeypatch.setattr(native, "_SEGMENT", 4096)
    whole = _many_values(3000)
    grown = _grown_in_batches(whole, 1000, ahead_each=True)
    ahead = grown.deflated_ahead
    assert isinstance(ahead, DeflateAhead)
    return whole, grown, ahead


def test_a_column_replaced_after_it_was_deflated_ahead_is_saved_as_it_is_now(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from array import array

    whole, grown, ahead = _deflated_ahead_in_small_segments(monkeypatch)
    assert ahead.segment(0, 0) is not None
    for trace in (whole, grown):
        trace.ts = array("q", [t + 1 for t in trace.ts])
    texts = whole.details.values.texts
    whole.details.values.texts = bytearray(texts[:5000]) + bytes([texts[5000] ^ 1]) + \
        texts[5001:]  # grown's too: they share the value rows
    assert encode_trace(grown) == encode_trace(whole)
    assert ahead.segment(0, 0) is None
    assert decode_trace(encode_trace(grown)).ts[10] == whole.ts[10]


def test_a_real_run_saved_natively_deflates_its_columns_while_the_child_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import loopscope.tracer.native as native
    from loopscope.tracer.blocking_run import BlockingRun
    from loopscope.tracer.launch import launch
    from loopscope.tracer.target import resolve_target

    monkeypatch.setattr(native, "_SEGMENT", 4096)
    script = tmp_path / "gens.py"
    script.write_text("def g():\n    while True:\n        yield\n"
                      "it = g()\nfor _ in range(3000):\n    next(it)\n"
                      "import time\ntime.sleep(0.3)\n")  # the parent reads all and waits
    target = resolve_target(str(script))
    run = BlockingRun(launch(target, sys.executable), target)
    run.encode_details_ahead = True  # what `loopscope trace -o FILE.loopscope` asks
    result = run.wait(60)
    assert result.status == "ok", result.stderr
    ahead = result.trace.deflated_ahead
    assert isinstance(ahead, DeflateAhead)
    saved = tmp_path / "run.loopscope"
    save_native(result.trace, saved)
    # the first 4 KB of times, deflated while the parent had nothing to read
    assert isinstance(ahead.segment(0, 0), tuple)
    result.trace.deflated_ahead = None
    assert saved.read_bytes() == encode_trace(result.trace)
    _same(result.trace, load_native(saved))



def test_a_column_replaced_while_the_run_goes_is_deflated_ahead_from_its_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from array import array


    whole, grown, ahead = _deflated_ahead_in_small_segments(monkeypatch)
    for trace in (whole, grown):
        trace.lane = array("i", trace.lane)  # the same values in a new array
        trace.ts = array("q", [t + 1 for t in trace.ts])
    ahead.catch_up()
    assert ahead.segment(0, 0) is not None and ahead.segment(1, 0) is not None
    assert encode_trace(grown) == encode_trace(whole)
