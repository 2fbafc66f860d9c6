"""Toy behaviours (see tests/tracer/toy_model.py) that attack the parent through the pipe."""

from __future__ import annotations

import os

from loopscope.tracer.events import Code
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.stream import END, HEADER, FrameWriter

DEPTH = 100_000


def _writer(recorder: Recorder) -> FrameWriter:
    """The child's frame writer, behind the stall sampler's wrapper (tracer.sampler)."""
    sink = recorder.sink
    writer = getattr(sink, "inner", sink)
    assert isinstance(writer, FrameWriter)
    return writer


def ends_with_deep_json(recorder: Recorder, lane: int) -> None:
    """Sends its events, then an END frame nested deeper than any JSON parser goes."""
    recorder.state(lane, Code.READY)
    recorder.flush()
    payload = b"[" * DEPTH + b"]" * DEPTH
    _writer(recorder).out.write(HEADER.pack(len(payload), END) + payload)
    _writer(recorder).out.flush()
    os._exit(0)


def names_a_missing_source(recorder: Recorder, lane: int) -> None:
    """Sends an event whose source index names no row of the source table."""
    recorder.state(lane, Code.READY)
    recorder.record(lane, Code.RUNNING, source=1_000_000)
    recorder.flush()
    recorder.record(lane, Code.MARK)
    recorder.flush()
