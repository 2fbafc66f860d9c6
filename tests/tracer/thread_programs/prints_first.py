"""The main thread prints before it starts a thread and before its first wait."""

import threading
import time


def work():
    time.sleep(0.01)


print("starting")
worker = threading.Thread(target=work)
worker.start()
print("started")
worker.join()
print("joined")
