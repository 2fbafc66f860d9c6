"""Four producers queue up behind a one-slot gevent queue that a slow consumer drains."""

import gevent
from gevent.queue import Queue

jobs = Queue(maxsize=1)


def producer(name):
    for number in range(3):
        jobs.put((name, number))  # finding: contention


def consumer():
    for _ in range(12):
        jobs.get()
        gevent.sleep(0.01)


gevent.joinall([gevent.spawn(producer, name) for name in "abcd"] + [gevent.spawn(consumer)])
