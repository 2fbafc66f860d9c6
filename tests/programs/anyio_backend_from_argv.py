"""anyio on the backend its command line names (as a program reads it from a setting): the
model is guessed before the run, from the imports, so only the run can tell which it was."""

import sys

import anyio


async def worker(n, send):
    async with send:
        await anyio.sleep(0.01 * n)
        await send.send(n * n)


async def main():
    send, receive = anyio.create_memory_object_stream(10)
    async with anyio.create_task_group() as group:
        async with send:
            for n in range(3):
                group.start_soon(worker, n, send.clone())
        async with receive:
            print(sorted([value async for value in receive]))


anyio.run(main, backend=sys.argv[1])
