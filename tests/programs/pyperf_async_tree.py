"""pyperformance's async_tree benchmark (the io variant, gather and TaskGroup), three levels
deep instead of six: a tree of tasks whose leaves sleep."""

import asyncio

from _pyperformance import load

bm = load("async_tree")
bm.NUM_RECURSE_LEVELS = 3
bm.NUM_RECURSE_BRANCHES = 3
bm.IO_SLEEP_TIME = 0.01
asyncio.run(bm.IOAsyncTree().run())
asyncio.run(bm.IOAsyncTree(use_task_groups=True).run())
print("async_tree done")
