"""Models with one hook broken, for the failure-policy tests: run in a real child.

The script's name says which model to run and break ("gevent_program.py" runs gevent); the
broken hook raises RuntimeError("hook fell over") every time it is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loopscope.tracer.models import load_model
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder


def _broken(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("hook fell over")


def _hook_to_break(model: str) -> tuple[type, str]:
    if model == "asyncio":
        # the END of the program's first worker (it returns a value), which the C tracer asks
        # Python to record
        return Recorder, "end"
    if model == "generator":
        from loopscope.tracer.models.generator_model import GeneratorTracer

        return GeneratorTracer, "finished"
    if model == "greenlet":
        from loopscope.tracer.models._greenlets import GreenletTracer

        return GreenletTracer, "on_switch"
    if model == "gevent":
        from loopscope.tracer.models.gevent_model import GeventTracer

        return GeventTracer, "note_wait"
    if model == "select":
        from loopscope.tracer.models.select_model import SelectInstrumentation

        return SelectInstrumentation, "_after_poll"
    if model == "trio":
        from loopscope.tracer.models.trio_model import TrioInstrument

        return TrioInstrument, "_after_task_step"
    raise ValueError(f"no hook to break for {model}")


def run(recorder: Recorder, program: Program) -> None:
    assert program.script is not None
    model = Path(program.script).stem.split("_")[0]
    owner, name = _hook_to_break(model)
    setattr(owner, name, _broken)
    load_model(model).run(recorder, program)
