"""Two greenlets switching to each other by hand, as greenlet's documentation shows."""

from greenlet import greenlet


def ping():
    for i in range(3):
        print("ping", i)
        pong_glet.switch()


def pong():
    for i in range(3):
        print("pong", i)
        ping_glet.switch()


ping_glet = greenlet(ping)
pong_glet = greenlet(pong)
ping_glet.switch()
