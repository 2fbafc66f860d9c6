"""A thread pool the program makes: the main thread waits on its futures, its idle worker
waits for work, and the pool's shutdown joins the worker."""

import concurrent.futures
import time

pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker")


def slow(n):
    time.sleep(0.02)  # works here
    return n


first = pool.submit(slow, 1)
print(first.result())
time.sleep(0.1)  # the worker is idle meanwhile
second = pool.submit(slow, 2)
for done in concurrent.futures.as_completed([second]):
    print(done.result())
time.sleep(0.1)  # idle again
pool.shutdown()
print("shut down")
