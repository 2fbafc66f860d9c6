"""gevent's StreamServer echo example, with client greenlets talking to it."""

from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402


def echo(sock, address):
    data = sock.recv(1024)
    sock.sendall(data)
    sock.close()


def client(port, text):
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(text.encode())
        print("client got", conn.recv(1024).decode())


server = StreamServer(("127.0.0.1", 0), echo)
server.start()
gevent.joinall([gevent.spawn(client, server.server_port, f"msg {i}") for i in range(3)])
server.stop()
