"""A gevent client looking its server up (gevent's resolver asks its threadpool), beside work
the program hands to the threadpool itself."""

import gevent
from gevent import socket
from gevent.server import StreamServer


def echo(sock, _address):
    sock.sendall(sock.recv(100))
    sock.close()


def total(n):
    return sum(range(n))


server = StreamServer(("127.0.0.1", 0), echo)
server.start()
client = socket.create_connection(("127.0.0.1", server.server_port))  # the resolver's thread
client.sendall(b"hi")
print(client.recv(100).decode())
client.close()
print(gevent.get_hub().threadpool.apply(total, (10,)))  # the program's own thread work
server.stop()
