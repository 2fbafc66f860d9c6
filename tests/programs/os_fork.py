"""A bare os.fork(): parent and child both drive a generator; the parent reaps the child."""

import os


def countdown(n):
    while n:
        yield n
        n -= 1


pid = os.fork()
if pid == 0:
    print("child counted", list(countdown(3)))
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("parent counted", list(countdown(2)), "child exit", os.waitstatus_to_exitcode(status))
