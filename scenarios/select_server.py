"""An echo server built on select.select, with a reply queue per connection and an outputs list.

The clients are non-blocking sockets driven by the very same select loop, so one thread and one
loop do everything and the timeline shows the whole conversation, both ends of each connection.
"""

from __future__ import annotations

import queue
import select
import socket

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="select-server",
    title="An echo server on select.select with per-connection queues",
    model="select",
    concept=(
        "select.select() takes the sockets to watch for reading and for writing and blocks "
        "until at least one is ready, so one thread can serve many connections: a readable "
        "listening socket means a client is connecting, a readable connection means data "
        "arrived. Replies go into a per-connection queue, and a connection joins the `outputs` "
        "list only while its queue has something to send. The three clients are non-blocking "
        "sockets served by the same loop (no threads), so every lane you see is one socket "
        "of this one thread."
    ),
    observe=(
        "Each poll on the 'select loop' lane returns the fds that are ready: the listener's fd "
        "when a client connects, a connection's fd when its data arrives. A wake arrow goes "
        "from the loop to each returned socket, whose lane then runs the handling code. A "
        "'conn' lane waits only to read until it has received a message; it waits to write "
        "(mode read+write) only while its echo is queued, and goes back to read-only after."
    ),
    window="poll",
)

CONVERSATIONS = (
    (b"hello", b"world"),
    (b"ping", b"pong", b"ping again"),
    (b"select", b"is", b"level-triggered"),
)
POLL_TIMEOUT_S = 5.0


class EchoClient:
    """One client: connects, then sends each message and waits for its echo before the next."""

    def __init__(self, address: tuple[str, int], messages: tuple[bytes, ...]) -> None:
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(address)  # in progress; select reports it writable once connected
        self.to_send = list(messages)
        self.expecting: bytes | None = None  # the echo we are waiting for

    @property
    def done(self) -> bool:
        return not self.to_send and self.expecting is None

    def on_writable(self) -> None:
        self.expecting = self.to_send.pop(0)
        self.sock.send(self.expecting)

    def on_readable(self) -> None:
        reply = self.sock.recv(1024)
        print(f"client {self.sock.getsockname()[1]} got back {reply!r}")
        if reply != (self.expecting or b"").upper():
            raise RuntimeError(f"expected the echo of {self.expecting!r}, got {reply!r}")
        self.expecting = None
        if self.done:
            self.sock.close()


def open_listener() -> socket.socket:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    return server


def main() -> None:
    server = open_listener()
    inputs: list[socket.socket] = [server]  # the server reads from these
    outputs: list[socket.socket] = []  # connections with queued replies, only until drained
    replies: dict[socket.socket, queue.Queue[bytes]] = {}
    clients = {c.sock: c for c in (EchoClient(server.getsockname(), m) for m in CONVERSATIONS)}

    while inputs[1:] or not all(c.done for c in clients.values()):
        waiting = [c for c in clients.values() if not c.done]
        readable, writable, _ = select.select(
            inputs + [c.sock for c in waiting if c.expecting is not None],
            outputs + [c.sock for c in waiting if c.expecting is None],
            [],
            POLL_TIMEOUT_S,
        )
        if not (readable or writable):
            raise TimeoutError("nothing happened for 5 s: the echo exchange is stuck")

        for sock in readable:
            if sock is server:  # a client is connecting
                conn, address = server.accept()
                conn.setblocking(False)
                print(f"server: new connection from port {address[1]}")
                inputs.append(conn)
                replies[conn] = queue.Queue()
            elif sock in replies:  # a connection sent us something (or closed)
                data = sock.recv(1024)
                if data:
                    replies[sock].put(data.upper())
                    if sock not in outputs:
                        outputs.append(sock)
                else:
                    print(f"server: port {sock.getpeername()[1]} closed")
                    inputs.remove(sock)
                    if sock in outputs:
                        outputs.remove(sock)
                    del replies[sock]
                    sock.close()
            else:
                clients[sock].on_readable()

        for sock in writable:
            if sock in replies:
                sock.send(replies[sock].get_nowait())
                if replies[sock].empty():
                    outputs.remove(sock)  # nothing more to send: stop asking about writability
            elif sock in clients:
                clients[sock].on_writable()

    server.close()
    print("server: all clients served")
