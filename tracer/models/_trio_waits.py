"""What a suspended trio task waits for, read from its coroutine's await chain.

trio's Instrument API says when a task steps, not why it stopped. The chain of coroutines
from the task's own down to trio's `wait_task_rescheduled` says it: a `wait_readable(fd)` or
`wait_writable(fd)` in it is an I/O wait, a `sleep_until(deadline)` a sleep, and anything else
a block on the trio call the program made (an Event, a channel, a nursery's end, a lock).
Nothing here changes the task; it only reads frames.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import CodeType, FrameType
from typing import Any

from loopscope.tracer.models.handoffs import fd_of

# How deep to follow an await chain: far more than any real program nests.
_MAX_DEPTH = 64

IsProgram = Callable[[CodeType], bool]


def await_chain(coro: Any) -> Iterator[FrameType]:
    """The frames of a suspended coroutine and of everything it awaits, outermost first."""
    awaited = coro
    for _ in range(_MAX_DEPTH):
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            return
        yield frame
        awaited = (getattr(awaited, "cr_await", None) if hasattr(awaited, "cr_frame")
                   else getattr(awaited, "gi_yieldfrom", None))
        if awaited is None:
            return


def resume_frame(coro: Any, is_program: IsProgram) -> FrameType | None:
    """The innermost frame of the program's own code in the chain: where the task stands (or
    resumes). None when the chain has none (a task running only library code)."""
    found = None
    for frame in await_chain(coro):
        if is_program(frame.f_code):
            found = frame
    return found


@dataclass(frozen=True)
class Wait:
    """What a task waits for: "io" (fd, mode, peer), "sleep" (deadline, in trio's clock, and
    the seconds the program asked `trio.sleep` for, when it did) or "blocked" (on: the trio
    call it is in)."""

    kind: str
    fd: int = -1
    mode: str = ""
    peer: str | None = None
    deadline: float = 0.0
    seconds: float | None = None
    on: str = ""


_IO_WAITS = {"wait_readable": "read", "wait_writable": "write"}
# What a program sees as the thing it waits on, for the trio internals it ends up in.
_FRIENDLY = {
    "NurseryManager.__aexit__": "nursery",
    "Nursery._nested_child_finished": "nursery",
    "TaskGroup.__aexit__": "task group",  # anyio's
}


def _peer_in(frames: list[FrameType]) -> str | None:
    """The peer address of the socket whose method led to the wait, if one did."""
    for frame in reversed(frames):
        owner = frame.f_locals.get("self")
        getpeername = getattr(owner, "getpeername", None)
        if callable(getpeername):
            try:
                address = getpeername()
            except (OSError, ValueError):
                return None
            if isinstance(address, tuple) and len(address) >= 2:
                return f"{address[0]}:{address[1]}"
            return None
    return None


def _asked_seconds(caller: FrameType | None) -> float | None:
    """The seconds `trio.sleep(seconds)` was asked for, when it is the caller of sleep_until:
    what the program wrote (0.05), not what is left of it once the step ends (0.04997)."""
    if caller is None or caller.f_code.co_name != "sleep":
        return None
    seconds = caller.f_locals.get("seconds")
    return float(seconds) if isinstance(seconds, int | float) else None


def wait_of(coro: Any, is_program: IsProgram) -> Wait:
    """What the suspended coroutine `coro` (a task's) is waiting for."""
    frames = list(await_chain(coro))
    for index, frame in enumerate(frames):
        name = frame.f_code.co_name
        mode = _IO_WAITS.get(name)
        if mode is not None and "fd" in frame.f_locals:
            return Wait("io", fd=fd_of(frame.f_locals["fd"]), mode=mode,
                        peer=_peer_in(frames[:index]))
        # (a deadline of infinity, `trio.sleep(math.inf)`, is no timer: blocked, read below)
        if name == "sleep_until" and isinstance(frame.f_locals.get("deadline"), int | float) \
                and math.isfinite(frame.f_locals["deadline"]):
            return Wait("sleep", deadline=float(frame.f_locals["deadline"]),
                        seconds=_asked_seconds(frames[index - 1] if index else None))
    # The first library call under the program's own code is what the program waits on; a
    # task running only library code (a server's) waits on the first call it makes.
    on = ""
    for outer, inner in itertools.pairwise(frames):
        if is_program(outer.f_code) and not is_program(inner.f_code):
            on = inner.f_code.co_qualname
    if not on:
        friendly = [f.f_code.co_qualname for f in frames[1:] if f.f_code.co_qualname in _FRIENDLY]
        on = friendly[0] if friendly else frames[min(1, len(frames) - 1)].f_code.co_qualname \
            if frames else "?"
    return Wait("blocked", on=_FRIENDLY.get(on, on))
