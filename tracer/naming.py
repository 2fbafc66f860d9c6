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


def as_written(qualname: str) -> str:
    """A function's name as its author wrote it where it is defined: "fetch", not
    "main.<locals>.fetch" (a method keeps its class: "Crawler.fetch")."""
    return qualname.rsplit("<locals>.", 1)[-1]


def request_label(coro: Any, qualname: str) -> str | None:
    """"GET /hello/alice → hello" for a coroutine that will serve that request ("GET
    /hello/alice" when its handler cannot be told), else None. Read from the coroutine's
    arguments before it starts (its frame's locals are then just those)."""
    argument = _REQUEST_ARGUMENTS.get(qualname)
    if argument is None:
        return None
    frame = getattr(coro, "cr_frame", None)
    arguments = frame.f_locals if frame is not None else {}
    request = arguments.get(argument)
    method, path = getattr(request, "method", None), getattr(request, "path_qs", None)
    if not (isinstance(method, str) and isinstance(path, str)):
        return None
    handler = _route_handler(arguments.get("request_handler"), method,
                             getattr(request, "path", None))
    return f"{method} {path} → {handler}" if handler else f"{method} {path}"


def _route_handler(request_handler: Any, method: str, path: object) -> str | None:
    """The name of the function an aiohttp app routes `method path` to, found through its
    router's public resources (the request is not routed yet when its task is made)."""
    app = getattr(request_handler, "__self__", None)  # the Application's bound _handle
    router = getattr(app, "router", None)
    resources = getattr(router, "resources", None)
    if not isinstance(path, str) or resources is None:
        return None
    try:
        for resource in resources():
            info = resource.get_info()
            pattern = info.get("pattern")
            if not (info.get("path") == path
                    or (pattern is not None and pattern.fullmatch(path) is not None)):
                continue
            for route in resource:
                if route.method in (method, "*"):
                    name = getattr(route.handler, "__name__", None)
                    return name if isinstance(name, str) else None
    except Exception:  # another aiohttp's router: the request line alone names the lane
        return None
    return None
