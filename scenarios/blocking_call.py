"""A blocking call inside a coroutine: time.sleep() holds the event loop, so nothing else runs."""

from __future__ import annotations

import asyncio
import time

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="blocking-call",
    title="A blocking call stalls the whole event loop",
    model="asyncio",
    concept=(
        "An event loop runs one task step at a time, and a step lasts until the task reaches "
        "an `await` that suspends it. A blocking call such as time.sleep() (or any long CPU "
        "loop) never gives control back, so while it runs the loop cannot poll, fire timers "
        "or resume any other task. `await asyncio.sleep()` or `asyncio.to_thread()` would "
        "have let the others run."
    ),
    observe=(
        "The 'blocker' lane has one long running step (0.5 s of time.sleep). During it no "
        "other lane runs: the 'ticker', which should tick every 0.1 s, stays asleep past its "
        "deadline and ticks again only after the blocking step ends, leaving a gap in its "
        "rhythm; the 'heartbeat', due at 0.4 s, is held up the same way."
    ),
)

TICK_S = 0.1
TICKS = 10
BLOCK_S = 0.5


async def ticker() -> int:
    """Should tick every TICK_S; reports how late each tick was."""
    worst_lateness = 0.0
    for tick in range(1, TICKS + 1):
        due = time.perf_counter() + TICK_S
        await asyncio.sleep(TICK_S)
        late = time.perf_counter() - due
        worst_lateness = max(worst_lateness, late)
        print(f"tick {tick} ({late * 1000:.0f} ms late)")
    return round(worst_lateness * 1000)


async def heartbeat() -> None:
    for beat in range(1, 4):
        await asyncio.sleep(0.4)
        print(f"heartbeat {beat}")


async def blocker() -> None:
    await asyncio.sleep(0.25)  # let the others settle into their rhythm first
    print("blocker: calling time.sleep(0.5), which does not await")
    time.sleep(BLOCK_S)  # blocks the thread, and with it the loop and every task
    print("blocker: done blocking")


async def main() -> None:
    async with asyncio.TaskGroup() as group:
        ticks = group.create_task(ticker(), name="ticker")
        group.create_task(heartbeat(), name="heartbeat")
        group.create_task(blocker(), name="blocker")
    print(f"the ticker's worst tick was {ticks.result()} ms late")
