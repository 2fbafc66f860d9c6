"""A model for runner tests: records a few events, then behaves as the scenario module says.

The scenario module may name one behaviour as "module:function"; plain "module" runs its
`main`. Each behaviour is a `main(recorder, lane)`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from loopscope.tracer.events import Code, LaneKind
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder

Behaviour = Callable[[Recorder, int], None]


def behaviour(program: Program) -> Behaviour:
    module_name, _, function_name = (program.scenario_module or "").partition(":")
    if not function_name:
        main: Behaviour = program.scenario_main()
        return main
    chosen: Behaviour = getattr(importlib.import_module(module_name), function_name)
    return chosen


def run(recorder: Recorder, program: Program) -> None:
    lane = recorder.spawn("toy", LaneKind.MAIN)
    recorder.current = lane
    recorder.state(lane, Code.RUNNING)
    behaviour(program)(recorder, lane)
    recorder.end(lane)
