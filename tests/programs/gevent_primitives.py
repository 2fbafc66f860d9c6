"""gevent's primitives, each waited on once: a lock, an RLock, an event and a bounded queue
(empty for a getter, full for a putter). Each wait ends when another greenlet lets it go."""

import gevent
from gevent.event import Event
from gevent.lock import RLock, Semaphore
from gevent.queue import Queue

lock = Semaphore()
guard = RLock()
started = Event()
jobs = Queue(maxsize=1)
pair = [Semaphore() for _ in range(2)]


def holder():
    with lock:
        gevent.sleep(0.01)


def waiter():
    with lock:
        print("waiter got the lock")


def second_holder():
    with pair[1]:
        gevent.sleep(0.01)


def second_waiter():
    with pair[1]:
        print("second_waiter got the second lock")


def rlock_holder():
    with guard, guard:
        gevent.sleep(0.01)


def rlock_waiter():
    with guard:
        print("rlock_waiter got the rlock")


def signaller():
    gevent.sleep(0.01)
    started.set()


def listener():
    started.wait()
    print("listener saw the event")


def consumer():
    print("consumer got", jobs.get())


def producer():
    gevent.sleep(0.01)
    jobs.put(1)
    jobs.put(2)  # full until the consumer takes 1
    print("producer put both")


def drainer():
    gevent.sleep(0.05)
    print("drainer got", jobs.get())


gevent.joinall([gevent.spawn(function) for function in (
    holder, waiter, second_holder, second_waiter, rlock_holder, rlock_waiter, signaller,
    listener, consumer, producer, drainer)])
print(type(lock).__name__, isinstance(lock, Semaphore), type(jobs).__name__)
