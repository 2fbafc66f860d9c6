"""Which of Loopscope's C extensions are in use: light, for the command line's start-up too."""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def c_extension(name: str) -> ModuleType | None:
    """The C extension loopscope.tracer.`name` (_speedups, _handoffs), unless it is missing
    or LOOPSCOPE_PURE_PYTHON=1 asks for pure Python: then its pure-Python twin runs."""
    if os.environ.get("LOOPSCOPE_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        return importlib.import_module(f"loopscope.tracer.{name}")
    except ImportError:
        return None
