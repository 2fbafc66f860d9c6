"""Greenlets switched by hand: each switch() names the greenlet that runs next."""

from __future__ import annotations

from greenlet import greenlet

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="greenlet-manual",
    title="Greenlets switched by hand",
    model="greenlet",
    concept=(
        "A greenlet is a function with its own stack that runs only when some other greenlet "
        "switches to it. Nothing decides for you: every switch() names the greenlet to run "
        "next and suspends the caller exactly where it is, like a manual gearbox."
    ),
    observe=(
        "The switch arrows follow the program text: main starts first, first hands over to "
        "second, second back to first, first to second again; when a greenlet's function "
        "returns, control goes back to its parent, main, and first is left suspended forever."
    ),
)


# The greenlets, created afresh by each run of main() so that every run starts from the top.
greenlets: dict[str, greenlet] = {}


def first() -> None:
    print("first: 1")
    greenlets["second"].switch()
    print("first: 3")
    greenlets["second"].switch()
    print("first: never printed: nobody switches back to first")


def second() -> None:
    print("second: 2")
    greenlets["first"].switch()
    print("second: 4")


def main() -> None:
    greenlets["first"] = greenlet(first)
    greenlets["second"] = greenlet(second)
    greenlets["first"].switch()
    print("main: back in main; first is still suspended")


if __name__ == "__main__":
    main()
