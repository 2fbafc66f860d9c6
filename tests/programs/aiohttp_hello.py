"""aiohttp's server quick-start (/ and /hello/{name}) and a client asking three times at once."""

import asyncio

import aiohttp
from aiohttp import web


async def hello(request):
    name = request.match_info.get("name", "Anonymous")
    await asyncio.sleep(0.05)
    return web.Response(text=f"Hello, {name}")


async def fetch(session, url):
    async with session.get(url) as response:
        return await response.text()


async def main():
    app = web.Application()
    app.add_routes([web.get("/", hello), web.get("/hello/{name}", hello)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        texts = await asyncio.gather(
            fetch(session, f"{base}/"),
            fetch(session, f"{base}/hello/alice"),
            fetch(session, f"{base}/hello/bob"),
        )
    print(texts)
    await runner.cleanup()


asyncio.run(main())
