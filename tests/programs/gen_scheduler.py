"""A round-robin task scheduler built on generators, in the style of the classic course on
generator coroutines: tasks yield to the scheduler, which resumes each in turn."""

from collections import deque


class Scheduler:
    def __init__(self):
        self.ready = deque()

    def new(self, target):
        self.ready.append(target)

    def mainloop(self):
        while self.ready:
            task = self.ready.popleft()
            try:
                task.send(None)
            except StopIteration:
                continue
            self.ready.append(task)


def countdown(name, n):
    while n > 0:
        print(f"{name} {n}")
        yield
        n -= 1


scheduler = Scheduler()
scheduler.new(countdown("foo", 3))
scheduler.new(countdown("bar", 2))
scheduler.mainloop()
