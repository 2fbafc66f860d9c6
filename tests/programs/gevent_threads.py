"""Plain threading code made cooperative by gevent's monkey-patching, as gevent's docs suggest
for existing programs: each "thread" is a greenlet, sleeping through the hub."""

from gevent import monkey

monkey.patch_all()

import threading  # noqa: E402
import time  # noqa: E402

finished = []


def download(index):
    time.sleep(0.01 * (3 - index))
    finished.append(index)


threads = [threading.Thread(target=download, args=(i,)) for i in range(3)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("finished in order", finished)
