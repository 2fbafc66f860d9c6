"""Names a user recognises: seeing through the wrappers decorators put around their functions.

A decorator built with functools.wraps returns a wrapper whose code is the decorator's
("start", "wrapper") while its `__wrapped__` and `__qualname__` are the user's function's.
A frame only knows its code, so the function object is found once per code object.
"""

from __future__ import annotations

import gc
import types
from types import CodeType, FrameType

_verdicts: dict[CodeType, bool] = {}


def is_wrapper_code(code: CodeType) -> bool:
    """True when `code` is the body of a decorator's wrapper (a function with __wrapped__)."""
    verdict = _verdicts.get(code)
    if verdict is None:
        verdict = any(
            isinstance(owner, types.FunctionType) and owner.__code__ is code
            and hasattr(owner, "__wrapped__")
            for owner in gc.get_referrers(code)
        )
        _verdicts[code] = verdict
    return verdict


def past_wrappers(frame: FrameType | None) -> FrameType | None:
    """The first frame from `frame` outwards that is not a decorator's wrapper."""
    while frame is not None and is_wrapper_code(frame.f_code):
        frame = frame.f_back
    return frame
