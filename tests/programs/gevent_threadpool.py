"""Blocking work handed to gevent's threadpool while greenlets keep running, as gevent's
threadpool example does."""

import time

import gevent
from gevent.threadpool import ThreadPool


def blocking_sum(n):
    time.sleep(0.02)  # a real, blocking sleep: it must not stall the hub
    print("summed", n)
    return sum(range(n))


def ticker():
    for _ in range(3):
        gevent.sleep(0.005)
        print("tick")


pool = ThreadPool(2)
results = [pool.spawn(blocking_sum, n) for n in (10, 100)]
gevent.joinall([gevent.spawn(ticker)])
print("sums", [result.get() for result in results])
