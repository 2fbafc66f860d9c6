"""The line a lane is on at a step: where it stopped once it has (its yield, its send), the
body's first line at a first step, never a generator's `def` line."""

from __future__ import annotations

from pathlib import Path

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.narrate import narration_line
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.runner import record_sync
from loopscope.tracer.step_lines import body_start, lane_lines
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace

PROGRAM = '''\
def consumer():
    """Takes items."""
    reply = ""
    while True:
        item = yield reply
        reply = "ok"


def produce(worker):
    worker.send(None)
    worker.send(1)
'''


def test_a_generators_first_step_is_on_its_body_and_a_yield_on_the_yield_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "handoff.py"
    path.write_text(PROGRAM)
    trace = Trace()
    rec = Recorder(trace, clock=FakeClock())
    produce = rec.spawn("produce", LaneKind.MAIN)
    rec.state(produce, Code.RUNNING, source=rec.source(str(path), 10, "produce"))
    consumer = rec.spawn("consumer", LaneKind.GENERATOR, parent=produce)
    rec.switch(produce, consumer, ("via", "send", "value", "None"))
    rec.state(produce, Code.BLOCKED, ("on", "consumer"))
    first = rec.event_count
    rec.state(consumer, Code.RUNNING, source=rec.source(str(path), 1, "consumer"))
    yielded = rec.event_count
    rec.switch(consumer, produce, ("via", "yield", "value", "''"))
    rec.state(consumer, Code.BLOCKED, ("on", "produce"))
    rec.state(produce, Code.RUNNING, source=rec.source(str(path), 10, "produce"))
    sent = rec.event_count
    rec.switch(produce, consumer, ("via", "send", "value", "1"))
    rec.state(produce, Code.BLOCKED, ("on", "consumer"))
    rec.state(consumer, Code.RUNNING, source=rec.source(str(path), 5, "consumer"))
    rec.switch(consumer, produce, ("via", "yield", "value", "'ok'"))
    rec.state(consumer, Code.BLOCKED, ("on", "produce"))
    rec.state(produce, Code.RUNNING, source=rec.source(str(path), 11, "produce"))
    rec.close()

    lines = lane_lines(trace)
    # The first step resumes at `def consumer():` but is on the body's first line (the
    # docstring passed over), in the narration as in the source pane.
    assert body_start(trace.meta, str(path), 1) == 3
    assert narration_line(trace, first) is not None
    assert "consumer starts at handoff.py:3: reply = \"\"" in str(narration_line(trace, first))
    assert lines.line_at(consumer, first, first) == (str(path), 3)
    # At its yield it is on the yield line (where it resumes next), not on its `def`.
    assert lines.line_at(consumer, first, yielded) == (str(path), 5)
    # The producer, once it has sent 1, is on the line of that send.
    producer_run = sent - 1
    assert trace.code[producer_run] == Code.RUNNING
    assert lines.line_at(produce, producer_run, sent - 1) == (str(path), 10)
    assert lines.line_at(produce, producer_run, sent) == (str(path), 11)
    # A main lane's first RUNNING is inside its code already: its own line.
    assert lines.line_at(produce, 1, 1) == (str(path), 10)


def test_producer_consumer_never_shows_the_consumers_def_line() -> None:
    result = record_sync(resolve_target("producer-consumer"))
    assert result.status == "ok", result.error
    trace = result.trace
    lines = lane_lines(trace)
    consumer = next(info.id for info in trace.lanes if info.name == "consumer")
    filename, def_line, _ = next(trace.sources[trace.source[seq]] for seq in range(len(trace))
                                 if trace.lane[seq] == consumer and trace.code[seq] == Code.RUNNING)
    assert Path(filename).name == "producer_consumer.py"
    for cursor in range(len(trace)):
        at = lines.at(cursor)
        for lane, run in at:
            if lane == consumer:
                assert lines.line_at(lane, run, cursor)[1] != def_line
    sentences = [narration_line(trace, seq) or "" for seq in range(len(trace))]
    assert not any(sentence.endswith("def consumer() -> Generator[str, int | None, None]:")
                   for sentence in sentences)
    assert any("consumer starts at producer_consumer.py" in sentence for sentence in sentences)


def test_a_lane_is_on_its_last_prints_line_until_it_stops(tmp_path: Path) -> None:
    path = str(tmp_path / "prints.py")
    trace = Trace()
    rec = Recorder(trace, clock=FakeClock())
    task = rec.spawn("main", LaneKind.TASK)
    run = rec.event_count
    rec.state(task, Code.RUNNING, source=rec.source(path, 10, "main"))
    before = rec.event_count
    rec.state(task, Code.READY, other=task)  # a bare yield: the step stops here
    second = rec.event_count
    rec.state(task, Code.RUNNING, source=rec.source(path, 11, "main"))
    first_print = rec.event_count
    rec.record(task, Code.OUTPUT, detail=rec.detail(("text", "a")),
               source=rec.source(path, 6, "shout"))
    unplaced = rec.event_count
    rec.record(task, Code.OUTPUT, detail=rec.detail(("text", "b")))  # no line known
    second_print = rec.event_count
    rec.record(task, Code.OUTPUT, detail=rec.detail(("text", "c")),
               source=rec.source(path, 13, "main"))
    stop = rec.event_count
    rec.state(task, Code.SLEEPING, ("delay_s", 1.0))
    rec.state(task, Code.RUNNING, source=rec.source(path, 14, "main"))
    rec.close()

    lines = lane_lines(trace)
    assert lines.line_at(task, run, run) == (path, 10)
    assert lines.line_at(task, run, before) == (path, 11)  # stopped: where it resumes next
    assert lines.line_at(task, second, second) == (path, 11)
    assert lines.line_at(task, second, first_print) == (path, 6)
    assert lines.line_at(task, second, unplaced) == (path, 6)  # still the last known print
    assert lines.line_at(task, second, second_print) == (path, 13)
    assert lines.line_at(task, second, stop) == (path, 14)  # where the sleep resumes


PRINTS = """\
import asyncio
import logging
import sys


def shout(text):
    print(text)


async def main():
    shout("one")
    logging.warning("two")
    sys.stdout.write("three\\n")
    await asyncio.sleep(0)


asyncio.run(main())
"""


def test_each_printed_line_is_recorded_at_the_program_line_that_wrote_it(
    tmp_path: Path,
) -> None:
    script = tmp_path / "prints.py"
    script.write_text(PRINTS)
    result = record_sync(resolve_target(str(script)), timeout=60)
    assert result.status == "ok", result.error
    trace = result.trace
    printed = [(e.detail["text"], e.detail.get("stream", "stdout"),
                (Path(e.source[0]).name, e.source[1]) if e.source else None)
               for e in trace.events() if e.kind == "output"]
    # print() inside a helper, logging's handler writing to stderr from the standard
    # library, and a direct write: each at the program's innermost frame that wrote
    assert printed == [("one", "stdout", ("prints.py", 7)),
                       ("WARNING:root:two", "stderr", ("prints.py", 12)),
                       ("three", "stdout", ("prints.py", 13))]
    told = [narration_line(trace, seq) or "" for seq in range(len(trace))
            if trace.code[seq] == Code.OUTPUT]
    assert [line.split(" s  ", 1)[1] for line in told] == [
        "main (Task-1) prints 'one' at prints.py:7",
        "main (Task-1) writes 'WARNING:root:two' to stderr at prints.py:12",
        "main (Task-1) prints 'three' at prints.py:13",
    ]


def test_producer_consumers_prints_point_at_their_print_lines() -> None:
    result = record_sync(resolve_target("producer-consumer"))
    assert result.status == "ok", result.error
    trace = result.trace
    lines = lane_lines(trace)
    outputs = [e for e in trace.events() if e.kind == "output"]
    assert len(outputs) == 15
    for event in outputs:
        assert event.source is not None
        filename, line, _ = event.source
        assert Path(filename).name == "producer_consumer.py"
        text = Path(filename).read_text().splitlines()[line - 1]
        # the f-string's fixed part, e.g. print(f"[producer] producing {item}...")
        prefix = event.detail["text"].split(" ")[0:2]
        assert "print(" in text and " ".join(prefix) in text, (event.detail, text)
        # the source pane, at that print, is on the print's line
        run = next(r for lane, r in lines.at(event.seq) if lane == event.lane)
        assert lines.line_at(event.lane, run, event.seq) == (filename, line)


def test_a_program_reads_and_reconfigures_its_streams_as_it_would_untraced(
    tmp_path: Path,
) -> None:
    # The recorder stands in for sys.stdout and sys.stderr; the rest of a real stream's face
    # (line_buffering, name, mode, reconfigure()) is the real stream's, and what is printed
    # after a reconfigure is still recorded.
    script = tmp_path / "streams.py"
    script.write_text(
        "import asyncio, sys\n"
        "async def main():\n"
        "    sys.stdout.reconfigure(errors='replace')\n"
        "    print(sys.stdout.name, sys.stdout.mode, sys.stdout.errors,\n"
        "          sys.stderr.line_buffering)\n"
        "asyncio.run(main())\n")
    result = record_sync(resolve_target(str(script)), timeout=60)
    assert result.status == "ok", result.error
    assert result.stdout == "<stdout> w replace True\n"
    printed = [e.detail["text"] for e in result.trace.events() if e.kind == "output"]
    assert printed == ["<stdout> w replace True"]
