"""gevent.queue: a producer and two consumers, as in gevent's queue examples."""

import gevent
from gevent.queue import Queue

tasks = Queue()


def worker(name):
    while not tasks.empty():
        item = tasks.get()
        print(f"{name} got {item}")
        gevent.sleep(0.005)


def boss():
    for item in range(6):
        tasks.put_nowait(item)


gevent.spawn(boss).join()
gevent.joinall([gevent.spawn(worker, "steve"), gevent.spawn(worker, "john")])
