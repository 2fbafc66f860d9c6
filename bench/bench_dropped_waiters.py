"""Tasks the program drops while they wait on futures nobody completes: how many are still
alive at the end, and the peak resident size, untraced and under `loopscope trace`.

    .venv/bin/python bench/bench_dropped_waiters.py [OTHER_PYTHON ...]

The program makes 40 rounds of 1,000 tasks, each waiting on a future of its own, and drops
them all each round; a WeakSet counts the live ones before and after a last gc.collect(),
and getrusage gives the peak RSS. It runs untraced, then traced by this checkout's Loopscope
and by each OTHER_PYTHON's (another checkout's interpreter, e.g. main's). Untraced, the
collector frees each dropped round (the task and its future hold each other); a tracer that
holds the futures keeps all 40,000.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

PROGRAM = '''
import asyncio, gc, resource, weakref

alive = weakref.WeakSet()

async def wait_for(future):
    await future

async def main():
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: None)  # no "destroyed but pending" flood
    for _ in range(40):
        futures = [loop.create_future() for _ in range(1000)]
        tasks = [asyncio.create_task(wait_for(f)) for f in futures]
        alive.update(tasks)
        await asyncio.sleep(0)
        del futures, tasks
    before = len(alive)
    gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"alive {before:>6} before the last collection, {len(alive):>6} after; peak {peak} MB")

asyncio.run(main())
'''


def run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    return done.stdout.strip().splitlines()[-1]


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        program = Path(folder) / "dropped_waiters.py"
        program.write_text(PROGRAM, encoding="utf-8")
        trace = str(Path(folder) / "run.loopscope")
        print(f"untraced        {run([sys.executable, str(program)])}")
        for python in [sys.executable, *sys.argv[1:]]:
            side = "this checkout" if python == sys.executable else python
            traced = run([python, "-m", "loopscope", "trace", str(program), "-o", trace])
            print(f"traced          {traced}   ({side})")


if __name__ == "__main__":
    main()
