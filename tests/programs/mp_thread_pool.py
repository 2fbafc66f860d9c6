"""multiprocessing's ThreadPool, as pyperformance's concurrent_imap uses it: two threads map a
function that neither prints nor waits, so nothing of the threads is recorded."""

from multiprocessing.pool import ThreadPool


def identity(x):
    return x


if __name__ == "__main__":
    with ThreadPool(2) as pool:
        total = sum(pool.imap(identity, range(1000), 10))
    print(total)
