"""What a suspended asyncio task is waiting for, read from its await chain and its sockets.

A task step that yields a future says nothing about why; the instrumentation looks at where
the task stopped. Walking `cr_await` from the task's coroutine down to the innermost one gives
the function that created the future (`Queue.get`, `StreamReader._wait_for_data`, ...), and
the `self` of that function leads to the transport, hence the socket, for stream waits.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import CodeType, CoroutineType, FrameType, GeneratorType
from typing import Any

from loopscope.tracer.recorder import SPEEDUPS

_AWAIT_CHAIN_TYPES = (CoroutineType, GeneratorType)

# The side of a function in a blocked wait's await chain (LoopTracer._wait_calls, whose rows
# are (code, side); tracer/loopscope.h names the same numbers): the program's, a library's not
# named yet, a library's passed over (`__aenter__` and the like: the call is the one it makes);
# any other side is the BLOCKED detail that names that library function.
PROGRAM_SIDE = -1
LIBRARY_SIDE = -2
PASSED_OVER = -3
CallRow = tuple[CodeType, int]


def side_of_call(code: CodeType, is_program: Callable[[str], bool]) -> int:
    """The side of a function met in a blocked wait's await chain, first seen."""
    if is_program(code.co_filename):
        return PROGRAM_SIDE
    name = code.co_name
    return PASSED_OVER if name.startswith("__") and name.endswith("__") else LIBRARY_SIDE


def walk_await_chain(
    coro: Any,
    calls: dict[int, CallRow] | None = None,
    is_program: Callable[[str], bool] | None = None,
) -> tuple[Any, CallRow | None]:
    """The innermost coroutine or generator of coro's await chain, and the program's entry
    into the library: given `calls` (LoopTracer._wait_calls, id(code) -> (code, side), which
    gains the rows of the functions it lacks, their files judged by `is_program`), the row
    of the first function below the program's innermost coroutine that is not passed over.
    `await queue.join()` enters at Queue.join, which waits in Event.wait; `async with lock`
    at Lock.acquire, past Lock.__aenter__. The entry is None without `calls`, where the
    program's own function is innermost, and where none is the program's (a library task).

    The twin of _asyncio_core.c's walk_await_chain (which leaves a chain with a function
    that has no row yet to this one).
    """
    entry: CallRow | None = None
    after_program = False
    current = coro
    while True:
        if type(current) is CoroutineType:
            code, awaited = current.cr_code, current.cr_await
        else:
            code, awaited = current.gi_code, current.gi_yieldfrom
        if calls is not None:
            row = calls.get(id(code))
            if row is None or row[0] is not code:
                assert is_program is not None, "walk_await_chain: calls without is_program"
                row = calls[id(code)] = (code, side_of_call(code, is_program))
            if row[1] == PROGRAM_SIDE:
                after_program, entry = True, None
            elif after_program and row[1] != PASSED_OVER:
                after_program, entry = False, row
        if type(awaited) not in _AWAIT_CHAIN_TYPES:
            return current, entry
        current = awaited


def pure_innermost_awaiter(coro: Any) -> tuple[CodeType, FrameType | None, bool]:
    """(code, frame, is_top) of the innermost coroutine or generator in coro's await chain.

    `is_top` says the task's own coroutine is the one awaiting a bare future.
    """
    current, _ = walk_await_chain(coro)
    if type(current) is CoroutineType:
        return current.cr_code, current.cr_frame, current is coro
    return current.gi_code, current.gi_frame, current is coro


def takes_self(code: CodeType) -> bool:
    return code.co_argcount > 0 and code.co_varnames[0] == "self"


def pure_self_of(frame: FrameType | None) -> object:
    """The `self` local of a method's frame, or None."""
    if frame is None:
        return None
    return frame.f_locals.get("self")


# Both run on every wait a task's step ends in; in C they skip building f_locals (3.12+) and
# the Python-level walk.
if SPEEDUPS is None:
    innermost_awaiter = pure_innermost_awaiter
    self_of = pure_self_of
else:
    innermost_awaiter = SPEEDUPS.innermost_awaiter
    self_of = SPEEDUPS.local_self


def transport_of(owner: object) -> Any:
    """The asyncio transport a stream, protocol or aiohttp reader reads from, or None.

    asyncio's StreamReader and StreamReaderProtocol keep it in `_transport`, aiohttp's
    protocols in `transport`, and aiohttp's payload readers reach it through `_protocol`.
    """
    for holder in (owner, getattr(owner, "_protocol", None)):
        if holder is None:
            continue
        for attribute in ("transport", "_transport"):
            transport = getattr(holder, attribute, None)
            if transport is not None and hasattr(transport, "get_extra_info"):
                return transport
    return None


def wait_mode(code: CodeType) -> str:
    """Whether a stream wait in this function waits to write (drain) or to read."""
    name = code.co_name
    return "write" if "drain" in name or "write" in name else "read"


def transport_endpoint(transport: Any) -> tuple[int, str | None] | None:
    """(fd, peer) of a transport's socket or pipe; None once it is closed."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        fd = sock.fileno()
        return (fd, peer_of(sock)) if fd >= 0 else None
    pipe = transport.get_extra_info("pipe")
    if pipe is not None:
        try:
            return pipe.fileno(), None
        except (OSError, ValueError):
            return None
    return None


def peer_of(sock: Any, fallback: object = None) -> str | None:
    """ "127.0.0.1:40123" for a connected socket; `fallback` (an address) when not connected."""
    try:
        address = sock.getpeername()
    except (OSError, AttributeError):
        address = fallback
    return format_address(address)


def format_address(address: object) -> str | None:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    if isinstance(address, str | bytes) and address:
        return address if isinstance(address, str) else address.decode(errors="replace")
    return None


def is_socket(value: object) -> bool:
    return isinstance(value, socket.socket) or hasattr(value, "getpeername")


def awaiting_label(code: CodeType) -> str:
    """How a BLOCKED state names what the task waits in: "Queue.get", "Event.wait"."""
    return code.co_qualname
