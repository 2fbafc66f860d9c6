"""Types of the C extension tracer._handoffs (see tracer/_handoffs.c)."""

from collections.abc import Callable
from typing import Any, final

from loopscope.tracer._speedups import RecorderCore

REPR_LIMIT: int

def eval_hook_installed() -> bool: ...
@final
class GeneratorHooks:
    def __init__(
        self,
        tracer: Any,
        recorder: RecorderCore,
        resume_fallback: Callable[..., Any],
        yield_fallback: Callable[..., Any],
        short_repr: Callable[[object, int], str],
        missing: object,
        start_fallback: Callable[..., Any] = ...,
        return_fallback: Callable[..., Any] = ...,
        /,
    ) -> None: ...
    def on_resume(self, code: Any, offset: int, /) -> Any: ...
    def on_yield(self, code: Any, offset: int, value: object, /) -> Any: ...
    def on_start(self, code: Any, offset: int, /) -> Any: ...
    def on_return(self, code: Any, offset: int, value: object, /) -> Any: ...
    def install_trace(
        self,
        call_fallback: Callable[..., Any],
        local_fallback: Callable[..., Any],
        errors: dict[Any, Any],
        /,
    ) -> None: ...
    # the frame evaluation hook (3.11) takes the same fallbacks as the trace function
    install_eval = install_trace
    def uninstall_eval(self) -> bool: ...

@final
class SwitchTrace:
    def __init__(
        self, tracer: Any, recorder: RecorderCore, fallback: Callable[[str, Any], None], /
    ) -> None: ...
    def __call__(self, event: str, args: tuple[Any, Any], /) -> None: ...
