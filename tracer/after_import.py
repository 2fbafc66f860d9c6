"""Run set-up code the moment a program first imports a module, not before.

The asyncio model needs asyncio patched before the program uses it, but a script that never
imports asyncio should not pay for importing it (a good part of a traced run's start-up).
`AfterImport("asyncio")` runs its callbacks right after asyncio's own code has run, inside
the program's first `import asyncio`, before that statement binds the name: the program
never sees asyncio unpatched. If the module is already imported, they run at `install()`.

A finder first on `sys.meta_path` lends the module a loader that runs the real loader and
then the callbacks; once the module is loaded the real loader is put back in its
`__loader__` and `__spec__`, so the program sees nothing of this.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


class AfterImport:
    """Calls each callback once, in order, after module `name` is first imported."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[[], None]] = []
        self._fired = False
        self._finding = False
        self._lock = threading.Lock()

    def call(self, callback: Callable[[], None]) -> None:
        """Adds a callback; it runs at once if the module has been imported and fired (then
        here, by the caller's thread: never twice, though another thread is firing)."""
        with self._lock:
            self._callbacks.append(callback)
            fired = self._fired
        if fired:
            callback()

    @property
    def fired(self) -> bool:
        return self._fired

    def install(self) -> None:
        if self.name in sys.modules:
            self._fire()
        else:
            sys.meta_path.insert(0, self)  # type: ignore[arg-type]

    def uninstall(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # type: ignore[arg-type]

    # -- the finder --------------------------------------------------------------------

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != self.name or self._fired or self._finding:
            return None
        self._finding = True
        try:
            spec = _find_with_others(self, fullname, path, target)
        finally:
            self._finding = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ThenCall(spec.loader, self._fire)  # type: ignore[assignment]
        return spec

    def _fire(self) -> None:
        with self._lock:
            if self._fired:
                return
            self._fired = True
            callbacks = list(self._callbacks)  # one added from now on runs in call()
        self.uninstall()
        for callback in callbacks:
            callback()


def _find_with_others(me: object, fullname: str, path: Sequence[str] | None,
                      target: ModuleType | None) -> ModuleSpec | None:
    for finder in sys.meta_path:
        if finder is me:
            continue
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec: ModuleSpec | None = find_spec(fullname, path, target)
        if spec is not None:
            return spec
    return None


class _ThenCall:
    """The module's own loader, then `after()`; the loader is given back once it has run."""

    def __init__(self, loader: Any, after: Callable[[], None]) -> None:
        self.loader = loader
        self.after = after

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        spec.loader = self.loader
        created: ModuleType | None = self.loader.create_module(spec)
        spec.loader = self  # type: ignore[assignment]
        return created

    def exec_module(self, module: ModuleType) -> None:
        try:
            self.loader.exec_module(module)
        finally:
            module.__loader__ = self.loader
            if module.__spec__ is not None:
                module.__spec__.loader = self.loader
        self.after()
