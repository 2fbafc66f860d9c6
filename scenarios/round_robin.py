"""Two generators interleaved by a tiny scheduler that calls next() on each in turn."""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterable

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="round-robin",
    title="Round-robin scheduling of generators with next()",
    model="generator",
    concept=(
        "Each `yield` is a point where a generator gives control back to whoever called "
        "next() on it. A scheduler that keeps generators in a queue and calls next() on the "
        "one at the front, then puts it at the back, runs them in turns: this is cooperative "
        "multitasking in its simplest form."
    ),
    observe=(
        "The scheduler hands control to task_a, then task_b, then task_a again: a, b, a, b... "
        "Each task runs only between the scheduler's next() and its own yield; when a task "
        "returns, its lane ends and the other task keeps taking turns alone."
    ),
)

Task = Generator[str, None, str]


def task_a() -> Task:
    for step in range(1, 4):
        print(f"task_a: step {step}")
        yield f"a{step}"
    return "a done"


def task_b() -> Task:
    for step in range(1, 4):
        print(f"task_b: step {step}")
        yield f"b{step}"
    return "b done"


def scheduler(tasks: Iterable[Task]) -> None:
    queue = deque(tasks)
    while queue:
        task = queue.popleft()
        try:
            next(task)
        except StopIteration as finished:
            print(f"scheduler: a task finished with {finished.value!r}")
        else:
            queue.append(task)


def main() -> None:
    scheduler([task_a(), task_b()])


if __name__ == "__main__":
    main()
