"""Built-in scenarios: small programs a learner can read, each with what it teaches.

A scenario module assigns `SCENARIO = Scenario(...)` with literal arguments and defines
`main`: an `async def main()` for asyncio and trio, a plain `def main()` for every other
model.
The catalog reads that assignment without importing the module, so listing scenarios never
imports gevent or starts anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    id: str
    title: str
    model: str  # a name in tracer.models.MODELS: asyncio, trio, generator, greenlet, ...
    concept: str  # two or three sentences: the idea it teaches
    observe: str  # what the learner should see on the timeline
    # Where the lesson starts, so a first view and an exported figure skip the set-up: an
    # event kind as `loopscope narrate` names it ("switch", "poll", "spawn"), optionally
    # "#N" for its Nth occurrence ("switch#3"), optionally "..KIND#N" where it ends
    # ("switch#3..switch#12"). Empty: the whole run.
    window: str = ""
    module: str = ""  # filled in by the catalog: the module that defines it
