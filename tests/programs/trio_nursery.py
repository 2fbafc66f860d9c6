"""A parent task opens a nursery, starts two children that sleep different times, and waits
for both (the shape of trio's tutorial, written anew)."""

import trio


async def child(name, seconds):
    print(f"{name} started")
    await trio.sleep(seconds)
    print(f"{name} finished")


async def parent():
    async with trio.open_nursery() as nursery:
        nursery.start_soon(child, "first", 0.02)
        nursery.start_soon(child, "second", 0.01)
    print("parent done")


trio.run(parent)
