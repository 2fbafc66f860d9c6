"""Plain greenlets: every switch() between greenlets is a SWITCH arrow between their lanes."""

from __future__ import annotations

from loopscope.tracer.models._greenlets import GreenletTracer
from loopscope.tracer.models.toolkit import Guard, instrumented
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder


def run(recorder: Recorder, program: Program) -> None:
    guard = Guard(recorder, "greenlet")
    tracer = GreenletTracer(recorder, guard)
    with instrumented(guard, tracer.install, tracer.uninstall):
        try:
            program.run_plain()
        finally:
            guard.close()
            guard.call(tracer.finish)
