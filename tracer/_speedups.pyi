"""Types of the C extension tracer._speedups (see tracer/_speedups.c)."""

from types import CodeType, FrameType
from typing import Any, final

from typing_extensions import disjoint_base

from loopscope.tracer.recorder import PurePendingBuffer

HAVE_NATIVE_CLOCK: int

def monotonic_ns() -> int: ...
def task_objects_uncounted() -> bool: ...
def become_subreaper() -> bool: ...
def compile_script(source: bytes, filename: str, /) -> CodeType: ...
def column_problem(
    ts: Any, lane: Any, code: Any, other: Any, detail: Any, source: Any, known: bytes,
    detail_count: int, value_count: int, source_count: int, previous_events: int,
    previous_ts: int, /,
) -> str | None: ...
def code_positions(codes: Any, code: int, start: int, /) -> bytes: ...
def value_bases(
    detail: Any, seqs: Any, value_bases: Any, first_value_row: int, /,
) -> bytes | None: ...
def innermost_awaiter(coro: Any, /) -> tuple[CodeType, FrameType | None, bool]: ...
def local_self(frame: FrameType | None, /) -> object: ...
def configure_loop_hooks(
    base_create_task: Any, base_call_soon: Any, task_type: type, handle_type: type,
    proxy_type: type, cleanup_codes: frozenset[int], naming_callers: tuple[CodeType, ...],
    named_afterwards: bool, /,
) -> None: ...

@disjoint_base
class RecorderCore(PurePendingBuffer):
    # The C twin of recorder.PurePendingBuffer: the same methods, held to the same behaviour
    # by tests/tracer/test_speedups.py, so it is typed as the twin (not its base at run time)
    # and their signatures are written once, there. Declared here: what only the C type has.
    _lane_count: int

@disjoint_base
class LoopTracerCore:
    recorder: Any
    detached: bool
    ready_self: int
    waiting: dict[int, tuple[Any, ...]]
    _sweep_waiting_at: int
    sleeps: dict[int, tuple[Any, int, int]]
    sleeping: dict[int, int]
    io_futures: dict[int, tuple[Any, int, str, Any, Any]]
    cause: Any
    loop_lane: int
    cause_future: int
    cause_callback: int
    cause_task: int
    ready_spawn: int
    end_none: int
    _plain_future: type
    _gathering_future: type
    on_gather: int
    _plain_task: type
    _code_lines: dict[int, tuple[CodeType, dict[int, int]]]
    _spawn_bases: dict[str, int]
    _named_by_request: dict[str, str]
    _poll_timeout: Any
    _poll_detail: int
    _nothing_ready: int
    _timer_fires: Any
    def callback_scheduled(self, callback: Any, first: Any, /) -> Any: ...
    def timer_scheduled(self, delay: float, callback: Any, args: tuple[Any, ...], /) -> Any: ...
    def task_created(self, proxy: Any, task: Any, name: str | None, /) -> None: ...
    def poll_started(self, timeout: float | None, /) -> None: ...
    def poll_returned(self, ready: list[tuple[Any, int]], /) -> None: ...
    def sweep_waiting(self) -> None: ...
    def __init__(self, recorder: RecorderCore, /) -> None: ...

@disjoint_base
class CoroutineProxyCore:
    _coro: Any
    _tracer: Any
    _lines: dict[int, int]
    _name: str
    _lane: int
    def __init__(self, coro: Any, tracer: LoopTracerCore, /) -> None: ...
    def send(self, value: Any, /) -> Any: ...

@final
class CausedCallback:
    tracer: LoopTracerCore
    callback: Any
    cause: Any
    __qualname__: str
    def __new__(cls, tracer: LoopTracerCore, callback: Any, cause: Any, /) -> CausedCallback: ...
    def __call__(self, *args: Any) -> Any: ...

@final
class DoneCallbacks:
    tracer: LoopTracerCore
    __qualname__: str
    def __call__(self, callback: Any, task: Any, lane: int, /) -> Any: ...

class LoopHooksCore:
    _tracer: Any
    def create_task(self, coro: Any, **options: Any) -> Any: ...
    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> Any: ...
