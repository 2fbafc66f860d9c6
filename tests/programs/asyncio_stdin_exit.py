"""Reads its names from stdin, greets them from tasks, complains on stderr, exits with 3."""

import asyncio
import sys


async def greet(name):
    await asyncio.sleep(0.01)
    print(f"hello {name}")


async def main():
    names = [line.strip() for line in sys.stdin if line.strip()]
    await asyncio.gather(*(greet(name) for name in names))
    print(f"greeted {len(names)}", file=sys.stderr)


asyncio.run(main())
sys.exit(3)
