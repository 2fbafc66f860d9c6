"""A hand-built trace of many lanes that each take one long step: the stall analysis's load.

    .venv/bin/python bench/stalled_trace.py LANES PATH    # writes it as a .loopscope file

One asyncio-like loop runs `lanes` tasks. Each task takes `short_steps` short steps (0.05-2
ms) and one long one (100-250 ms: a stall), sleeping between them on a timer due 1-60 s
later. The loop runs whichever task is due or ready next, one at a time, and dispatches
while it does; a timer that falls due while another task holds the thread fires late, and
a task woken meanwhile waits ready. Recorded through a real Recorder on a FakeClock, so the
events are those a run would record, only with chosen times.
"""

from __future__ import annotations

import heapq
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loopscope.tracer.events import Code, FakeClock, LaneKind  # noqa: E402
from loopscope.tracer.recorder import Recorder  # noqa: E402
from loopscope.tracer.trace import Trace  # noqa: E402

MS = 1_000_000


def stalled_trace(lanes: int = 2000, short_steps: int = 10, seed: int = 11) -> Trace:
    rng = random.Random(seed)
    trace = Trace(meta={"target": f"{lanes} stalled lanes"})
    clock = FakeClock()
    recorder = Recorder(trace, clock=clock)
    loop = recorder.spawn("asyncio loop", LaneKind.LOOP)
    source = recorder.source("/work/app/stalls.py", 12, "step")
    long_source = recorder.source("/work/app/stalls.py", 30, "crunch")
    tasks = [recorder.spawn(f"task {n}", LaneKind.TASK, loop) for n in range(lanes)]
    steps_left = {task: short_steps + 1 for task in tasks}
    long_at = {task: rng.randrange(short_steps + 1) for task in tasks}
    # (due, order, task): when each sleeping task's timer falls due
    timers: list[tuple[int, int, int]] = []
    order = 0
    for task in tasks:
        due = rng.randrange(1, 30_000) * MS
        recorder.state(task, Code.SLEEPING, ("delay_s", due / 1e9, "deadline_ns", due))
        heapq.heappush(timers, (due, order, task))
        order += 1
    samples: list[list[int]] = []
    while timers:
        due, _, task = heapq.heappop(timers)
        if clock.now_ns < due:
            recorder.state(loop, Code.POLL)
            clock.advance(due - clock.now_ns)
        recorder.state(loop, Code.DISPATCH)
        recorder.wake(task, loop, ("cause", "timer", "deadline_ns", due))
        clock.advance(20_000)
        steps_left[task] -= 1
        long = steps_left[task] == long_at[task]
        recorder.state(task, Code.RUNNING, source=long_source if long else source)
        length = rng.randrange(100, 250) * MS if long else rng.randrange(50, 2000) * 1000
        if long:
            samples.extend([clock.now_ns + offset, task, rng.randrange(2)]
                           for offset in range(5 * MS, length, 40 * MS))
        clock.advance(length)
        if steps_left[task]:
            wait = rng.randrange(1_000, 60_000) * MS
            deadline = clock.now_ns + wait
            recorder.state(task, Code.SLEEPING, ("delay_s", wait / 1e9, "deadline_ns", deadline))
            heapq.heappush(timers, (deadline, order, task))
            order += 1
        else:
            recorder.end(task)
    recorder.state(loop, Code.POLL)
    clock.advance(MS)
    recorder.end(loop)
    recorder.close()
    trace.write_samples({
        "first_stack": 0,
        "stacks": [[["/work/app/stalls.py", 31, "crunch"], ["/work/app/stalls.py", 30, "step"]],
                   [["/work/app/stalls.py", 30, "crunch"]]],
        "samples": samples,
    })
    return trace


def main() -> None:
    from loopscope.tracer.formats import save_trace

    lanes, path = int(sys.argv[1]), Path(sys.argv[2])
    save_trace(stalled_trace(lanes), path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
