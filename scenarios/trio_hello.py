"""asyncio-hello with trio: two hello() tasks in a nursery, each sleeping for a second."""

from __future__ import annotations

import trio

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="trio-hello",
    title="Hello, trio: two tasks in a nursery sleeping at the same time",
    model="trio",
    concept=(
        "trio starts tasks only inside a nursery, and the nursery's `async with` block does "
        "not end until every task it started has ended. Like asyncio, each `await` hands "
        "control back to the run loop, so two one-second sleeps take one second together."
    ),
    observe=(
        "Both tasks print 'Hello' before either prints 'Hello again', and their sleeping "
        "spans lie side by side while the trio run lane polls for about a second. main is "
        "blocked on its nursery the whole time: the last task to end wakes it."
    ),
)


async def hello(name: str) -> None:
    print(f"Hello from {name}!")
    await trio.sleep(1)
    print(f"Hello again from {name}!")


async def main() -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hello, "first", name="hello-1")
        nursery.start_soon(hello, "second", name="hello-2")


if __name__ == "__main__":
    trio.run(main)
