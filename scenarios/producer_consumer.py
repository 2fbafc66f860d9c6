"""A consumer generator driven by send(): two pieces of code taking turns on one thread."""

from __future__ import annotations

from collections.abc import Generator

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="producer-consumer",
    title="Producer and consumer handing off with send()",
    model="generator",
    concept=(
        "A generator is a function that can pause at `yield` and be resumed later. The "
        "producer resumes the consumer with send(item); the consumer handles the item and "
        "pauses again, handing its reply back as the value of send(). Two pieces of code take "
        "turns on a single thread, so no lock is needed."
    ),
    observe=(
        "The producer and the consumer strictly alternate: every switch arrow from the producer "
        "carries the item it sends (None to start the generator, then 1 to 5), every arrow "
        "back carries the consumer's reply ('' to the starting send, then '200 OK'). Only one "
        "lane is running at any instant."
    ),
    window="switch#3..switch#12",
)


def consumer() -> Generator[str, int | None, None]:
    reply = ""
    while True:
        item = yield reply  # hand the reply back and wait for the next item
        if not item:
            return
        print(f"[consumer] consuming {item}...")
        reply = "200 OK"


def produce(worker: Generator[str, int | None, None]) -> None:
    worker.send(None)  # start the generator: it runs up to its first yield
    for item in range(1, 6):
        print(f"[producer] producing {item}...")
        reply = worker.send(item)
        print(f"[producer] consumer replied: {reply}")
    worker.close()


def main() -> None:
    produce(consumer())


if __name__ == "__main__":
    main()
