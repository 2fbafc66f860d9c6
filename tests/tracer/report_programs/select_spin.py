"""A select loop that polls with a zero timeout: it spins while nothing happens."""

import select
import socket
import time

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
server.setblocking(False)
deadline = time.monotonic() + 0.2
while time.monotonic() < deadline:
    select.select([server], [], [], 0)  # finding: zero-timeout-spin
server.close()
