"""A trace is inert data: crafted files and pipes end in one clean error, never in a
traceback, a hang, a read of a file the trace does not own, or memory out of proportion to
the file (tracer.native, tracer.trace_checks, tracer.source_files, tracer.stream)."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.narrate import narrate
from loopscope.tracer.native import (
    NATIVE_MAGIC,
    NativeFormatError,
    decode_trace,
    encode_trace,
    load_native,
)
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.runner import record_sync
from loopscope.tracer.source_files import SOURCE_FILES, record_identities, source_text
from loopscope.tracer.stream import END, HEADER, FrameDecoder, StreamError, encode_batch
from loopscope.tracer.target import Target, TargetError, resolve_target
from loopscope.tracer.trace import Trace
from tests.fuzz.cases import Body

HELLO = b"LSCP" + json.dumps({"version": 2}).encode()


def _trace(program: Path | None = None) -> Trace:
    trace = Trace()
    rec = Recorder(trace, clock=FakeClock(tick_ns=1000))
    lane = rec.spawn("main", LaneKind.MAIN)
    path = str(program) if program is not None else "/dev/zero"
    rec.state(lane, Code.RUNNING, source=rec.source(path, 2, "main"))
    rec.end(lane)
    rec.close()
    trace.meta.update(target=path, kind="script", status="ok")
    return trace


def _one_line_refusal(data: bytes, *words: str) -> str:
    with pytest.raises(NativeFormatError) as caught:
        decode_trace(data, "t.loopscope")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("t.loopscope ")
    for word in words:
        assert word in message
    return message


def test_a_zlib_bomb_after_a_good_trace_is_refused_without_inflating_it() -> None:
    good = Body.parse(encode_trace(_trace()))
    text = json.dumps(good.header).encode()
    packer = zlib.compressobj(9)
    parts = [packer.compress(struct.pack("<I", len(text)) + text
                             + b"".join(c.tobytes() for c in good.columns))]
    parts += [packer.compress(bytes(1 << 20)) for _ in range(256)]  # 256 MiB of zeros
    bomb = NATIVE_MAGIC + b" 1\n" + b"".join([*parts, packer.flush()])
    assert len(bomb) < 1 << 20
    tracemalloc.start()
    try:
        _one_line_refusal(bomb, "corrupt")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_sizes_declared_beyond_what_the_file_can_hold_are_refused_before_inflating() -> None:
    body = Body.parse(encode_trace(_trace()))
    body.header["count"] = 100_000_000  # 2.5 GB of columns from a few hundred bytes
    _one_line_refusal(body.encode(), "declares more data than the file can hold")
    huge_header = NATIVE_MAGIC + b" 1\n" + zlib.compress(struct.pack("<I", 0xFFFFFFFF))
    _one_line_refusal(huge_header, "declares more data")


def test_a_sparse_file_is_refused_at_its_first_bytes(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.loopscope"
    with sparse.open("wb") as out:
        out.write(NATIVE_MAGIC + b" 1\n")
        out.truncate(2 << 30)  # 2 GiB of holes: nothing to read but zeros
    started = time.monotonic()
    with pytest.raises(NativeFormatError, match="truncated or corrupt"):
        load_native(sparse)
    assert time.monotonic() - started < 5  # not read whole


@pytest.mark.parametrize("header", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"count": Infinity, "meta": {}, "details": [{}], "sources": [["", 0, ""]]}',
    b'{"count": 1e400, "meta": {}, "details": [{}], "sources": [["", 0, ""]]}',
    b'{"count": 0, "meta": {"dropped": "many"}, "details": [{}], "sources": [["", 0, ""]]}',
    b'{"count": 0, "meta": {}, "details": [[]], "sources": [["", 0, ""]]}',
    b'{"count": 0, "meta": {}, "details": [{}], "sources": [["", 99999999999, ""]]}',
    b'{"count": 0, "meta": {}, "details": [{"timeout_s": "soon"}], "sources": [["", 0, ""]]}',
    b'{"count": 0, "meta": {}, "details": [{}], "sources": [["", 0, ""]], "x": ' + b"1" * 5000
    + b"}",
])
def test_a_malformed_header_is_one_clean_error(header: bytes) -> None:
    data = NATIVE_MAGIC + b" 1\n" + zlib.compress(struct.pack("<I", len(header)) + header)
    _one_line_refusal(data, "corrupt")


@pytest.mark.parametrize(("column", "value"), [
    (1, 7),  # a lane beyond any the trace could have
    (2, 9),  # an unknown code
    (3, -2),  # another lane below "none"
    (5, 3),  # a source row that does not exist
    (0, -5),  # a timestamp before the start
])
def test_every_column_is_checked(column: int, value: int) -> None:
    body = Body.parse(encode_trace(_trace()))
    body.columns[column][1] = value
    _one_line_refusal(body.encode(), "corrupt")


def test_timestamps_that_go_backwards_are_refused() -> None:
    body = Body.parse(encode_trace(_trace()))
    body.columns[0][2] = 0
    _one_line_refusal(body.encode(), "corrupt")


def test_a_fifo_is_refused_as_a_target_and_as_a_trace_without_waiting(tmp_path: Path) -> None:
    fifo = tmp_path / "trace.loopscope"
    os.mkfifo(fifo)
    script_fifo = tmp_path / "script.py"
    os.mkfifo(script_fifo)
    started = time.monotonic()
    with pytest.raises(TargetError, match="not a regular file"):
        resolve_target(str(fifo))
    with pytest.raises(TargetError, match="not a regular file"):
        resolve_target(str(script_fifo))
    with pytest.raises(NativeFormatError, match="not a regular file"):
        load_native(fifo)
    assert time.monotonic() - started < 5


# -- source files ----------------------------------------------------------------------------


def test_source_text_is_shown_only_while_the_file_is_the_one_recorded(tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text("import asyncio\nprint('hi')\n")
    trace = _trace(program)
    record_identities(trace.meta, [str(program)])
    loaded = decode_trace(encode_trace(trace))
    shown = source_text(loaded.meta, str(program))
    assert shown.text is not None and shown.verified and shown.line(2) == "print('hi')"
    assert [line for line in narrate(loaded) if "prog.py:2: print('hi')" in line]

    program.write_text("import asyncio\nprint('changed')\n")
    changed = source_text(loaded.meta, str(program))
    assert changed.text is None and "changed" in changed.reason
    assert not [line for line in narrate(loaded) if "print(" in line]


@pytest.mark.parametrize("path", ["/dev/zero", "/etc/passwd", "/proc/self/environ", "FIFO"])
def test_a_crafted_trace_reads_no_file_it_does_not_own(tmp_path: Path, path: str) -> None:
    if path == "FIFO":
        path = str(tmp_path / "fifo.py")
        os.mkfifo(path)
    for meta in ({}, {SOURCE_FILES: {path: [0, "0" * 64]}}, {SOURCE_FILES: {}}):
        shown = source_text(meta, path)
        assert shown.text is None, (path, meta)
    trace = _trace()
    for row, source in enumerate(trace.sources[1:], start=1):
        trace.sources[row] = (path, source[1], source[2])
    finished = threading.Event()
    lines: list[str] = []

    def narrate_it() -> None:
        lines.extend(narrate(decode_trace(encode_trace(trace))))
        finished.set()

    threading.Thread(target=narrate_it, daemon=True).start()
    assert finished.wait(10), "narration hung on a source path"
    assert any(f"{Path(path).name}:2" in line for line in lines)
    assert not any("root:" in line for line in lines)


def test_an_unverified_trace_reads_only_regular_python_files(tmp_path: Path) -> None:
    program = tmp_path / "old.py"
    program.write_text("x = 1\n")
    other = tmp_path / "notes.txt"
    other.write_text("secret\n")
    assert source_text({}, str(program)).text == "x = 1\n"
    assert source_text({}, str(program)).verified is False
    assert source_text({}, str(other)).text is None
    assert source_text(None, str(other)).text == "secret\n"  # a file the user chose


def test_a_recorded_run_notes_its_source_files(tmp_path: Path) -> None:
    program = tmp_path / "gen.py"
    program.write_text("def g():\n    yield 1\n\nprint(next(g()))\n")
    result = record_sync(resolve_target(str(program)), timeout=60)
    assert result.ok, result.error
    identities = result.trace.meta[SOURCE_FILES]
    assert identities[str(program)][0] == program.stat().st_size
    assert source_text(decode_trace(encode_trace(result.trace)).meta, str(program)).verified


# -- the event pipe ---------------------------------------------------------------------------


def test_a_deep_json_end_frame_is_a_stream_error() -> None:
    decoder = FrameDecoder(Trace())
    payload = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(StreamError, match="nested too deeply"):
        decoder.feed(HEADER.pack(len(HELLO), 1) + HELLO + HEADER.pack(len(payload), END)
                     + payload)


@pytest.mark.parametrize(("column", "value", "words"), [
    (5, 7, "source location"),
    (4, 9, "detail"),
    (2, 12, "unknown code"),
    (1, -1, "lane"),
    (0, -1, "timestamp"),
])
def test_a_batch_naming_rows_that_do_not_exist_is_a_stream_error(
    column: int, value: int, words: str
) -> None:
    columns = [[10, 20], [0, 0], [Code.SPAWN, Code.RUNNING], [-1, -1], [1, 0], [0, 0]]
    columns[column][1] = value
    decoder = FrameDecoder(Trace())
    decoder.feed(HEADER.pack(len(HELLO), 1) + HELLO)
    with pytest.raises(StreamError, match=words):
        decoder.feed(encode_batch(0, tuple(columns), [("name", "x", "kind", "task")], []))
    assert len(decoder.trace) == 0


def _toy(behaviour: str) -> Target:
    return Target("scenario", behaviour, (), "tests.tracer.toy_model",
                  f"tests.tracer.hostile_toys:{behaviour}")


@pytest.mark.parametrize(("behaviour", "words"), [
    ("ends_with_deep_json", "nested too deeply"),
    ("names_a_missing_source", "source location"),
])
def test_a_child_that_breaks_the_protocol_ends_the_run_as_a_protocol_error(
    behaviour: str, words: str
) -> None:
    result = record_sync(_toy(behaviour), timeout=60)
    assert result.status == "protocol-error", result.error
    assert result.error is not None and words in result.error
    assert "Traceback" not in result.stderr
