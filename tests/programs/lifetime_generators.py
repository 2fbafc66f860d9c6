"""Generators the program drops half-way: each is freed where the program lets go of it (its
own `finally` runs then), not when the run ends."""

import gc
import weakref


class Token:
    pass


def counter(token):
    count = 0
    try:
        while True:
            count += yield count
    finally:
        print("counter closed")


def main():
    token = Token()
    weakref.finalize(token, print, "token finalized")
    numbers = counter(token)
    next(numbers)
    numbers.send(1)
    del token, numbers
    print("counter dropped")

    token = Token()
    looped = counter(token)
    token.generator = looped  # a cycle: only the collector frees it
    next(looped)
    weakref.finalize(token, print, "cycle finalized")
    del token, looped
    gc.collect()
    print("collected")


main()
