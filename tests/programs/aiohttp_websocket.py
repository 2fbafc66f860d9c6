"""aiohttp's websocket echo example: a server route and a client that sends three messages."""

import asyncio

import aiohttp
from aiohttp import web


async def websocket_handler(request):
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(f"echo: {msg.data}")
    return ws


async def main():
    app = web.Application()
    app.add_routes([web.get("/ws", websocket_handler)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(f"http://127.0.0.1:{port}/ws") as ws:
        for word in ("one", "two", "three"):
            await ws.send_str(word)
            reply = await ws.receive()
            print(reply.data)
    await runner.cleanup()


asyncio.run(main())
