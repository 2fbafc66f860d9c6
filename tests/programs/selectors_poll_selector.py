"""The selectors echo server on an explicit PollSelector, with its own clients."""

import selectors
import socket

sel = selectors.PollSelector()
served = []


def accept(sock, mask):
    conn, _addr = sock.accept()
    conn.setblocking(False)
    sel.register(conn, selectors.EVENT_READ, read)


def read(conn, mask):
    data = conn.recv(1000)
    if data:
        conn.send(data)
        served.append(data)
    sel.unregister(conn)
    conn.close()


server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
server.setblocking(False)
sel.register(server, selectors.EVENT_READ, accept)

clients = [socket.create_connection(server.getsockname()) for _ in range(2)]
for i, client in enumerate(clients):
    client.sendall(f"ping {i}".encode())

while len(served) < len(clients):
    for key, mask in sel.select(timeout=1.0):
        key.data(key.fileobj, mask)

for client in clients:
    print(client.recv(1000).decode())
    client.close()
sel.close()
server.close()
