"""What watching threads' locks and queues costs (tracer.thread_waits): whole processes,
`loopscope trace prog.py -o t.loopscope` against `python prog.py`, alternating rounds.

    .venv/bin/python bench/bench_thread_locks.py [--rounds N]

Two programs: an uncontended `with lock:` loop in one thread (a lock the program made, so
under Loopscope it is the watched lock: the cost every acquire pays), and a contended
producer/consumer on a bounded queue.Queue (four producers, one consumer, the queue full most
of the time: the cost of recorded waits). Each is also run with the loop over a lock the
standard library made (`queue.Queue().mutex`), which stays the C lock: the same loop, for
the difference. Printed: median untraced and traced times and the median of the pairs'
ratios, and events recorded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_programs import Program, measure

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, {options.rounds} alternating rounds each; medians; "
          "whole processes, start-up and saving included", flush=True)
    print(f"{'program':56} {'untraced':>9} {'traced':>9} {'ratio':>7} {'events':>9}")
    with tempfile.TemporaryDirectory() as folder:
        for program in PROGRAMS:
            result = measure(program, options.rounds, Path(folder))
            base, run = statistics.median(result.untraced), statistics.median(result.traced)
            print(f"{program.name:56} {base:8.3f}s {run:8.3f}s {result.ratio:6.2f}x "
                  f"{result.events:9,}", flush=True)


if __name__ == "__main__":
    main()
