"""A producer thread fills a one-slot queue; the main thread takes an item every 50 ms."""

import queue
import threading
import time

jobs = queue.Queue(maxsize=1)


def producer():
    for number in range(3):
        jobs.put(number)  # waits here for a free slot


thread = threading.Thread(target=producer)
thread.start()
taken = []
while not jobs.full():  # the first item is in before the main thread starts taking
    time.sleep(0.001)
for _ in range(3):
    time.sleep(0.05)
    taken.append(jobs.get())
thread.join()
print(taken)
