"""multiprocessing's first example: a Pool of three processes maps a function over a range."""

from multiprocessing import Pool


def square(x):
    return x * x


if __name__ == "__main__":
    with Pool(3) as pool:
        print(pool.map(square, range(10)))
