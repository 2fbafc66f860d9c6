"""A greenlet that computes without yielding holds up the gevent hub and the ticker."""

import time

import gevent


def ticker():
    for _ in range(5):
        gevent.sleep(0.05)


def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end: pass  # noqa: E701  # finding: stall


def hog():
    gevent.sleep(0.06)
    busy(0.3)


gevent.joinall([gevent.spawn(ticker), gevent.spawn(hog)])
