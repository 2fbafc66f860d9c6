"""The exception a stopped run unwinds with, in a module of its own so that models can name it.

Raised in the traced thread when the parent asks the run to stop (tracer.child.StopControl).
"""

from __future__ import annotations


class StopRequested(KeyboardInterrupt):
    """Raised in the traced thread when the parent asks the run to stop.

    A KeyboardInterrupt, so that every scheduler lets it through as it does Ctrl-C: asyncio
    re-raises it out of the loop, gevent's hub hands it to the main greenlet.
    """
