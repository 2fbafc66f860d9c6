"""What lives until the program's exit: a thread still running when the main code ends, an
exit hook, and a module global whose finalizer runs in the interpreter's teardown, which
clears __main__ first. Each prints, in that order, untraced and traced alike."""

import asyncio
import atexit
import sys
import threading
import time


class Farewell:
    def __del__(self) -> None:
        print("module global finalized", flush=True)


async def main() -> None:
    await asyncio.sleep(0)
    print("main done", flush=True)


def late() -> None:
    time.sleep(0.1)
    print("thread done", flush=True)


def at_exit() -> None:
    # __main__ is still this module (whose __file__ the interpreter has taken out by now)
    seen = getattr(sys.modules["__main__"], "keeper", None)
    print("exit hook sees", type(seen).__name__, flush=True)


keeper = Farewell()
atexit.register(at_exit)
threading.Thread(target=late).start()
asyncio.run(main())
