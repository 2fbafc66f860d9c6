"""The coroutine proxy every traced asyncio Task drives instead of the program's coroutine.

The C Task calls `send`/`throw` on whatever it was given; a `collections.abc.Coroutine` is
accepted as a coroutine, so wrapping the program's coroutine is enough to see each step
begin and end without touching the Task implementation or the program.

With tracer._speedups built, `send` (and the `am_send` slot the C Task calls) is C: the
common step costs no Python-level work. `PureTracedCoroutine` is its pure-Python twin.
"""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from types import CodeType, CoroutineType, FrameType
from typing import TYPE_CHECKING, Any

from loopscope.tracer.events import NO_DETAIL, NO_LANE, Code
from loopscope.tracer.recorder import SPEEDUPS

if TYPE_CHECKING:
    from loopscope.tracer.models._asyncio_tracer import LoopTracer

_RUNNING = int(Code.RUNNING)
_READY = int(Code.READY)


class ProxyPassthroughs(Coroutine[Any, Any, Any]):
    """All of the proxy but its hot path: throw, close, and what introspection reads."""

    __slots__ = ()
    _coro: CoroutineType[Any, Any, Any]
    _tracer: LoopTracer
    _lane: int
    _name: str
    _lines: dict[int, int]

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        tracer = self._tracer
        if tracer.detached:
            return self._throw(typ, val, tb)
        outer = tracer.step_started(self)
        try:
            result = self._throw(typ, val, tb)
        except BaseException as exc:
            tracer.step_ended(self, outer, exc)
            raise
        tracer.step_yielded(self, outer, result)
        return result

    def _throw(self, typ: Any, val: Any, tb: Any) -> Any:
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # the deprecated form, only if asked for

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._coro.__await__()

    # -- introspection passes through, so Task reprs, get_stack() and inspect keep working --

    @property
    def cr_frame(self) -> FrameType | None:
        return self._coro.cr_frame

    @property
    def cr_code(self) -> CodeType:
        return self._coro.cr_code

    @property
    def cr_await(self) -> Any:
        return self._coro.cr_await

    @property
    def cr_running(self) -> bool:
        return self._coro.cr_running

    def __getattr__(self, name: str) -> Any:
        # __qualname__, __name__, cr_suspended, cr_origin... of the program's coroutine
        return getattr(self._coro, name)

    def __repr__(self) -> str:
        return repr(self._coro)

    @property
    def wrapped(self) -> CoroutineType[Any, Any, Any]:
        return self._coro

    @property
    def lane(self) -> int:
        return self._lane


class PureTracedCoroutine(ProxyPassthroughs):
    """Forwards to the program's coroutine and tells the loop's tracer about every step."""

    __slots__ = ("_coro", "_lane", "_lines", "_name", "_tracer")

    def __init__(self, coro: CoroutineType[Any, Any, Any], tracer: LoopTracer) -> None:
        self._coro = coro
        self._tracer = tracer
        self._lane = NO_LANE
        self._name = ""
        # line -> interned source index, for the lines this coroutine resumes at
        self._lines: dict[int, int] = tracer.lines_of(coro.cr_code)

    def send(self, value: Any) -> Any:
        # The hot path of the whole model: one call per task step. The common cases (record
        # RUNNING; after the step, READY for a bare yield) are inlined; the rest is in the
        # tracer. The recording is guarded, the program's own exceptions are not.
        tracer = self._tracer
        if tracer.detached:
            return self._coro.send(value)
        recorder = tracer.recorder
        outer = recorder.current
        lane = self._lane
        try:
            eager = lane < 0  # an eager task: its first step runs inside create_task
            if eager:
                lane = tracer.spawn_eager(self)
            lines = self._lines
            frame: FrameType = self._coro.cr_frame  # type: ignore[assignment]  # not done
            # inlined: a line of the task's own code it resumed at before; the tracer finds
            # a new line's source, and a library task's (LibraryLines)
            source = lines.get(frame.f_lineno, -1) if type(lines) is dict else -1
            if source < 0:
                source = tracer.resume_source(self)
            if eager:  # running as it is made: at its SPAWN's instant (the C proxy's twin)
                recorder.record_same_instant(lane, _RUNNING, NO_LANE, NO_DETAIL, source)
            else:
                recorder.record(lane, _RUNNING, NO_LANE, NO_DETAIL, source)
            recorder.current = lane
        except Exception as exc:
            tracer.detach(exc)
        try:
            result = self._coro.send(value)
        except BaseException as exc:
            tracer.step_ended(self, outer, exc)
            raise
        if tracer.detached:
            return result
        try:
            recorder.current = outer
            if result is None:  # a bare yield (sleep(0)): straight back in the ready queue
                recorder.record(lane, _READY, lane, tracer.ready_self)
            else:
                tracer.step_waits(self, lane, result)
        except Exception as exc:
            tracer.detach(exc)
        return result


if TYPE_CHECKING or SPEEDUPS is None:
    TracedCoroutine = PureTracedCoroutine
else:

    class TracedCoroutine(SPEEDUPS.CoroutineProxyCore, ProxyPassthroughs):
        """The proxy with its send in C (tracer._speedups.CoroutineProxyCore)."""

        __slots__ = ()
