"""One instrumentation per concurrency model, each a module with `run(recorder, program)`.

`run` installs the model's instrumentation, runs the program to completion while recording
into the recorder, and removes what it installed. It lets the program's exceptions through.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder

_MODULES = {
    "asyncio": "loopscope.tracer.models.asyncio_model",
    "generator": "loopscope.tracer.models.generator_model",
    "greenlet": "loopscope.tracer.models.greenlet_model",
    "gevent": "loopscope.tracer.models.gevent_model",
    "select": "loopscope.tracer.models.select_model",
}


class Model(Protocol):
    def run(self, recorder: Recorder, program: Program) -> None: ...


def load_model(name: str) -> Model:
    """A built-in model by name, or any module path with a `run` (tests use their own)."""
    module: Model = importlib.import_module(_MODULES.get(name, name))  # type: ignore[assignment]
    return module
