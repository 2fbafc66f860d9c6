"""The report's pure parts on traces built with a FakeClock: the task table, stalls and their
victims, stack samples on the pipe and in saved traces, --fail-on, and the JSON schema."""

from __future__ import annotations

import io
import itertools
import json
import random
import time
from typing import Any

import pytest

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.lane_table import LaneTable, lane_rows, spread
from loopscope.tracer.native import NativeFormatError, decode_trace, encode_trace
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.report import (
    FailRule,
    ReportOptions,
    build_report,
    failing_rules,
    parse_fail_on,
    report_json,
    stall_threshold_for,
)
from loopscope.tracer.report_schema import schema_errors
from loopscope.tracer.report_text import render_report
from loopscope.tracer.sampler import StallSampler
from loopscope.tracer.spans import SpanBuilder, derive_spans
from loopscope.tracer.stats import lane_stats
from loopscope.tracer.stream import FrameDecoder, FrameWriter, StreamError, encode_samples
from loopscope.tracer.trace import Trace
from tests.conftest import threads_only_trace

MS = 1_000_000
PROGRAM = ("/work/app/server.py", 40, "handle")
BLOCKING = ("/work/app/server.py", 57, "handle")


def _stalled_loop(samples: bool = True, late_start_ns: int = 0) -> Trace:
    """A loop, a task that blocks for 300 ms, and the lanes it holds up:

    loop:    dispatch throughout
    slow:    running 10-310 (its one long step; the sampler saw line 57 three times, 40 once)
    sleeper: sleeping 0-320 with its timer due at 100 ms (so it fired 220 ms late), running
    queued:  ready 50-330 (280 ms; 260 of them during the stall), running 330-331, end

    all after `late_start_ns` of the child starting up (the times above are the program's)
    """
    trace = Trace()
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    clock.advance(late_start_ns)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    slow = rec.spawn("slow", LaneKind.TASK, loop)
    sleeper = rec.spawn("sleeper", LaneKind.TASK, loop)
    queued = rec.spawn("queued", LaneKind.TASK, loop)
    rec.state(loop, Code.DISPATCH)
    rec.state(sleeper, Code.SLEEPING, ("delay_s", 0.1, "deadline_ns", late_start_ns + 100 * MS))
    clock.advance(10 * MS)
    rec.state(slow, Code.RUNNING, source=rec.source(*PROGRAM))
    clock.advance(40 * MS)
    rec.wake(queued, loop, ("cause", "future"))
    clock.advance(260 * MS)
    rec.state(slow, Code.SLEEPING, ("delay_s", 1.0, "deadline_ns", late_start_ns + 1310 * MS))
    clock.advance(10 * MS)
    rec.wake(sleeper, loop, ("cause", "timer", "deadline_ns", late_start_ns + 100 * MS))
    rec.state(sleeper, Code.RUNNING)
    rec.end(sleeper)
    clock.advance(10 * MS)
    rec.state(queued, Code.RUNNING)
    clock.advance(1 * MS)
    rec.end(queued)
    rec.end(slow)
    rec.close()
    if samples:
        trace.write_samples({
            "first_stack": 0,
            "stacks": [[list(BLOCKING), list(PROGRAM)], [list(PROGRAM)]],
            "samples": [[late_start_ns + at * MS, slow, stack]
                        for at, stack in ((60, 0), (120, 1), (180, 0), (240, 0))],
        })
    return trace


# -- the task table --------------------------------------------------------------------------------


def test_spread_is_nearest_rank() -> None:
    assert spread([]).count == 0
    ten = spread([5, 1, 4, 2, 3, 10, 9, 8, 7, 6])
    assert (ten.count, ten.p50, ten.p99, ten.max) == (10, 5, 10, 10)
    hundred = spread(list(range(1, 101)))
    assert (hundred.p50, hundred.p99, hundred.max) == (50, 99, 100)


def test_the_table_agrees_with_the_details_panes_statistics() -> None:
    trace = _stalled_loop()
    spans = derive_spans(trace)
    for row in lane_rows(trace, spans):
        stats = lane_stats(trace, spans, row.lane)
        assert row.time_in == stats.time_in
        assert (row.steps.count, row.steps.max) == (stats.steps, stats.longest_step_ns)
        assert (row.latency.count, row.latency.max) == (stats.latencies,
                                                        stats.worst_latency_ns)


def test_the_table_fed_in_slices_equals_the_table_of_the_whole() -> None:
    trace = _stalled_loop()
    builder = SpanBuilder()
    table = LaneTable()
    for stop in range(0, len(trace) + 1, 3):
        builder.feed(trace, stop)
        table.update(trace, builder.spans)
    builder.feed(trace)
    spans = builder.finish(trace.duration_ns)
    table.update(trace, spans)
    assert table.rows() == lane_rows(trace, derive_spans(trace))


def _random_trace(seed: int) -> Trace:
    """Lanes moving at random between states (several READYs in a row included)."""
    rng = random.Random(seed)
    trace = Trace()
    clock = FakeClock()
    rec = Recorder(trace, clock=clock, batch_size=5)
    loop = rec.spawn("loop", LaneKind.LOOP)
    lanes = [rec.spawn(f"t{i}", LaneKind.TASK, loop) for i in range(4)]
    states = [Code.RUNNING, Code.READY, Code.READY, Code.SLEEPING, Code.BLOCKED, Code.IO_WAIT]
    for _ in range(400):
        clock.advance(rng.randrange(1, 5000))
        lane = rng.choice(lanes)
        if rng.random() < 0.2:
            rec.wake(lane, rng.choice([loop, *lanes]), ("cause", "future"))
        else:
            rec.state(lane, rng.choice(states))
    rec.close()
    return trace


@pytest.mark.parametrize("seed", range(6))
def test_the_table_fed_in_random_slices_agrees_with_the_statistics(seed: int) -> None:
    trace = _random_trace(seed)
    rng = random.Random(seed)
    builder = SpanBuilder()
    table = LaneTable()
    stop = 0
    while stop < len(trace):
        stop = min(len(trace), stop + rng.randrange(1, 40))
        builder.feed(trace, stop)
        table.update(trace, builder.spans)
    spans = builder.finish(trace.duration_ns)
    table.update(trace, spans)
    for row in table.rows():
        stats = lane_stats(trace, spans, row.lane)
        assert row.time_in == stats.time_in
        assert (row.steps.count, row.steps.max) == (stats.steps, stats.longest_step_ns)
        assert sum(table.step_durations(row.lane)) == stats.time_in["running"]
        assert (row.latency.count, row.latency.max) == (stats.latencies,
                                                        stats.worst_latency_ns)
        assert sum(table.latencies(row.lane)) == stats.total_latency_ns


def test_wakes_are_counted_from_the_waker_to_the_woken() -> None:
    trace = _stalled_loop()
    rows = {row.name: row for row in lane_rows(trace, derive_spans(trace))}
    assert (rows["asyncio loop"].wakes_given, rows["asyncio loop"].wakes_received) == (2, 0)
    assert (rows["queued"].wakes_given, rows["queued"].wakes_received) == (0, 1)
    assert rows["slow"].status == "ended" and rows["sleeper"].status == "ended"


def test_rows_sort_costliest_first() -> None:
    report = build_report(_stalled_loop())
    assert [row.name for row in report.lanes][:2] == ["asyncio loop", "slow"]


# -- stalls ----------------------------------------------------------------------------------------


def test_a_long_step_is_a_stall_at_the_line_the_sampler_saw_most() -> None:
    report = build_report(_stalled_loop())
    assert [f.rule for f in report.findings] == ["stall"]
    stall = report.findings[0]
    assert (stall.lane_name, stall.ts_ns, stall.duration_ns) == ("slow", 10 * MS, 300 * MS)
    assert stall.location == BLOCKING and stall.where == "server.py:57"
    assert stall.stack == (BLOCKING, PROGRAM) and stall.samples == 3
    assert stall.facts["located_by"] == "samples"


def test_a_stall_names_every_lane_it_held_up_and_by_how_much() -> None:
    stall = build_report(_stalled_loop()).findings[0]
    delays = {d.name: (d.ready_ns, d.late_timer_ns) for d in stall.delayed}
    # sleeper's timer was due at 100 ms and fired at 320; queued was ready from 50 to 310
    assert delays == {"sleeper": (0, 220 * MS), "queued": (260 * MS, 0)}
    assert [d.name for d in stall.delayed] == ["queued", "sleeper"]  # most delayed first


def test_without_samples_a_stall_points_at_the_line_its_step_resumed_at() -> None:
    stall = build_report(_stalled_loop(samples=False)).findings[0]
    assert stall.location == PROGRAM and stall.stack == () and stall.samples == 0
    assert stall.facts["located_by"] == "resumed-at"


def test_a_long_dispatch_with_no_long_step_in_it_is_a_callback_stall() -> None:
    trace = Trace()
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    task = rec.spawn("task", LaneKind.TASK, loop)
    rec.state(loop, Code.DISPATCH, source=rec.source(*PROGRAM))
    rec.state(task, Code.RUNNING)
    clock.advance(30 * MS)  # a short step, then a callback of 150 ms
    rec.state(task, Code.SLEEPING, ("delay_s", 0.1, "deadline_ns", 100 * MS))
    clock.advance(150 * MS)
    rec.state(loop, Code.POLL)
    rec.wake(task, loop, ("cause", "timer"))
    rec.state(task, Code.RUNNING)
    rec.end(task)
    rec.close()
    (stall,) = build_report(trace).findings
    assert (stall.rule, stall.lane_name, stall.duration_ns) == ("stall", "asyncio loop",
                                                                180 * MS)
    assert stall.title.startswith("asyncio loop ran a callback for 180 ms")
    assert [(d.name, d.late_timer_ns) for d in stall.delayed] == [("task", 80 * MS)]


def test_the_threshold_decides_what_is_a_stall() -> None:
    assert build_report(_stalled_loop(), ReportOptions(stall_ns=301 * MS)).findings == []
    assert len(build_report(_stalled_loop(), ReportOptions(stall_ns=300 * MS)).findings) == 1


# -- --fail-on -------------------------------------------------------------------------------------


def _pool_work(loop_polls: bool) -> Trace:
    """A task hands 300 ms of work to a thread-pool lane and waits; the loop meanwhile polls
    (idle) or, without `loop_polls`, dispatches another task's steps throughout."""
    trace = Trace()
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    caller = rec.spawn("caller", LaneKind.TASK, loop)
    other = rec.spawn("other", LaneKind.TASK, loop)
    rec.state(loop, Code.DISPATCH)
    rec.state(caller, Code.RUNNING, source=rec.source(*PROGRAM))
    work = rec.spawn("crunch", LaneKind.THREAD, caller)
    rec.state(work, Code.RUNNING)
    rec.state(caller, Code.BLOCKED, ("on", "to_thread"))
    for _ in range(30):
        if loop_polls:
            rec.state(loop, Code.POLL, ("timeout_s", None))
            clock.advance(10 * MS)
            rec.state(loop, Code.DISPATCH)
        else:
            rec.state(other, Code.RUNNING, source=rec.source(*BLOCKING))
            clock.advance(9 * MS)
            rec.state(other, Code.READY)
            rec.state(loop, Code.POLL, ("timeout_s", 0))
            clock.advance(1 * MS)
            rec.state(loop, Code.DISPATCH)
    rec.end(work)
    rec.wake(caller, loop, ("cause", "callback"))
    rec.state(caller, Code.RUNNING, source=rec.source("/work/app/server.py", 44, "handle"))
    rec.end(caller)
    rec.end(other)
    rec.close()
    return trace


def test_a_thread_pool_lane_running_long_is_not_a_stall_but_an_idle_loop_is_found() -> None:
    findings = build_report(_pool_work(loop_polls=True)).findings
    assert [(f.rule, f.lane_name, f.where) for f in findings] == [
        ("idle-on-thread-pool", "crunch", "server.py:44")]
    assert findings[0].facts["idle_ns"] == 300 * MS
    assert findings[0].facts["calls"] == 1
    # no line was recorded when the work was handed over: the line the caller resumed at
    assert findings[0].title.endswith("awaited at server.py:44")


def test_a_loop_kept_busy_while_its_pool_works_is_not_idle() -> None:
    assert build_report(_pool_work(loop_polls=False)).findings == []


def test_fail_on_rules_parse_and_match() -> None:
    rules = parse_fail_on("stall>250ms, pending-at-exit")
    assert rules == [FailRule("stall", 250 * MS), FailRule("pending-at-exit")]
    report = build_report(_stalled_loop())
    assert [str(rule) for rule, _ in failing_rules(report, rules)] == ["stall>250ms"]
    assert failing_rules(report, parse_fail_on("stall>1s")) == []
    assert len(failing_rules(report, parse_fail_on("any"))) == 1
    assert parse_fail_on("stall>2.5s") == [FailRule("stall", 2_500 * MS)]


@pytest.mark.parametrize("text", ["stal", "stall>", "stall>10 parsecs", "stall<5ms", ""])
def test_a_fail_on_rule_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a rule"):
        parse_fail_on(text)


def test_a_shorter_stall_gate_lowers_the_threshold() -> None:
    assert stall_threshold_for(parse_fail_on("stall>50ms")) == 50 * MS
    assert stall_threshold_for(parse_fail_on("stall>500ms,contention")) == 100 * MS


# -- JSON and its schema ---------------------------------------------------------------------------


def test_the_json_report_follows_its_schema() -> None:
    document = json.loads(json.dumps(report_json(build_report(_stalled_loop()))))
    assert schema_errors(document) == []
    assert document["findings"][0]["where"] == "server.py:57"
    assert [d["name"] for d in document["findings"][0]["delayed"]] == ["queued", "sleeper"]


def test_a_report_with_nothing_found_has_an_empty_findings_list() -> None:
    document = report_json(build_report(_stalled_loop(), ReportOptions(stall_ns=10**12)))
    assert document["findings"] == [] and schema_errors(document) == []


@pytest.mark.parametrize("damage", [
    lambda d: d.pop("findings"),
    lambda d: d["lanes"][0].update(status="sleepy"),
    lambda d: d["lanes"][0]["steps"].update(p50_ns=-1),
    lambda d: d["findings"][0].update(rule="not-a-rule"),
    lambda d: d["findings"][0].update(extra=1),
    lambda d: d["run"].update(events="many"),
    lambda d: d["findings"][0].update(source={"file": "x.py"}),
])
def test_the_schema_check_catches_a_document_that_departs_from_it(damage: Any) -> None:
    document = json.loads(json.dumps(report_json(build_report(_stalled_loop()))))
    damage(document)
    assert schema_errors(document) != []


def test_the_published_schema_file_is_the_one_the_checks_use() -> None:
    from pathlib import Path

    from loopscope.tracer.report_schema import SCHEMA

    published = Path(__file__).resolve().parents[2] / "docs" / "report-schema.json"
    assert json.loads(published.read_text()) == json.loads(json.dumps(SCHEMA)), (
        "regenerate it: python -m loopscope.tracer.report_schema > docs/report-schema.json")


def test_the_schema_agrees_with_a_standard_validator_when_one_is_installed() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from loopscope.tracer.report_schema import SCHEMA

    jsonschema.validate(json.loads(json.dumps(report_json(build_report(_stalled_loop())))),
                        SCHEMA)


def test_the_text_report_shows_the_table_and_the_stall() -> None:
    text = render_report(build_report(_stalled_loop()))
    assert "slow ran 300 ms without yielding at server.py:57" in text
    assert "delayed sleeper: its timer fired 220ms late" in text
    assert "server.py:57 in handle" in text
    assert text.splitlines()[3].startswith("lane ")


def _stall_over(queued: int) -> Trace:
    """A task that runs 300 ms while `queued` others wait ready, each from a later moment
    (so the first queued is the most delayed)."""
    trace = Trace()
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    slow = rec.spawn("slow", LaneKind.TASK, loop)
    waiting = [rec.spawn(f"w{n}", LaneKind.TASK, loop) for n in range(queued)]
    rec.state(loop, Code.DISPATCH)
    rec.state(slow, Code.RUNNING, source=rec.source(*PROGRAM))
    for lane in waiting:
        clock.advance(MS // 10)
        rec.wake(lane, loop, ("cause", "future"))
    clock.advance(300 * MS)
    rec.state(slow, Code.SLEEPING, ("delay_s", 1.0, "deadline_ns", 2000 * MS))
    for lane in waiting:
        rec.state(lane, Code.RUNNING)
        rec.end(lane)
    rec.end(slow)
    rec.close()
    return trace


def test_a_stall_over_many_lanes_names_the_most_delayed_and_counts_the_rest() -> None:
    report = build_report(_stall_over(40))
    [stall] = report.findings
    assert len(stall.delayed) == 40  # the finding (and the JSON) keep every one
    assert stall.title.endswith("; delayed w0 304 ms, w1 304 ms, w2 304 ms and 37 more lanes")
    text = render_report(report).splitlines()
    listed = [line for line in text if line.startswith("  delayed ")]
    assert [line.split(":")[0] for line in listed] == [f"  delayed w{n}" for n in range(10)]
    assert "  ... 30 more delayed lanes (all of them: --format json)" in text
    assert len(json.loads(json.dumps(report_json(report)))["findings"][0]["delayed"]) == 40


def test_a_stall_over_a_few_lanes_names_them_all() -> None:
    [stall] = build_report(_stall_over(3)).findings
    assert stall.title.endswith("; delayed w0 300 ms, w1 300 ms, w2 300 ms")
    assert "more" not in render_report(build_report(_stall_over(3)))


# -- samples on the pipe and in saved traces -------------------------------------------------------


def test_the_text_report_gives_times_on_the_programs_clock() -> None:
    # the same run after 2 s of start-up reads the same: times count from the first event
    late = render_report(build_report(_stalled_loop(late_start_ns=2_000 * MS)))
    assert late == render_report(build_report(_stalled_loop()))
    assert "stall [slow] at 0.010 s: slow ran 300 ms" in late
    assert late.splitlines()[1].startswith("     331ms, 4 lanes")


def test_the_text_report_names_threads_for_a_run_of_threads_and_the_model_otherwise() -> None:
    trace = threads_only_trace("workers.py")
    assert render_report(build_report(trace)).startswith("run: workers.py (threads); ")
    stalled = _stalled_loop()
    stalled.meta.update(target="server.py", model="asyncio")
    assert render_report(build_report(stalled)).startswith("run: server.py (asyncio); ")
    # the JSON keeps the model the run was made under
    assert report_json(build_report(trace))["run"]["model"] == "asyncio"


def test_samples_survive_a_save_and_load_byte_for_byte() -> None:
    trace = _stalled_loop()
    data = encode_trace(trace)
    again = decode_trace(data)
    assert list(again.samples.ts) == list(trace.samples.ts)
    assert again.samples.stacks == trace.samples.stacks
    assert encode_trace(again) == data


def test_a_trace_without_samples_is_saved_as_before() -> None:
    trace = _stalled_loop(samples=False)
    assert b"samples" not in __import__("zlib").decompress(encode_trace(trace).split(b"\n", 1)[1])
    assert len(decode_trace(encode_trace(trace)).samples) == 0


def test_a_saved_trace_with_broken_samples_is_refused_in_one_line() -> None:
    trace = _stalled_loop()
    trace.samples.stack[0] = 99  # names a stack that does not exist
    with pytest.raises(NativeFormatError, match="corrupt"):
        decode_trace(encode_trace(trace))


def test_samples_travel_on_the_pipe_ahead_of_their_batch() -> None:
    out = io.BytesIO()
    writer = FrameWriter(out)
    writer.hello({"pid": 1, "model": "toy", "target": "t", "python": "3.11"})
    writer.write_samples({"first_stack": 0, "stacks": [[list(BLOCKING)]],
                          "samples": [[5, 0, 0]]})
    writer.end({"status": "ok"})
    trace = Trace()
    decoder = FrameDecoder(trace)
    decoder.feed(out.getvalue())
    decoder.finish()
    assert (list(trace.samples.ts), trace.samples.stacks) == ([5], [(BLOCKING,)])


def test_samples_that_do_not_follow_on_are_a_stream_error() -> None:
    out = io.BytesIO()
    FrameWriter(out).hello({"pid": 1})
    trace = Trace()
    decoder = FrameDecoder(trace)
    decoder.feed(out.getvalue())
    with pytest.raises(StreamError, match="stacks start at 3"):
        decoder.feed(encode_samples({"first_stack": 3, "stacks": [], "samples": []}))


# -- the sampler, in process -----------------------------------------------------------------------


def _blocking_step(seconds: float) -> None:
    time.sleep(seconds)  # the line the sampler must find


def test_the_sampler_reads_the_stack_of_a_long_step_and_nothing_while_polling() -> None:
    trace = Trace()
    recorder = Recorder(trace)
    sampler = StallSampler(recorder)
    sampler.start()
    try:
        loop = recorder.spawn("loop", LaneKind.LOOP)
        task = recorder.spawn("task", LaneKind.TASK, loop)
        recorder.current = task
        recorder.state(task, Code.RUNNING)
        _blocking_step(0.3)
        recorder.state(task, Code.SLEEPING)
        recorder.current = loop
        recorder.state(loop, Code.POLL, ("timeout_s", 0.3))
        recorder.flush()  # as every model does before it blocks in a poll
        polling_from = recorder.clock() - recorder.origin
        time.sleep(0.3)
        recorder.state(loop, Code.DISPATCH)
    finally:
        sampler.stop()
        recorder.close()
    samples = trace.samples
    assert len(samples) > 0
    assert all(samples.lane[i] == task for i in range(len(samples)))
    assert all(ts < polling_from for ts in samples.ts)
    innermost = {samples.stacks[samples.stack[i]][0][2] for i in range(len(samples))}
    assert innermost == {"_blocking_step"}
    assert all("sampler.py" not in frame[0] and "recorder.py" not in frame[0]
               for stack in samples.stacks for frame in stack)


def test_samples_follow_the_batch_so_a_stop_between_frames_loses_no_events() -> None:
    """The child may raise a stop right after any whole frame: were a samples frame written
    before its batch, a stop there would lose the batch's events. So a batch comes first."""
    out = io.BytesIO()
    writer = FrameWriter(out)
    writer.hello({"pid": 1})
    recorder = Recorder(writer, clock=FakeClock())
    sampler = StallSampler(recorder)
    sampler.start()
    try:
        lane = recorder.spawn("task", LaneKind.TASK)
        sampler._pending.append((5, lane, (BLOCKING,)))  # as the watchdog would
        stops: list[str] = []

        def stop_after_first_frame() -> None:
            if not stops:
                stops.append("stop")
                raise KeyboardInterrupt  # what StopControl raises after a whole frame

        writer.after_write = stop_after_first_frame
        with pytest.raises(KeyboardInterrupt):
            recorder.flush()
        writer.after_write = None
    finally:
        sampler.stop()  # sends what the stop held back
    trace = Trace()
    decoder = FrameDecoder(trace)
    decoder.feed(out.getvalue())
    assert len(trace) == 1 and trace.lanes[0].name == "task"  # the batch got through
    assert list(trace.samples.ts) == [5]  # and the samples after it


def _contended(holders: int) -> Trace:
    """`holders` lanes each take a semaphore in turn for 20 ms while the next one waits on it
    (asyncio's way: the wait names the method; the release is the waiter's READY)."""
    trace = Trace()
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    lanes = [rec.spawn(f"fetch-{number}", LaneKind.TASK, loop) for number in range(holders + 1)]
    for holder, waiter in itertools.pairwise(lanes):
        rec.state(holder, Code.RUNNING, source=rec.source(*PROGRAM))
        rec.state(waiter, Code.BLOCKED, ("on", "Semaphore.acquire"))
        clock.advance(20 * MS)
        rec.state(holder, Code.SLEEPING)
        rec.wake(waiter, holder, ("cause", "future"))
        rec.state(waiter, Code.READY, other=holder)
        rec.end(holder)
    rec.end(lanes[-1])
    rec.close()
    return trace


def test_contention_over_many_lanes_names_three_releasers_and_counts_the_rest() -> None:
    # the last lane's wait is not counted: it ends without a step of its own
    (finding,) = [f for f in build_report(_contended(2000)).findings if f.rule == "contention"]
    assert "1,999 lanes waited 1,999 times, 40 s in all (longest 20 ms)" in finding.title
    assert finding.title.endswith("fetch-2 (once) and 1,996 more lanes")
    (few,) = [f for f in build_report(_contended(5)).findings if f.rule == "contention"]
    assert "4 lanes waited 4 times, 80 ms in all" in few.title
    assert few.title.endswith("fetch-2 (once), fetch-3 (once)")


def test_durations_in_titles_scale_from_milliseconds_to_seconds() -> None:
    from loopscope.tracer.stalls import _ms

    assert [_ms(n) for n in (4_200_000, 329 * MS, 9_999 * MS, 15_647_624 * MS)] == [
        "4.2 ms", "329 ms", "9999 ms", "15,648 s"]


def _late_timers(step_ms: int, rounds: int = 3, polls_between: bool = False) -> Trace:
    """Twelve lanes each sleeping 10 ms between steps of `step_ms`, on a loop that runs them
    in turn: each round of steps takes 12 * step_ms, so each timer fires that much late
    (less its own 10 ms). With `polls_between`, the loop polls 100 ms before the timers fire:
    they are later still, but the loop sat idle for most of it."""
    trace = Trace()
    clock = FakeClock()
    rec = Recorder(trace, clock=clock)
    loop = rec.spawn("asyncio loop", LaneKind.LOOP)
    workers = [rec.spawn(f"w{number}", LaneKind.TASK, loop) for number in range(12)]
    for _ in range(rounds):
        rec.state(loop, Code.DISPATCH)
        for worker in workers:
            rec.state(worker, Code.RUNNING, source=rec.source(*PROGRAM))
            clock.advance(step_ms * MS)
            due = clock() - rec.origin + 10 * MS
            rec.state(worker, Code.SLEEPING, ("delay_s", 0.01, "deadline_ns", due))
        if polls_between:
            rec.state(loop, Code.POLL)
            clock.advance(100 * MS)
            rec.state(loop, Code.DISPATCH)
        for worker in workers:
            rec.wake(worker, loop, ("cause", "timer"))
            rec.state(worker, Code.READY, other=loop)
    for worker in workers:
        rec.state(worker, Code.RUNNING, source=rec.source(*PROGRAM))
        rec.end(worker)
    rec.close()
    return trace


def test_timers_late_behind_a_loop_busy_with_short_steps_are_an_overloaded_loop() -> None:
    (finding,) = build_report(_late_timers(step_ms=8)).findings
    assert finding.rule == "overloaded-loop" and finding.lane_name == "asyncio loop"
    # w0's timer is due 10 ms after its step and fires after the other 11 steps (88 ms): 78 ms
    # late; wk's 78 - 8k ms, so w0-w3's are 50 ms late or more, in each of the three rounds
    facts = finding.facts
    assert (facts["late_timers"], facts["lanes"], facts["latest_ns"]) == (12, 4, 78 * MS)
    assert facts["median_ns"] == 70 * MS
    assert facts["busy_share"] == 1.0 and facts["longest_step_ns"] == 8 * MS
    assert finding.title.startswith("asyncio loop overloaded: 12 timers of 4 lanes fired late, "
                                    "up to 78 ms (median 70 ms), the loop busy 100%")
    assert finding.where == "server.py:40"


def test_late_timers_are_no_overload_when_the_loop_was_idle_or_the_steps_short() -> None:
    assert build_report(_late_timers(step_ms=2)).findings == []  # 12 ms rounds: not late
    idle = build_report(_late_timers(step_ms=8, polls_between=True)).findings
    assert [finding.rule for finding in idle] == []  # late, but the loop was mostly polling


def test_timers_late_behind_a_stall_are_the_stalls_not_an_overload() -> None:
    assert [finding.rule for finding in build_report(_stalled_loop()).findings] == ["stall"]
    findings = build_report(_late_timers(step_ms=120, rounds=1)).findings
    assert {finding.rule for finding in findings} == {"stall"}
