"""A trio echo server (trio.serve_tcp) and three clients making a few round trips each."""

from __future__ import annotations

from functools import partial

import trio

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="trio-echo",
    title="An echo server and its clients with trio streams",
    model="trio",
    concept=(
        "trio.serve_tcp runs a handler task for each connection in a nursery of its own. "
        "Every receive awaits until the socket has data, so one thread serves every "
        "connection, and the server's nursery keeps its handlers inside the program's "
        "structure: cancelling it ends them all."
    ),
    observe=(
        "Each echo handler lane waits in io-wait on its own connection's fd until its client "
        "(which pauses before each message) writes, and the wake arrow comes from the trio run "
        "lane with cause 'fd': its poll found that socket readable. A client that reads before "
        "the reply is there waits the same way on its own socket."
    ),
)

ROUND_TRIPS = 3
PAUSE_S = 0.05  # a client thinks before each message, so its handler waits for it


async def echo(stream: trio.SocketStream) -> None:
    peer = stream.socket.getpeername()
    async for data in stream:
        await stream.send_all(data)
    print(f"server: {peer[0]}:{peer[1]} said goodbye")


async def client(name: str, port: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        for trip in range(1, ROUND_TRIPS + 1):
            await trio.sleep(PAUSE_S)
            await stream.send_all(f"{name} message {trip}\n".encode())
            reply = await stream.receive_some()
            print(f"{name} got back: {reply.decode().strip()}")


async def main() -> None:
    async with trio.open_nursery() as server:
        listeners = await server.start(partial(trio.serve_tcp, echo, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as clients:
            for i in (1, 2, 3):
                clients.start_soon(client, f"client-{i}", port, name=f"client-{i}")
        # let the handlers see the clients' end of file and finish before the server stops
        await trio.sleep(0.05)
        server.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
