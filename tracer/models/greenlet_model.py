"""Plain greenlets: every switch() between greenlets is a SWITCH arrow between their lanes."""

from __future__ import annotations

from loopscope.tracer.models._greenlets import GreenletTracer
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder


def run(recorder: Recorder, program: Program) -> None:
    tracer = GreenletTracer(recorder)
    tracer.install()
    try:
        program.run_plain()
    finally:
        tracer.uninstall()
