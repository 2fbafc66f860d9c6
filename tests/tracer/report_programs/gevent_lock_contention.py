"""Four greenlets serialise behind one gevent lock that each holds across a sleep."""

import gevent
from gevent.lock import Semaphore

lock = Semaphore()


def worker():
    for _ in range(3):
        with lock:  # finding: contention
            gevent.sleep(0.02)
        gevent.sleep(0.001)  # outside the lock, so the others get their turn


gevent.joinall([gevent.spawn(worker) for _ in range(4)])
