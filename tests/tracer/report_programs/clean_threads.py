"""Clean: threads that share a lock held briefly, a queue with room to spare, an event set once,
a semaphore with a slot for each, and a pool's work. Nothing here is a finding."""

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

lock = threading.Lock()
slots = threading.Semaphore(4)
started = threading.Event()
results = queue.Queue()
totals = []


def worker(chunk):
    started.wait()
    with slots:
        subtotal = sum(chunk)
    with lock:
        totals.append(subtotal)
    results.put(subtotal)


threads = [threading.Thread(target=worker, args=(range(n, n + 100),)) for n in range(0, 400, 100)]
for thread in threads:
    thread.start()
started.set()
for thread in threads:
    thread.join()
with ThreadPoolExecutor(max_workers=2) as pool:
    squares = list(pool.map(lambda n: n * n, range(20)))
print(sum(totals), sum(results.get() for _ in range(4)), sum(squares))
