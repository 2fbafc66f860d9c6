"""The asyncio model: runs a program on traced event loops, with no change to the program.

A policy whose loops are TracingEventLoops is installed for the run, so `asyncio.run`,
`asyncio.Runner` and `new_event_loop` in the program all trace; the previous policy comes back
afterwards (and `asyncio.Task` itself stands in for code that builds Tasks directly, as
aiohttp does on 3.12+). Each loop is a lane ("asyncio loop") alternating `poll` and
`dispatch`; each Task is a lane whose steps are `running` and whose waits are `sleeping`,
`io-wait` or `blocked`, with wake arrows from whoever completed the future it waited on.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loopscope.tracer.models._asyncio_loop import (
    TaskBuiltDirectly,
    TracingEventLoop,
    TracingEventLoopPolicy,
)
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder

__all__ = ["TracingEventLoop", "TracingEventLoopPolicy", "run", "traced_policy"]


def run(recorder: Recorder, program: Program) -> None:
    with traced_policy(recorder):
        if program.scenario_module is not None:
            asyncio.run(program.scenario_main()())
        else:
            program.run_script()


class traced_policy:
    """Installs a TracingEventLoopPolicy for the duration of a with-block."""

    def __init__(self, recorder: Recorder) -> None:
        self.policy = TracingEventLoopPolicy(recorder)
        self._previous: asyncio.AbstractEventLoopPolicy | None = None
        self._task_class: type[asyncio.Task[Any]] = asyncio.Task

    def __enter__(self) -> TracingEventLoopPolicy:
        self._previous = asyncio.get_event_loop_policy()
        self._task_class = asyncio.Task
        asyncio.set_event_loop_policy(self.policy)
        asyncio.Task = TaskBuiltDirectly  # type: ignore[misc]
        return self.policy

    def __exit__(self, *exc_info: object) -> None:
        asyncio.Task = self._task_class  # type: ignore[misc]
        asyncio.set_event_loop_policy(self._previous)
