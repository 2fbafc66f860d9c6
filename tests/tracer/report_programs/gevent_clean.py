"""Clean: gevent workers on a queue, an event waited for, a lock held briefly and a
cooperative gevent.sleep(0) now and then in a computation. Nothing here is a finding."""

import gevent
from gevent.event import Event
from gevent.lock import Semaphore
from gevent.queue import Queue

jobs = Queue()
lock = Semaphore()
started = Event()
totals = []


def worker():
    started.wait()
    for job in jobs:
        with lock:
            totals.append(job)
        gevent.sleep(0.001)


def crunch():
    total = 0
    for chunk in range(20):
        total += sum(range(chunk * 1000))
        gevent.sleep(0)  # let the others run between chunks
    return total


def producer():
    started.set()
    for job in range(40):
        jobs.put(job)
        gevent.sleep(0.002)
    for _ in range(3):
        jobs.put(StopIteration)


gevent.joinall([gevent.spawn(worker) for _ in range(3)]
               + [gevent.spawn(crunch), gevent.spawn(producer)])
print(len(totals))
