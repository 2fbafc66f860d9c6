"""gevent greenlets that each draw their work from a generator: both kinds of lanes at once,
each spawn on the spawning lane at the moment gevent.spawn is called."""

import gevent


def tickets(name, count):
    for number in range(count):
        yield f"{name}{number}"


def worker(name):
    for ticket in tickets(name, 3):
        print("handled", ticket)
        gevent.sleep(0.01)
    return name


def main():
    first = gevent.spawn(worker, "a")
    print("spawned a")
    second = gevent.spawn(worker, "b")
    print("spawned b")
    gevent.joinall([first, second])
    print("done", first.value, second.value)


main()
