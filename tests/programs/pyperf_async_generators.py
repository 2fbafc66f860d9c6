"""pyperformance's async_generators benchmark, run as its function is: one task walking a tree
of async generators."""

import asyncio

from _pyperformance import load

bm = load("async_generators")
asyncio.run(bm.bench_async_generators())
print("async generators walked")
