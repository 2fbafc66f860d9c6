"""select.poll() as programs use it: a loop that polls with timeout 0 and does a little work
between polls until data arrives, then a poll blocked with no timeout until a thread sends,
then a poll that waits out its 50 ms timeout with nothing ready. Each poll must last as long
as it really waited."""

import select
import socket
import threading
import time

reader, writer = socket.socketpair()
poller = select.poll()
poller.register(reader, select.POLLIN)


def send_later(delay, data):
    time.sleep(delay)
    writer.send(data)


threading.Thread(target=send_later, args=(0.05, b"x")).start()
spins = 0
while not poller.poll(0):  # busy: never waits
    spins += 1
    sum(range(2000))
print("busy polls", "many" if spins > 1 else spins, reader.recv(1))

threading.Thread(target=send_later, args=(0.3, b"y")).start()  # long after the poll begins
ready = poller.poll()  # blocked until the thread sends
print("blocked poll got", len(ready), reader.recv(1))

print("timed out poll got", len(poller.poll(50)))
reader.close()
writer.close()
