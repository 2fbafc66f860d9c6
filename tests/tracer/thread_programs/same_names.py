"""Two threads of one target, unnamed: their lanes are "worker" and "worker #2", and the main
thread's joins name the lane each waits for, even a join of the first thread begun before
that thread recorded anything (the second thread records first)."""

import threading
import time


def worker(spin):
    sum(range(spin))  # records nothing
    time.sleep(0.03)


threads = [threading.Thread(target=worker, args=(spin,)) for spin in (3_000_000, 10)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
