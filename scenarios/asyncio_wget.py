"""Three HTTP fetches over asyncio streams at once, against local stand-ins for three hosts."""

from __future__ import annotations

import asyncio

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="asyncio-wget",
    title="Fetching three pages at once with open_connection",
    model="asyncio",
    concept=(
        "open_connection gives a reader and a writer over a socket; reading a line awaits "
        "until the bytes arrive. Three fetches started together each wait for their own "
        "server, and the loop serves whichever socket becomes readable first."
    ),
    observe=(
        "The three fetch lanes (named after their hosts) spend most of their time in io-wait "
        "on their own sockets, and those waits overlap. Each wakes on fd readiness when its "
        "server answers, fastest first, and the whole run takes about as long as the slowest "
        "server (0.9 s), not the sum of the three (1.8 s)."
    ),
)

# Each stand-in host answers after its own delay, like servers at different distances.
HOSTS = {"www.sina.com.cn": 0.3, "www.sohu.com": 0.6, "www.163.com": 0.9}


async def serve_slowly(delay: float) -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass  # skip the request's header lines
        await asyncio.sleep(delay)
        writer.write(
            b"HTTP/1.0 200 OK\r\n"
            b"Content-Type: text/html\r\n"
            b"Content-Length: 13\r\n"
            b"\r\n"
            b"<h1>Hi!</h1>\n"
        )
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def wget(host: str, port: int) -> None:
    print(f"wget {host}...")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        print(f"{host} header > {line.decode().rstrip()}")
    writer.close()
    await writer.wait_closed()


async def main() -> None:
    servers = {host: await serve_slowly(delay) for host, delay in HOSTS.items()}
    try:
        fetches = [
            asyncio.create_task(wget(host, server.sockets[0].getsockname()[1]), name=host)
            for host, server in servers.items()
        ]
        await asyncio.gather(*fetches)
    finally:
        for server in servers.values():
            server.close()
            await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
