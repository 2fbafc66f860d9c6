"""Two threads of one target, unnamed: their lanes are "worker" and "worker #2", and the main
thread's joins name the lane each waits for."""

import threading
import time


def worker():
    time.sleep(0.03)


threads = [threading.Thread(target=worker) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
