"""A greenlet that yields to the hub with gevent.sleep(0) in a loop instead of waiting for
what it wants (an Event)."""

import gevent

ready = []


def poll_flag():
    while not ready:
        gevent.sleep(0)  # finding: self-wake-storm


def setter():
    gevent.sleep(0.1)
    ready.append(True)


gevent.joinall([gevent.spawn(poll_flag), gevent.spawn(setter)])
