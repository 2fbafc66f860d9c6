"""multiprocessing's Pool.map, fed by a generator, as its docs show; the start method is the
first argument (fork by default)."""

import multiprocessing
import sys


def square(x):
    return x * x


def numbers(n):
    yield from range(n)


if __name__ == "__main__":
    method = sys.argv[1] if len(sys.argv) > 1 else "fork"
    with multiprocessing.get_context(method).Pool(3) as pool:
        print(sum(pool.map(square, numbers(50))))
