"""An asyncio.start_server echo server and three clients making a few round trips each."""

from __future__ import annotations

import asyncio

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="asyncio-echo",
    title="An echo server and its clients with asyncio streams",
    model="asyncio",
    concept=(
        "asyncio.start_server calls a handler coroutine for each connection, each in its own "
        "task. Every read awaits until the socket has data, so one thread serves all the "
        "connections, switching whenever one of them would have to wait."
    ),
    observe=(
        "Each client lane (client-1..3) and each server handler lane alternates short running "
        "steps with io-wait on its own socket's fd. The wake arrows come from the loop lane "
        "with cause 'fd': a poll returned that socket readable, which woke the task."
    ),
)

ROUND_TRIPS = 3


handlers: set[asyncio.Task[object]] = set()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    task = asyncio.current_task()
    if task is not None:
        handlers.add(task)
    peer = writer.get_extra_info("peername")
    while data := await reader.readline():
        writer.write(data)
        await writer.drain()
    print(f"server: {peer[0]}:{peer[1]} said goodbye")
    writer.close()


async def client(name: str, port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for trip in range(1, ROUND_TRIPS + 1):
        writer.write(f"{name} message {trip}\n".encode())
        await writer.drain()
        reply = await reader.readline()
        print(f"{name} got back: {reply.decode().strip()}")
    writer.close()
    await writer.wait_closed()


async def main() -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        clients = [
            asyncio.create_task(client(f"client-{i}", port), name=f"client-{i}") for i in (1, 2, 3)
        ]
        await asyncio.gather(*clients)
        # the handlers see the clients' end of file and finish before the server closes
        await asyncio.gather(*handlers)


if __name__ == "__main__":
    asyncio.run(main())
