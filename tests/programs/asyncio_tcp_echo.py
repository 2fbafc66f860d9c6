"""The asyncio streams documentation's TCP echo server and client, in one program."""

import asyncio


async def handle_echo(reader, writer):
    data = await reader.read(100)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def tcp_echo_client(port, message):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(message.encode())
    await writer.drain()
    data = await reader.read(100)
    print(f"Received: {data.decode()!r}")
    writer.close()
    await writer.wait_closed()


async def main():
    server = await asyncio.start_server(handle_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await asyncio.gather(*(tcp_echo_client(port, f"hello {i}") for i in range(3)))


asyncio.run(main())
