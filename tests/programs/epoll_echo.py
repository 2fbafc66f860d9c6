"""A select.epoll() echo server that serves its own clients, in the style of the classic
epoll tutorials (Linux): one epoll object, sockets registered by fd, EPOLLIN/EPOLLOUT interest."""

import select
import socket

MESSAGES = [b"alpha", b"beta", b"gamma"]

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
server.setblocking(False)
poller = select.epoll()
poller.register(server, select.EPOLLIN)
sockets = {server.fileno(): server}
pending: dict[int, bytes] = {}

clients = []
for message in MESSAGES:
    client = socket.create_connection(server.getsockname())
    client.sendall(message)
    clients.append((client, message))

echoed = 0
while echoed < len(MESSAGES):
    for fd, event in poller.poll(1.0):
        sock = sockets[fd]
        if sock is server:
            conn, _ = server.accept()
            conn.setblocking(False)
            sockets[conn.fileno()] = conn
            poller.register(conn, select.EPOLLIN)
        elif event & select.EPOLLIN:
            data = sock.recv(1024)
            pending[fd] = data
            poller.modify(sock, select.EPOLLOUT)
        elif event & select.EPOLLOUT:
            sock.send(pending.pop(fd))
            poller.unregister(sock)
            del sockets[fd]
            sock.close()
            echoed += 1

for client, message in clients:
    assert client.recv(1024) == message
    client.close()
server.close()
print("echoed", echoed)
