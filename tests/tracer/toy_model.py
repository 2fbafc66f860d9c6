"""A model for runner tests: records a few events, then behaves as the scenario module says."""

from __future__ import annotations

from tracer.events import Code, LaneKind
from tracer.program import Program
from tracer.recorder import Recorder


def run(recorder: Recorder, program: Program) -> None:
    lane = recorder.spawn("toy", LaneKind.MAIN)
    recorder.current = lane
    recorder.state(lane, Code.RUNNING)
    program.scenario_main()(recorder, lane)
    recorder.end(lane)
