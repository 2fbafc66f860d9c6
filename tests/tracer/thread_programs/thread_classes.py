"""Threads made from a Thread subclass and a Timer, none of them named by the program."""

import threading
import time


class Downloader(threading.Thread):
    def __init__(self, url):
        super().__init__()
        self.url = url

    def run(self):
        time.sleep(0.01)  # fetching self.url


def remind():
    print("reminded")


downloads = [Downloader(url) for url in ("a.example", "b.example")]
reminder = threading.Timer(0.2, remind)  # still waiting when the main thread joins it
for thread in [*downloads, reminder]:
    thread.start()
for thread in [*downloads, reminder]:
    thread.join()
print("done")
