"""One thread holds a lock across a sleep; another comes for it meanwhile and waits."""

import threading
import time

lock = threading.Lock()


def holder():
    with lock:
        time.sleep(0.3)


def waiter():
    while not lock.locked():  # the holder has it before this one comes for it
        time.sleep(0.001)
    with lock:  # waits here
        pass


threads = [threading.Thread(target=holder), threading.Thread(target=waiter)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
