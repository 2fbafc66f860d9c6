"""The main greenlet spawns its workers and then computes before joining them: the workers
are ready the whole time, and the main greenlet is the one holding them up."""

import time

import gevent


def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end: pass  # noqa: E701  # finding: stall


def worker(number):
    gevent.sleep(0.01 * number)


workers = [gevent.spawn(worker, number) for number in range(3)]
busy(0.3)
gevent.joinall(workers)
