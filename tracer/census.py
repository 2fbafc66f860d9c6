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
- the concurrency libraries the program imported are listed;
- on 3.12+, where the model is not the generator one, the program's generators that it sends
  values into (coroutine-style generators) and the coroutines it drives with no event loop
  running are noted as they first happen, through a spare `sys.monitoring` tool whose every
  event is disabled at its location after its first report (so it costs nothing after).
"""

from __future__ import annotations

import _thread
import os
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from functools import partial
from types import CodeType, GeneratorType
from typing import Any

from loopscope.tracer.early_child import command_line_files
from loopscope.tracer.program import compile_script

CO_GENERATOR = 0x20
CO_COROUTINE = 0x80
CO_ASYNC_GENERATOR = 0x200
LIBRARIES = ("asyncio", "gevent", "greenlet", "trio", "anyio", "uvloop", "curio", "twisted",
             "multiprocessing")
# Enough names to say what was found, few enough for one line.
NAMES_KEPT = 8
MAX_FILES = 200


def _processes_made() -> int:
    """How many multiprocessing processes the program made (a Pool's workers, each Process):
    multiprocessing numbers them from a counter it keeps, which reads "count(N+1)". A
    ThreadPool's workers are threads and leave it alone."""
    process = sys.modules.get("multiprocessing.process")
    counter = getattr(process, "_process_counter", None)
    text = repr(counter)
    if not (text.startswith("count(") and text.endswith(")")):
        return 0
    try:
        return max(int(text[len("count("):-1]) - 1, 0)
    except ValueError:
        return 0


def _library_roots() -> tuple[str, ...]:
    """The folders of the standard library, site-packages and the tracer itself, each as
    written and resolved (a module's path is compared as written first: resolving every one
    costs the end of every run a system call per path component)."""
    paths = sysconfig.get_paths()
    roots = {paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths}
    roots.add(os.path.dirname(_as_written(__file__)))  # the tracer itself
    return tuple({path + "/" for root in roots
                  for path in (_as_written(root), os.path.realpath(root))})


def _as_written(path: str) -> str:
    """`path` as pathlib spells it, without importing pathlib (the child's start-up): no
    empty or "." parts and no trailing slash; ".." parts and symbolic links are kept."""
    head = "/" if path.startswith("/") else ""
    if path.startswith("//") and not path.startswith("///"):
        head = "//"  # POSIX leaves the meaning of exactly two leading slashes open
    return head + "/".join(part for part in path.split("/") if part not in ("", ".")) or "."


class Census:
    """Install before the program runs, `summary()` after it ended."""

    def __init__(self, script: str | None, watch_hand_offs: bool = False) -> None:
        self.script = script
        self.watch_hand_offs = watch_hand_offs and sys.version_info >= (3, 12)
        self.sent_to: dict[str, None] = {}  # program generators sent values, by qualname
        self.driven_by_hand: dict[str, None] = {}  # program coroutines resumed with no loop
        self._tool = -1
        self.loops: dict[str, int] = {}
        self.thread_loops = 0
        self._main_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._restore: list[Callable[[], None]] = []

    def install(self) -> None:
        if self.watch_hand_offs:
            self._watch_hand_offs()

    def watch_loops(self) -> None:
        """Counts the event loops that start running. Only once the program has imported
        asyncio (tracer.after_import): importing it early would cost every run's start-up,
        and change a gevent program's world (ssl imported before gevent patches it)."""
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

    def _watch_hand_offs(self) -> None:
        monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        tool = next((tool for tool in (4, 3, 5) if monitoring.get_tool(tool) is None), -1)
        if tool < 0:
            return  # the program's own tools hold every spare id: do without
        monitoring.use_tool_id(tool, "loopscope-census")
        self._tool = tool
        disable = monitoring.DISABLE
        generator_send = GeneratorType.send
        roots = _library_roots()
        verdicts: dict[str, bool] = {}
        get_ident = _thread.get_ident  # the OS thread's, kept should gevent patch it later
        traced_thread = get_ident()

        def is_program(code: CodeType) -> bool:
            verdict = verdicts.get(code.co_filename)
            if verdict is None:
                name = code.co_filename
                verdict = verdicts[name] = not name.startswith("<frozen") and not (
                    os.path.realpath(name).startswith(roots))
            return verdict

        def on_call(code: CodeType, offset: int, function: object, arg0: object) -> Any:
            # generator.send(...) at a call site of the program's: a coroutine-style hand-off
            # (the call is reported as the unbound method with the generator as arg0, or as
            # the bound method)
            if function is generator_send:
                owner = arg0
            elif getattr(function, "__name__", "") == "send":
                owner = getattr(function, "__self__", None)
            else:
                return disable
            if type(owner) is GeneratorType and is_program(owner.gi_code):
                self.sent_to[owner.gi_code.co_qualname] = None
            return disable

        def on_yield(code: CodeType, offset: int, value: object) -> Any:
            if (code.co_flags & CO_COROUTINE and get_ident() == traced_thread
                    and is_program(code) and _no_running_loop()):
                self.driven_by_hand[code.co_qualname] = None
            return disable

        events = monitoring.events
        monitoring.register_callback(tool, events.CALL, on_call)
        monitoring.register_callback(tool, events.PY_YIELD, on_yield)
        monitoring.set_events(tool, events.CALL | events.PY_YIELD)
        self._restore.append(self._release_tool)

    def _release_tool(self) -> None:
        monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        events = monitoring.events
        monitoring.set_events(self._tool, 0)
        monitoring.register_callback(self._tool, events.CALL, None)
        monitoring.register_callback(self._tool, events.PY_YIELD, None)
        monitoring.free_tool_id(self._tool)
        self._tool = -1

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
            "sent_to": list(self.sent_to)[:NAMES_KEPT],
            "driven_by_hand": list(self.driven_by_hand)[:NAMES_KEPT],
            "processes_made": _processes_made(),
            "thread_pool": any(name in sys.modules
                               for name in ("multiprocessing.pool", "multiprocessing.dummy")),
        }

    def _program_files(self) -> list[str]:
        roots = _library_roots()
        files: dict[str, None] = {}
        if self.script:
            files[os.path.realpath(self.script)] = None
        command_line = command_line_files()
        for name, module in list(sys.modules.items()):
            filename = getattr(module, "__file__", None)
            if not isinstance(filename, str) or not filename.endswith(".py"):
                continue
            if filename.startswith(roots) or filename in command_line or name.startswith(
                    "loopscope.ui"):  # what a forked child has of the command line's imports
                continue
            resolved = os.path.realpath(filename)
            if not resolved.startswith(roots):
                files[resolved] = None
            if len(files) >= MAX_FILES:
                break
        return list(files)

    def _program_codes(self) -> Iterator[CodeType]:
        for filename in self._program_files():
            try:
                with open(filename, "rb") as source_file:
                    source = source_file.read()
                code = compile_script(source, filename)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            yield from _nested(code)


def _no_running_loop() -> bool:
    """No event loop drives the coroutine that yields: neither asyncio's nor trio's."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and asyncio.events._get_running_loop() is not None:
        return False
    # (a trio older than 0.23, or one still importing, has no in_trio_run: count it as no run)
    in_trio_run = getattr(getattr(sys.modules.get("trio"), "lowlevel", None), "in_trio_run",
                          None)
    return in_trio_run is None or not in_trio_run()


def _nested(code: CodeType) -> Iterator[CodeType]:
    for constant in code.co_consts:
        if isinstance(constant, CodeType):
            yield constant
            yield from _nested(constant)


def _counted(names: list[str]) -> dict[str, Any]:
    return {"count": len(names), "names": list(dict.fromkeys(names))[:NAMES_KEPT]}
