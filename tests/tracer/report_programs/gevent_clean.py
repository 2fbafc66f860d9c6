"""Clean: gevent workers on a queue, an event waited for, a lock held briefly, a
cooperative gevent.sleep(0) now and then in a computation, and 300 items handed over a queue
as fast as they come (the consumer's waits are short, but the producer works in each). Nothing
here is a finding."""

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


def handed_over():
    items = Queue()
    received = []

    def take():
        for item in items:
            received.append(item)

    def give():
        for item in range(300):
            items.put(item)
            gevent.sleep(0)
        items.put(StopIteration)

    gevent.joinall([gevent.spawn(take), gevent.spawn(give)])
    return len(received)


gevent.joinall([gevent.spawn(worker) for _ in range(3)]
               + [gevent.spawn(crunch), gevent.spawn(producer)])
print(len(totals), handed_over())
