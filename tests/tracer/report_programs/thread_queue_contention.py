"""Four producer threads queue up behind a one-slot queue.Queue that a slow consumer drains."""

import queue
import threading
import time

jobs = queue.Queue(maxsize=1)


def producer(name):
    for number in range(3):
        jobs.put((name, number))  # finding: contention


def consumer():
    for _ in range(12):
        jobs.get()
        time.sleep(0.01)


threads = [threading.Thread(target=producer, args=(name,)) for name in "abcd"]
threads.append(threading.Thread(target=consumer))
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
