"""Two greenlets that sleep with gevent.sleep: the hub runs one while the other waits."""

from __future__ import annotations

import gevent

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="gevent-switching",
    title="gevent: sleeping greenlets switch through the hub",
    model="gevent",
    concept=(
        "gevent runs greenlets on one thread with a hub that owns the event loop. A greenlet "
        "that would block (here gevent.sleep) switches to the hub instead, and the hub "
        "switches to whichever greenlet can run, so waits overlap instead of adding up."
    ),
    observe=(
        "foo sleeps 2 s and bar 1 s, yet bar finishes first and the whole run takes about "
        "2 s, not 3 s. No greenlet switches straight to another: every arrow goes to or comes "
        "from the gevent hub, which polls while both greenlets are sleeping."
    ),
)


def foo() -> str:
    print("foo: running, now sleeping for 2 s")
    gevent.sleep(2)
    print("foo: awake again")
    return "foo done"


def bar() -> str:
    print("bar: running, now sleeping for 1 s")
    gevent.sleep(1)
    print("bar: awake again")
    return "bar done"


def main() -> None:
    gevent.joinall([gevent.spawn(foo), gevent.spawn(bar)])


if __name__ == "__main__":
    main()
