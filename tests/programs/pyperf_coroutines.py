"""pyperformance's coroutines benchmark: recursive fibonacci coroutines driven by hand."""

from _pyperformance import load

bm = load("coroutines")
coro = bm.fibonacci(7)
try:
    while True:
        coro.send(None)
except StopIteration as stop:
    print("fibonacci(7) =", stop.value)
