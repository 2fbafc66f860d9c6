"""Generator coroutines primed by a @coroutine decorator and chained (a grep pipeline), the
way the yield-based coroutine tutorials teach them."""

import functools


def coroutine(func):
    @functools.wraps(func)
    def start(*args, **kwargs):
        cr = func(*args, **kwargs)
        next(cr)
        return cr

    return start


@coroutine
def printer():
    while True:
        line = yield
        print(line)


@coroutine
def grep(pattern, target):
    while True:
        line = yield
        if pattern in line:
            target.send(line)


def follow(lines, target):
    for line in lines:
        target.send(line)


follow(["python generators", "a line", "python coroutines"], grep("python", printer()))
