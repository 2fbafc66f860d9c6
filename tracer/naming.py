"""Names a user recognises: seeing through decorators' wrappers, and naming a web framework's
request tasks by the request they serve.

A decorator built with functools.wraps returns a wrapper whose code is the decorator's
("start", "wrapper") while its `__wrapped__` and `__qualname__` are the user's function's.
A frame only knows its code, so the function object is found once per code object.
"""

from __future__ import annotations

import gc
import types
from types import CodeType, FrameType
from typing import Any

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


# Coroutines that serve one web request each, by qualname: the argument holding the request.
_REQUEST_ARGUMENTS = {"RequestHandler._handle_request": "request"}  # aiohttp's server


def request_label(coro: Any, qualname: str) -> str | None:
    """"GET /hello/alice" for a coroutine that will serve that request, else None. Read from
    the coroutine's arguments before it starts (its frame's locals are then just those)."""
    argument = _REQUEST_ARGUMENTS.get(qualname)
    if argument is None:
        return None
    frame = getattr(coro, "cr_frame", None)
    request = frame.f_locals.get(argument) if frame is not None else None
    method, path = getattr(request, "method", None), getattr(request, "path_qs", None)
    if isinstance(method, str) and isinstance(path, str):
        return f"{method} {path}"
    return None
