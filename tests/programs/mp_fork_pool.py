"""multiprocessing's Pool.map on the fork start method, fed by a generator, as its docs show."""

import multiprocessing


def square(x):
    return x * x


def numbers(n):
    yield from range(n)


if __name__ == "__main__":
    with multiprocessing.get_context("fork").Pool(3) as pool:
        print(sum(pool.map(square, numbers(50))))
