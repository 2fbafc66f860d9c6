"""A ThreadPoolExecutor's workers (named by its thread_name_prefix) share one lock."""

import concurrent.futures
import threading
import time

totals = {}
totals_lock = threading.Lock()


def load(n):
    with totals_lock:
        time.sleep(0.02)
        totals[n] = n * n
    print(f"loaded {n}")
    return n * n


with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="loader") as pool:
    print(sum(pool.map(load, range(4))))
