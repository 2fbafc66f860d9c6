"""Which thread is traced, and what becomes of the concurrency other threads run.

The recorder has one writer: the thread that runs the program (the child's main thread).
A scheduler another thread starts -- an asyncio loop in a worker thread, say -- would write
into it from a second thread and corrupt the stream, so the models ask here first and leave
such a scheduler untraced; the run then carries a note saying so, once per kind.
"""

from __future__ import annotations

import _thread

from loopscope.tracer.notes import add_note

# The OS thread id, taken before gevent can patch threading's idea of a thread (where every
# greenlet would be a thread of its own).
os_thread_ident = _os_thread_ident = _thread.get_ident
_traced_thread = _os_thread_ident()


def in_traced_thread() -> bool:
    """True in the thread whose concurrency is recorded."""
    return _os_thread_ident() == _traced_thread


def leave_untraced(what: str) -> None:
    """Notes that `what` ("an asyncio event loop") ran untraced in another thread."""
    add_note(f"{what} ran in another thread and was left untraced (loopscope follows the "
             "program's main thread); its work shows as the waits of the main thread's lanes")
