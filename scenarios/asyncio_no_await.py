"""Coroutines that never await: asyncio cannot interleave what never yields."""

from __future__ import annotations

import asyncio

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="asyncio-no-await",
    title="Coroutines without await run one after another",
    model="asyncio",
    concept=(
        "The event loop can only switch tasks at an `await` that really suspends. A "
        "coroutine that never awaits runs from start to finish in one step, so tasks made "
        "of such coroutines simply take turns, each one finishing before the next starts."
    ),
    observe=(
        "Each count task has exactly one running span, from its first line to its end, and "
        "the spans follow each other without overlapping: count-1 prints all its numbers, "
        "then count-2, then count-3. No task is ever woken; they only wait in 'ready'."
    ),
)


async def count(name: str, up_to: int) -> int:
    total = 0
    for number in range(1, up_to + 1):
        print(f"{name}: {number}")
        total += number
    return total


async def main() -> None:
    tasks = [asyncio.create_task(count(f"count-{i}", 3), name=f"count-{i}") for i in (1, 2, 3)]
    totals = await asyncio.gather(*tasks)
    print(f"totals: {totals}")


if __name__ == "__main__":
    asyncio.run(main())
