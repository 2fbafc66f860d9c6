"""A generator pipeline (source -> filter -> sink) in a script that also imports asyncio for a
helper it never runs: its concurrency is the generators, not an event loop."""

import asyncio  # noqa: F401 - imported, never used for the pipeline


def numbers(limit):
    value = 0
    while value < limit:
        yield value
        value += 1


def evens(values):
    for value in values:
        if value % 2 == 0:
            yield value


def squares(values):
    for value in values:
        yield value * value


print(sum(squares(evens(numbers(20)))))
