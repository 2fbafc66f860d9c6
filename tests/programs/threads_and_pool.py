"""Plain threads and a ThreadPoolExecutor doing work while the main thread drives generators."""

import threading
from concurrent.futures import ThreadPoolExecutor


def work(n):
    return sum(range(n))


def chunks(n, size):
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


lock = threading.Lock()
totals = []


def add(chunk):
    with lock:
        totals.append(sum(chunk))


threads = [threading.Thread(target=add, args=(chunk,)) for chunk in chunks(100, 25)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
with ThreadPoolExecutor(max_workers=2) as pool:
    pooled = list(pool.map(work, [10, 20, 30]))
print(sum(totals), pooled)
