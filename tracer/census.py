"""What the traced program evidently did, gathered in the child beside the model's recording.

The recording says what the model followed; the census says what else was there, so that a
run which recorded little can say why (tracer.silence). It is cheap and never changes what
the program does:

- under the asyncio model, every event loop that starts running (`asyncio.events.
  _set_running_loop`, which every loop, uvloop's too, calls as it starts) is counted by its
  type and thread;
- at the end, the program's own source files (the script and the modules it imported from
  outside the standard library and site-packages) are compiled and their generator, coroutine
  and async generator functions counted;
- the concurrency libraries the program imported are listed.
"""

from __future__ import annotations

import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import CodeType
from typing import Any

CO_GENERATOR = 0x20
CO_COROUTINE = 0x80
CO_ASYNC_GENERATOR = 0x200
LIBRARIES = ("asyncio", "gevent", "greenlet", "trio", "uvloop", "curio", "twisted")
# Enough names to say what was found, few enough for one line.
NAMES_KEPT = 8
MAX_FILES = 200


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(str(Path(__file__).resolve().parent.parent))  # loopscope itself
    return tuple(str(Path(root).resolve()) + "/" for root in roots)


class Census:
    """Install before the program runs, `summary()` after it ended."""

    def __init__(self, script: str | None, watch_loops: bool) -> None:
        self.script = script
        # Only where asyncio is imported anyway: importing it early would change a gevent
        # program's world (ssl imported before gevent patches it).
        self.watch_loops = watch_loops
        self.loops: dict[str, int] = {}
        self.thread_loops = 0
        self._main_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []

    def install(self) -> None:
        if not self.watch_loops:
            return
        import asyncio
        from asyncio import events

        original = events._set_running_loop

        def set_running_loop(loop: Any) -> None:
            if loop is not None:
                self._saw_loop(loop)
            original(loop)

        for module in (events, asyncio):
            if getattr(module, "_set_running_loop", None) is original:
                setattr(module, "_set_running_loop", set_running_loop)  # noqa: B010
                self._restore.append(partial(setattr, module, "_set_running_loop", original))

    def uninstall(self) -> None:
        while self._restore:
            self._restore.pop()()

    def _saw_loop(self, loop: object) -> None:
        kind = type(loop)
        name = f"{kind.__module__}.{kind.__qualname__}"
        with self._lock:
            self.loops[name] = self.loops.get(name, 0) + 1
            if threading.get_ident() != self._main_thread:
                self.thread_loops += 1

    def summary(self, scan_sources: bool = True) -> dict[str, Any]:
        """What was seen; `scan_sources` False skips compiling the program's files (only a
        run that recorded next to nothing needs to know its generator functions)."""
        generators: list[str] = []
        coroutines: list[str] = []
        async_generators: list[str] = []
        for code in self._program_codes() if scan_sources else ():
            flags = code.co_flags
            if flags & CO_GENERATOR:
                generators.append(code.co_qualname)
            elif flags & CO_COROUTINE:
                coroutines.append(code.co_qualname)
            elif flags & CO_ASYNC_GENERATOR:
                async_generators.append(code.co_qualname)
        return {
            "loops": dict(self.loops),
            "thread_loops": self.thread_loops,
            "generators": _counted(generators),
            "coroutines": _counted(coroutines),
            "async_generators": _counted(async_generators),
            "libraries": [name for name in LIBRARIES if name in sys.modules],
        }

    def _program_files(self) -> list[str]:
        roots = _library_roots()
        files: dict[str, None] = {}
        if self.script:
            files[str(Path(self.script).resolve())] = None
        for module in list(sys.modules.values()):
            filename = getattr(module, "__file__", None)
            if not isinstance(filename, str) or not filename.endswith(".py"):
                continue
            resolved = str(Path(filename).resolve())
            if not resolved.startswith(roots):
                files[resolved] = None
            if len(files) >= MAX_FILES:
                break
        return list(files)

    def _program_codes(self) -> Iterator[CodeType]:
        for filename in self._program_files():
            try:
                source = Path(filename).read_text(encoding="utf-8")
                code = compile(source, filename, "exec", dont_inherit=True)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            yield from _nested(code)


def _nested(code: CodeType) -> Iterator[CodeType]:
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield constant
            yield from _nested(constant)


def _counted(names: list[str]) -> dict[str, Any]:
    return {"count": len(names), "names": list(dict.fromkeys(names))[:NAMES_KEPT]}
