"""Notes about a run for the user, gathered in the child and sent with the end of the stream.

Any part of the child may add one, from any thread (a thread's event loop left untraced, an
instrumentation that stood aside); each distinct note is kept once, in the order first added.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_notes: list[str] = []


def add_note(text: str) -> None:
    with _lock:
        if text not in _notes:
            _notes.append(text)


def take_notes() -> list[str]:
    """The notes so far, emptying the list."""
    with _lock:
        taken = list(_notes)
        _notes.clear()
    return taken
