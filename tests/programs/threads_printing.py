"""Threads that print: a heartbeat thread beside an asyncio loop, then two workers the main
thread waits for with join(). Each thread's lines belong on a lane of that thread."""

import asyncio
import threading
import time

beat = threading.Event()


def heartbeat(stop):
    count = 0
    while not stop.is_set():
        count += 1
        print("beat", count)
        beat.set()
        stop.wait(0.01)


def worker(name):
    for step in range(2):
        print(f"{name} step {step}")
        time.sleep(0.01)


async def main():
    stop = threading.Event()
    thread = threading.Thread(target=heartbeat, args=(stop,))
    thread.start()
    await asyncio.to_thread(beat.wait)
    await asyncio.sleep(0.05)
    stop.set()
    thread.join()
    print("loop done")


asyncio.run(main())
workers = [threading.Thread(target=worker, args=(name,)) for name in ("left", "right")]
for thread in workers:
    thread.start()
for thread in workers:
    thread.join()
print("joined")
