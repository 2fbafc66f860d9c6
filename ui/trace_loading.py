"""Opening a saved trace without freezing the window: read and folded on a worker thread.

A trace of ten million events takes seconds to inflate, check and fold into spans. A
`TraceLoading` does all of that on a thread of its own (zlib and numpy let go of the GIL while
they work, and the fold yields it every few milliseconds), reports its progress on the GUI
thread as a fraction, and hands over the trace and its span fold when done, or one line
saying why the file cannot be opened. It also builds what the timeline's first frame would
otherwise build on the GUI thread (prepare_views), so that frame reads only what is on screen.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from loopscope.tracer.native import NativeFormatError, load_native
from loopscope.tracer.spans import SpanBuilder
from loopscope.tracer.trace import Trace
from loopscope.ui.layout import span_index
from loopscope.ui.trace_notes import trace_notes

# (path, progress) -> Trace; raises NativeFormatError for a file it cannot read
Loader = Callable[[str, Callable[[float], None]], Trace]
# Of the progress bar: reading the file, folding its events into spans, then the views'
# indexes (the rest).
READ_SHARE = 0.55
FOLD_SHARE = 0.35


def prepare_views(trace: Trace, builder: SpanBuilder) -> None:
    """What the timeline would otherwise build on the GUI thread at its first paint, in
    O(events): the spans closed at the run's end, the layout's per-lane span columns and
    level of detail, and the notes the words come from. Each is cached per (trace, spans),
    so the first frame finds them ready and only reads what is on screen."""
    spans = builder.finish(trace.duration_ns)
    span_index(trace, spans)
    trace_notes(trace)


def load_with_progress(path: str, progress: Callable[[float], None]) -> Trace:
    """The default loader: tracer.native's, reporting as it reads."""
    return load_native(path, progress)


class TraceLoading(QObject):
    """One trace being opened. Connect to the signals, then `start()`; they arrive on the
    thread this object lives in (the GUI's), whatever thread the work is done on."""

    progressed = Signal(float)  # 0 to 1
    loaded = Signal(object, object)  # the Trace and its SpanBuilder, fed to the end
    failed = Signal(str)  # one line
    # from the worker; a queued connection to this object brings each to the GUI thread
    _reported = Signal(float)
    _done = Signal(object, object, str)

    def __init__(self, path: str, loader: Loader = load_with_progress, fold_piece: int = 200_000,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = path
        self.fraction = 0.0
        self.finished = False
        self._loader = loader
        self._fold_piece = fold_piece
        self._cancelled = threading.Event()
        self._reported.connect(self._on_reported)
        self._done.connect(self._on_done)

    def start(self) -> None:
        threading.Thread(target=self._work, name="loopscope-open-trace", daemon=True).start()

    def cancel(self) -> None:
        """Whatever it finds is dropped: no signal but progress comes after this."""
        self._cancelled.set()

    # -- the worker thread -------------------------------------------------------------

    def _work(self) -> None:
        try:
            trace = self._loader(self.path, lambda done: self._report(READ_SHARE * done))
            builder = SpanBuilder()
            total = len(trace)
            while builder.fed < total and not self._cancelled.is_set():
                builder.feed(trace, min(total, builder.fed + self._fold_piece))
                self._report(READ_SHARE + FOLD_SHARE * builder.fed / total)
            if not self._cancelled.is_set():
                prepare_views(trace, builder)
                self._report(1.0)
        except NativeFormatError as exc:
            self._done.emit(None, None, str(exc))
            return
        except MemoryError:
            self._done.emit(None, None, f"{self.path} is too large to open in this memory")
            return
        except Exception as exc:  # a bug must not leave the window waiting forever; say it
            self._done.emit(None, None, f"cannot open {self.path}: {type(exc).__name__}: {exc}")
            return
        self._done.emit(trace, builder, "")

    def _report(self, fraction: float) -> None:
        if not self._cancelled.is_set():
            self._reported.emit(fraction)

    # -- the GUI thread ----------------------------------------------------------------

    def _on_reported(self, fraction: float) -> None:
        if self.finished or self._cancelled.is_set():
            return
        self.fraction = max(self.fraction, min(fraction, 1.0))
        self.progressed.emit(self.fraction)

    def _on_done(self, trace: Trace | None, builder: SpanBuilder | None, error: str) -> None:
        self.finished = True
        if self._cancelled.is_set():
            return
        if trace is None:
            self.failed.emit(error)
        else:
            self.loaded.emit(trace, builder)
