"""Two hello() tasks that each sleep for a second: the sleeps overlap on one thread."""

from __future__ import annotations

import asyncio

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="asyncio-hello",
    title="Hello, asyncio: two tasks sleeping at the same time",
    model="asyncio",
    concept=(
        "An `await` is a point where a coroutine hands control back to the event loop. While "
        "one task waits for asyncio.sleep(1), the loop runs the other, so two one-second "
        "sleeps take one second together on a single thread."
    ),
    observe=(
        "Both tasks print 'Hello' before either prints 'Hello again': each runs until its "
        "await, then sleeps. The two sleeping spans lie side by side, the loop lane polls "
        "for about a second, a timer wakes both tasks, and the run takes about 1 s, not 2 s."
    ),
)


async def hello(name: str) -> None:
    print(f"Hello from {name}!")
    await asyncio.sleep(1)
    print(f"Hello again from {name}!")


async def main() -> None:
    await asyncio.gather(
        asyncio.create_task(hello("first"), name="hello-1"),
        asyncio.create_task(hello("second"), name="hello-2"),
    )


if __name__ == "__main__":
    asyncio.run(main())
