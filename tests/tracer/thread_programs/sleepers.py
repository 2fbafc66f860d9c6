"""Two threads the program named sleep and print in turns; the main thread joins them, sleeps."""

import threading
import time


def tick(number):
    for round_ in range(2):
        time.sleep(0.02)  # sleeps here
        print(f"ticker {number} round {round_}")


threads = [threading.Thread(target=tick, args=(n,), name=f"ticker-{n}") for n in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
time.sleep(0.01)  # the main thread has a lane since it joined: this sleep is on it
print("all joined")  # printed on the main thread's lane
