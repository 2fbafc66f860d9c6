"""An aiohttp web app whose handlers sleep, and a client session calling it several times."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from loopscope.scenarios import Scenario

SCENARIO = Scenario(
    id="aiohttp-requests",
    title="Concurrent requests to an aiohttp web app",
    model="asyncio",
    concept=(
        "aiohttp is an HTTP framework built on asyncio: the server runs each request's "
        "handler in a task, and a handler that awaits (here asyncio.sleep(0.5), standing in "
        "for a slow database) lets the other requests proceed meanwhile."
    ),
    observe=(
        "The client sends four requests at once, one task each ('GET /hello/alice', ...). "
        "On the server side a handler lane per request sleeps for 0.5 s, and those sleeping "
        "spans overlap, so all four answers arrive after about half a second, not two seconds."
    ),
    window="spawn#2",  # from the program's main task on, past the loop's start-up
)

HANDLER_DELAY = 0.5


async def index(request: web.Request) -> web.Response:
    await asyncio.sleep(HANDLER_DELAY)
    return web.Response(text="<h1>Index</h1>", content_type="text/html")


async def hello(request: web.Request) -> web.Response:
    await asyncio.sleep(HANDLER_DELAY)
    name = request.match_info["name"]
    return web.Response(text=f"<h1>hello, {name}!</h1>", content_type="text/html")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/hello/{name}", hello)
    return app


async def fetch(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        body = await response.text()
        print(f"{url} -> {response.status} {body}")
        return body


async def main() -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"server started at http://127.0.0.1:{port}")
    try:
        base = f"http://127.0.0.1:{port}"
        paths = ["/", "/hello/alice", "/hello/bob", "/hello/carol"]
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as requests:
            for path in paths:  # all four requests are in flight at once
                requests.create_task(fetch(session, base + path), name=f"GET {path}")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
