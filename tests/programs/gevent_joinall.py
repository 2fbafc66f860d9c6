"""gevent's introduction: tasks spawned and joined, each sleeping a different time."""

import gevent


def task(pid, delay):
    gevent.sleep(delay)
    print(f"Task {pid} done")


gevent.joinall([gevent.spawn(task, i, 0.01 * (3 - i)) for i in range(3)])
