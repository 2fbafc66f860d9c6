"""A program that profiles itself with cProfile and counts its own lines with sys.settrace:
its tools must work under Loopscope as they do without it."""

import cProfile
import pstats
import sys


def ticks(n):
    i = 0
    while i < n:
        yield i
        i += 1


lines = 0


def count_lines(frame, event, arg):
    global lines
    if event == "line" and frame.f_code.co_name == "ticks":
        lines += 1
    return count_lines


profiler = cProfile.Profile()
profiler.enable()
total = sum(ticks(5))
profiler.disable()
calls = pstats.Stats(profiler).total_calls
sys.settrace(count_lines)
total += sum(ticks(3))
sys.settrace(None)
print("total", total, "profiled calls", calls > 0, "traced lines", lines > 0)
