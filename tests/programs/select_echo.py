"""The classic select.select() echo server with message queues, and its own clients."""

import queue
import select
import socket

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
server.setblocking(False)
inputs, outputs, queues = [server], [], {}

clients = []
for text in (b"one", b"two"):
    client = socket.create_connection(server.getsockname())
    client.sendall(text)
    clients.append((client, text))

served = 0
while served < len(clients):
    readable, writable, _ = select.select(inputs, outputs, inputs, 1.0)
    for sock in readable:
        if sock is server:
            conn, _ = sock.accept()
            conn.setblocking(False)
            inputs.append(conn)
            queues[conn] = queue.Queue()
        else:
            data = sock.recv(1024)
            queues[sock].put(data)
            if sock not in outputs:
                outputs.append(sock)
    for sock in writable:
        try:
            data = queues[sock].get_nowait()
        except queue.Empty:
            outputs.remove(sock)
            continue
        sock.send(data)
        outputs.remove(sock)
        inputs.remove(sock)
        sock.close()
        served += 1

for client, _text in clients:
    print(client.recv(1024).decode())
    client.close()
server.close()
