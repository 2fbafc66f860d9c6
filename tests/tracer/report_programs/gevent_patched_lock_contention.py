"""Plain threading code under gevent's monkey-patching: four "threads" (greenlets) serialise
behind one threading.Lock (gevent's lock after patching) that each holds across a sleep."""

from gevent import monkey

monkey.patch_all()

import threading  # noqa: E402
import time  # noqa: E402

lock = threading.Lock()


def worker():
    for _ in range(3):
        with lock:  # finding: contention
            time.sleep(0.02)
        time.sleep(0.001)  # outside the lock, so the others get their turn


threads = [threading.Thread(target=worker) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
