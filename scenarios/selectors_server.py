"""An echo server on the selectors module: each registered socket carries the callback to run.

As in select-server, the clients are non-blocking sockets registered with the same selector,
so one thread and one loop run both ends of every connection.
"""

from __future__ import annotations

import selectors
import socket
from collections.abc import Callable

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="selectors-server",
    title="A callback echo server on selectors",
    model="select",
    concept=(
        "A selector remembers which sockets to watch, for which events, and what to call when "
        "one is ready: the loop only asks `select()` for the ready keys and calls each key's "
        "callback. The listening socket is registered with `accept`, each new connection with "
        "`read`; a connection asks for EVENT_WRITE (callback `write`) only while an echo is "
        "waiting to go out, then switches back to `read`."
    ),
    observe=(
        "The 'select loop' lane polls; the listener's fd comes back when a client connects and "
        "a connection's fd when its data arrives, with a wake arrow to that socket's lane, which "
        "then runs its callback. A 'conn' lane waits to read, runs `read`, waits to write only "
        "while its echo is queued, runs `write`, and waits to read again."
    ),
    window="poll",
)

CONVERSATIONS = (
    (b"hello", b"world"),
    (b"ping", b"pong", b"ping again"),
    (b"callbacks", b"on", b"ready keys"),
)
POLL_TIMEOUT_S = 5.0



class EchoServer:
    """The server's callbacks; each registration names the one to call when its socket is ready."""

    def __init__(self, selector: selectors.BaseSelector) -> None:
        self.selector = selector
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.setblocking(False)
        self.pending_echo: dict[socket.socket, bytes] = {}
        self.connections: set[socket.socket] = set()
        selector.register(self.listener, selectors.EVENT_READ, self.accept)

    def accept(self, listener: socket.socket) -> None:
        conn, address = listener.accept()
        conn.setblocking(False)
        print(f"server: new connection from port {address[1]}")
        self.connections.add(conn)
        self.selector.register(conn, selectors.EVENT_READ, self.read)

    def read(self, conn: socket.socket) -> None:
        data = conn.recv(1024)
        if data:
            self.pending_echo[conn] = data.upper()
            # something to send: watch for writability, and only now
            self.selector.modify(conn, selectors.EVENT_WRITE, self.write)
        else:
            print(f"server: port {conn.getpeername()[1]} closed")
            self.selector.unregister(conn)
            self.connections.discard(conn)
            conn.close()

    def write(self, conn: socket.socket) -> None:
        conn.send(self.pending_echo.pop(conn))
        self.selector.modify(conn, selectors.EVENT_READ, self.read)  # nothing left: read again

    def close(self) -> None:
        self.selector.unregister(self.listener)
        self.listener.close()


class EchoClient:
    """A non-blocking client registered with the same selector: send, await the echo, repeat."""

    def __init__(self, selector: selectors.BaseSelector, address: tuple[str, int],
                 messages: tuple[bytes, ...]) -> None:
        self.selector = selector
        self.to_send = list(messages)
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(address)
        selector.register(self.sock, selectors.EVENT_WRITE, self.send_next)  # writable = connected

    @property
    def done(self) -> bool:
        return not self.to_send

    def send_next(self, sock: socket.socket) -> None:
        sock.send(self.to_send[0])
        self.selector.modify(sock, selectors.EVENT_READ, self.check_echo)

    def check_echo(self, sock: socket.socket) -> None:
        reply = sock.recv(1024)
        sent = self.to_send.pop(0)
        print(f"client {sock.getsockname()[1]} got back {reply!r}")
        if reply != sent.upper():
            raise RuntimeError(f"expected the echo of {sent!r}, got {reply!r}")
        if self.to_send:
            self.selector.modify(sock, selectors.EVENT_WRITE, self.send_next)
        else:
            self.selector.unregister(sock)
            sock.close()


def main() -> None:
    selector = selectors.DefaultSelector()
    server = EchoServer(selector)
    clients = [EchoClient(selector, server.listener.getsockname(), messages)
               for messages in CONVERSATIONS]

    while server.connections or not all(client.done for client in clients):
        ready = selector.select(POLL_TIMEOUT_S)
        if not ready:
            raise TimeoutError("nothing happened for 5 s: the echo exchange is stuck")
        for key, _mask in ready:
            callback: Callable[[socket.socket], None] = key.data
            callback(key.fileobj)  # type: ignore[arg-type]

    server.close()
    selector.close()
    print("server: all clients served")
