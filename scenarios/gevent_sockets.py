"""gevent greenlets doing real socket I/O against a local StreamServer on 127.0.0.1."""

from __future__ import annotations

import socket

import gevent
from gevent.server import StreamServer

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="gevent-sockets",
    title="gevent: greenlets waiting on sockets",
    model="gevent",
    concept=(
        "With gevent, socket calls look blocking but are not: when a recv() would block, the "
        "greenlet registers its socket with the hub and switches away. The hub polls all the "
        "sockets at once and switches back to a greenlet when its socket is ready."
    ),
    observe=(
        "Each client greenlet shows io-wait spans on its socket's file descriptor while the "
        "server's handler greenlet sleeps before replying; the hub polls meanwhile, and wakes "
        "each greenlet with an arrow whose cause is its fd becoming readable."
    ),
)

REPLY_DELAY_S = 0.2


def handle(connection: socket.socket, address: tuple[str, int]) -> None:
    with connection:
        request = connection.recv(1024)
        gevent.sleep(REPLY_DELAY_S)  # pretend to work on the request
        connection.sendall(b"echo: " + request)


def client(port: int, name: str) -> str:
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(name.encode())
        reply = connection.recv(1024).decode()
    print(f"{name} got {reply!r}")
    return reply


def main() -> None:
    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        port = server.server_port
        clients = [gevent.spawn(client, port, f"client-{n}") for n in (1, 2, 3)]
        gevent.joinall(clients, raise_error=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
