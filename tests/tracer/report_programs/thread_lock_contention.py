"""Four threads serialise behind one threading.Lock that each holds across a sleep."""

import threading
import time

lock = threading.Lock()


def worker():
    for _ in range(3):
        with lock:  # finding: contention
            time.sleep(0.02)
        time.sleep(0.002)  # outside the lock, so the others get their turn


threads = [threading.Thread(target=worker) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
