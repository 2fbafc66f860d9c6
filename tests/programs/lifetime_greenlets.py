"""A greenlet the program drops while it is parked: greenlet kills it there and then (its
`finally` runs, its locals are freed), before the line printed after the `del`."""

import gc
import weakref

import greenlet


class Token:
    pass


def worker():
    token = Token()
    weakref.finalize(token, print, "token finalized")
    try:
        greenlet.getcurrent().parent.switch("parked")
    finally:
        print("worker unwound")


def pinger(other):
    while True:
        other = other.switch("ping")


def main():
    parked = greenlet.greenlet(worker)
    print(parked.switch())
    del parked
    print("dropped")

    first = greenlet.greenlet(pinger)
    print(first.switch(greenlet.getcurrent()))
    weakref.finalize(first, print, "pinger finalized")
    del first
    gc.collect()
    print("collected")


main()
