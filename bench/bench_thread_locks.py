"""What watching threads' locks and queues costs (tracer.thread_waits): whole processes,
`loopscope trace prog.py -o t.loopscope` against `python prog.py`, alternating rounds.

    .venv/bin/python bench/bench_thread_locks.py [--rounds N] [--baseline OTHER_PYTHON]

Three programs: an uncontended `with lock:` loop in one thread over a lock the program
made (under Loopscope the watched lock: what every take pays), the same loop over a lock the
standard library made (`queue.Queue().mutex`, which stays the C lock), and a contended
producer/consumer on a bounded queue.Queue (four producers, one consumer, the queue full most
of the time: what recorded waits cost). Printed: the untraced time and the medians of the
rounds' traced/untraced ratios, wall and CPU, for this checkout and, with --baseline,
another one. First, in this process, the ns an uncontended `with lock:` takes on the C lock
and on the program's lock (its C fast paths and their pure-Python twin).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_programs import Program, _script
from pairs import alternate_commands, median_ratio

PROGRAMS = (
    Program("uncontended with lock: x 2M (program's lock)", """
import threading
lock = threading.Lock()
count = 0
for _ in range(2_000_000):
    with lock:
        count += 1
print(count)
"""),
    Program("uncontended with lock: x 2M (stdlib's lock)", """
import queue
lock = queue.Queue().mutex
count = 0
for _ in range(2_000_000):
    with lock:
        count += 1
print(count)
"""),
    Program("4 producers, 1 consumer, Queue(maxsize=8), 200k items", """
import queue, threading
jobs = queue.Queue(maxsize=8)
def producer():
    for number in range(50_000):
        jobs.put(number)
def consumer():
    total = 0
    for _ in range(200_000):
        total += jobs.get()
    print(total)
threads = [threading.Thread(target=producer) for _ in range(4)]
threads.append(threading.Thread(target=consumer))
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""),
)


def in_process(rounds: int, count: int = 200_000) -> None:
    """One uncontended `with lock:` in this process: the C lock, and the lock a program gets
    while traced (tracer.thread_waits) on its C fast paths and on their pure-Python twin,
    in turn; ns per `with` over an empty loop, medians."""
    import threading
    import time

    from loopscope.tracer.thread_waits import LockBase, PureLockBase, lock_types

    def per_with(lock: object) -> float:
        started = time.perf_counter()
        for _ in range(count):
            with lock:  # type: ignore[attr-defined]
                pass
        with_lock = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(count):
            pass
        return (with_lock - (time.perf_counter() - started)) / count * 1e9

    made = ("bench", 1, "Lock", 1)
    locks = {"C lock": threading.Lock(),
             "program's lock (C)": lock_types(LockBase)[0](threading.Lock(), made),
             "program's lock (pure)": lock_types(PureLockBase)[0](threading.Lock(), made)}
    times: dict[str, list[float]] = {name: [] for name in locks}
    for _ in range(rounds * 4):
        for name, lock in locks.items():
            times[name].append(per_with(lock))
    print("in process, uncontended `with lock:`, ns: " + ", ".join(
        f"{name} {statistics.median(values):.0f}" for name, values in times.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline", metavar="PYTHON",
                        help="also trace with another checkout's interpreter (e.g. "
                        "/work/main/.venv/bin/python, a Loopscope that does not watch locks)")
    options = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    print(f"Python {sys.version.split()[0]}, {options.rounds} alternating rounds; medians of "
          "the per-round ratios to the untraced run, wall and CPU (both processes)", flush=True)
    in_process(options.rounds)
    sides = ["this"] + (["base"] if options.baseline else [])
    print(f"{'program':56} {'untraced':>9} " + " ".join(
        f"{'wall: ' + side:>10} {'CPU: ' + side:>10}" for side in sides))
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        for program in PROGRAMS:
            script = _script(directory, program)
            commands = {"untraced": [sys.executable, str(script)],
                        "this": [sys.executable, "-m", "loopscope", "trace", str(script), "-o",
                                 str(directory / "this.loopscope")]}
            if options.baseline:
                commands["base"] = [options.baseline, "-m", "loopscope", "trace", str(script),
                                    "-o", str(directory / "base.loopscope")]
            runs = alternate_commands(commands, options.rounds, directory, env)
            untraced = runs["untraced"]
            wall = statistics.median(w for w, _ in untraced)
            print(f"{program.name:56} {wall:8.2f}s " + " ".join(
                f"{median_ratio(runs[side], untraced, 0):9.2f}x "
                f"{median_ratio(runs[side], untraced, 1):9.2f}x" for side in sides), flush=True)


if __name__ == "__main__":
    main()
