"""Naming the work handed to a thread pool."""

from __future__ import annotations

import contextvars
import functools

from loopscope.tracer.thread_work import function_name


def blocking_io(seconds: float) -> float:
    return seconds


def test_the_function_is_found_through_partials_and_to_threads_context_run() -> None:
    context = contextvars.copy_context()
    assert function_name(blocking_io) == "blocking_io"
    assert function_name(functools.partial(blocking_io, 1)) == "blocking_io"
    assert function_name(functools.partial(context.run, blocking_io, 1)) == "blocking_io"

    @functools.wraps(blocking_io)
    def logged(seconds: float) -> float:
        return blocking_io(seconds)

    assert function_name(logged) == "blocking_io"
