"""The concurrency models: one registry of what each declares, and one way to load it.

Each model is a module with `run(recorder, program)`, which installs the model's
instrumentation (under a `toolkit.Guard`), runs the program to completion while recording
into the recorder, and removes what it installed. It lets the program's exceptions through.
Adding a model is one module and one `ModelSpec` below (docs/architecture.md, "How to add a
model").
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Protocol

from loopscope.tracer.events import LaneKind
from loopscope.tracer.models.toolkit import ClockPolicy, ModelSpec

if TYPE_CHECKING:  # the command line reads the registry before it starts a run
    from loopscope.tracer.program import Program
    from loopscope.tracer.recorder import Recorder

_PACKAGE = "loopscope.tracer.models"

# In the order a script's model is guessed: the first whose imports or pattern match wins.
MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="gevent", module=f"{_PACKAGE}.gevent_model", title="gevent",
        imports=frozenset({"gevent"}), clock=ClockPolicy.MARK, narration_looks_ahead=True,
        # THREAD: work handed to gevent's threadpool (its host-name lookups included)
        lane_kinds=frozenset({LaneKind.LOOP, LaneKind.GREENLET, LaneKind.MAIN, LaneKind.THREAD}),
    ),
    ModelSpec(
        name="greenlet", module=f"{_PACKAGE}.greenlet_model", title="Greenlets",
        imports=frozenset({"greenlet"}), clock=ClockPolicy.STOP, narration_looks_ahead=False,
        lane_kinds=frozenset({LaneKind.GREENLET, LaneKind.MAIN}),
    ),
    ModelSpec(
        name="trio", module=f"{_PACKAGE}.trio_model", title="trio",
        imports=frozenset({"trio"}), clock=ClockPolicy.STOP, narration_looks_ahead=False,
        lane_kinds=frozenset({LaneKind.LOOP, LaneKind.TASK}),
        # anyio on the trio backend: anyio.run(main, backend="trio")
        source_pattern=r"""backend\s*=\s*["']trio["']""",
    ),
    ModelSpec(
        name="asyncio", module=f"{_PACKAGE}.asyncio_model", title="asyncio",
        imports=frozenset({"asyncio", "aiohttp", "anyio"}), clock=ClockPolicy.STOP,
        # THREAD: work handed to a thread pool (to_thread, run_in_executor)
        narration_looks_ahead=False,
        lane_kinds=frozenset({LaneKind.LOOP, LaneKind.TASK, LaneKind.THREAD}),
        installed_on_import="asyncio",
    ),
    ModelSpec(
        name="select", module=f"{_PACKAGE}.select_model", title="select / selectors",
        imports=frozenset({"select", "selectors"}), clock=ClockPolicy.MARK,
        narration_looks_ahead=False, lane_kinds=frozenset({LaneKind.LOOP, LaneKind.CONNECTION}),
    ),
    ModelSpec(
        name="generator", module=f"{_PACKAGE}.generator_model", title="Generators",
        imports=frozenset(), clock=ClockPolicy.STOP, narration_looks_ahead=False,
        lane_kinds=frozenset({LaneKind.GENERATOR, LaneKind.MAIN}),
        # generators, or `async def` coroutines with no event loop library: driven by hand
        source_pattern=r"\byield\b|\basync\s+def\b",
    ),
)
MODEL_NAMES: tuple[str, ...] = tuple(spec.name for spec in MODELS)
DEFAULT_MODEL = "asyncio"
_BY_NAME = {spec.name: spec for spec in MODELS}


class Model(Protocol):
    def run(self, recorder: Recorder, program: Program) -> None: ...


def model_spec(name: str) -> ModelSpec | None:
    """The registered model of that name, or None (a test's own model module)."""
    return _BY_NAME.get(name)


def clock_policy_for(model: str) -> ClockPolicy:
    """How a model's pauses are accounted for; a model we do not know keeps real time."""
    spec = _BY_NAME.get(model)
    return spec.clock if spec is not None else ClockPolicy.MARK


def narration_looks_ahead(model: str) -> bool:
    """Whether a step of this model can need later events to be narrated; an unknown model
    (an old trace, a test's own) is assumed to."""
    spec = _BY_NAME.get(model)
    return spec.narration_looks_ahead if spec is not None else True


_IMPORTS = re.compile(r"^\s*(?:import|from)\s+([A-Za-z_][\w]*)", re.MULTILINE)


def guess_model(source: str) -> str:
    """The concurrency model a script uses, judged from what it imports (and, failing that,
    from what its source says)."""
    imported = set(_IMPORTS.findall(source))
    for spec in MODELS:
        if spec.uses(imported, source):
            return spec.name
    return DEFAULT_MODEL


def load_model(name: str) -> Model:
    """A registered model by name, or any module path with a `run` (tests use their own)."""
    spec = _BY_NAME.get(name)
    module: Model = importlib.import_module(  # type: ignore[assignment]
        spec.module if spec is not None else name)
    return module
