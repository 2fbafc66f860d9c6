"""Each kind of primitive once, each waited on by a thread: the program must work unchanged."""

import threading
import time

rlock = threading.RLock()
ready = threading.Condition(rlock)
slots = threading.BoundedSemaphore(1)
go = threading.Event()
state = []


def signaller():
    go.wait()  # waits here for the main thread
    with slots:
        time.sleep(0.05)
        with rlock, rlock:  # reentrant: no wait
            state.append("ready")
            ready.notify_all()
        time.sleep(0.1)  # the listener comes for the slot meanwhile


def listener():
    with ready:
        ready.wait_for(lambda: state)  # waits here for the signaller
    time.sleep(0.01)
    with slots:  # waits here until the signaller lets go
        state.append("slot")


threads = [threading.Thread(target=signaller), threading.Thread(target=listener)]
for thread in threads:
    thread.start()
time.sleep(0.2)  # both threads are waiting by then
go.set()
for thread in threads:
    thread.join()
print(state)
