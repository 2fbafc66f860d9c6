"""Clean: a program that takes a while to start (a heavy import, reading its configuration)
before it spawns any greenlet. Nothing was there to be held up, so this is no stall."""

import time

import gevent


def busy(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end: pass  # noqa: E701


def worker(number):
    gevent.sleep(0.01 * number)


busy(0.3)  # the program starting, with nothing yet to run beside it
gevent.joinall([gevent.spawn(worker, number) for number in range(3)])
