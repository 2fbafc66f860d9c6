"""gevent's select.poll() after work in gevent's threadpool: the pool's worker thread sleeps
on a hub of its own (time.sleep is patched), which must not leak into the main hub's polls.
A greenlet polls with timeout 0 until data arrives, then a poll blocks (no timeout) until
the pool writes after a real, unpatched sleep: the hub's poll then waits for nothing but that
fd, and its timeout must say "none", not 0.0."""

from gevent import monkey

monkey.patch_all()

import select  # noqa: E402 - after patching, as gevent's examples do
import socket  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
from gevent.threadpool import ThreadPool  # noqa: E402

real_sleep = monkey.get_original("time", "sleep")
pool = ThreadPool(1)
pool.spawn(time.sleep, 0.02).get()  # the worker thread's own hub waits on a timer

reader, writer = socket.socketpair()
poller = select.poll()
poller.register(reader, select.POLLIN)


def write_later(delay, data):
    real_sleep(delay)  # blocks the worker thread only
    writer.send(data)


def watch():
    pool.spawn(write_later, 0.05, b"x")
    spins = 0
    while not poller.poll(0):  # busy: hands the hub a turn, never waits
        spins += 1
        gevent.sleep(0)
    print("busy polls", "many" if spins > 1 else spins, reader.recv(1))

    pool.spawn(write_later, 0.2, b"y")
    print("blocked poll got", len(poller.poll()), reader.recv(1))


gevent.spawn(watch).join()
reader.close()
writer.close()
