"""multiprocessing's ThreadPool whose work sleeps: its workers are recorded."""

import time
from multiprocessing.pool import ThreadPool


def nap(x):
    time.sleep(0.01)
    return x


with ThreadPool(2) as pool:
    print(sum(pool.map(nap, range(4))))
