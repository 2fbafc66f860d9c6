"""A process pool: the main thread waits on its futures, which its manager thread sets."""

import concurrent.futures


def square(n):
    return n * n


if __name__ == "__main__":
    with concurrent.futures.ProcessPoolExecutor(max_workers=2) as executor:
        squares = executor.map(square, range(4))
        print(sum(squares))
