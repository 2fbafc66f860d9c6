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
