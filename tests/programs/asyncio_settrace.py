"""An asyncio program that traces its own calls with sys.settrace, as a debugger or a
coverage tool would: it must see its own frames and asyncio's, never Loopscope's."""

import asyncio
import sys

called = set()


def tracer(frame, event, arg):
    if event == "call":
        called.add((frame.f_code.co_filename, frame.f_code.co_name))
    return tracer


async def child(n):
    await asyncio.sleep(0.01 * n)
    return n


async def main():
    sys.settrace(tracer)
    assert sys.gettrace() is tracer
    total = sum(await asyncio.gather(child(1), child(2)))
    sys.settrace(None)
    return total


total = asyncio.run(main())
names = {name for _, name in called}
foreign = sorted({file for file, _ in called if "/tracer/" in file or "/loopscope/" in file})
print("total", total, "saw child", "child" in names, "foreign frames", foreign)
