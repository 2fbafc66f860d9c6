"""Runs fuzz cases through every consumer, in a process with a memory limit.

    python -m tests.fuzz.worker native|pipe BASE_FILE FIRST_SEED COUNT [--heavy-every N]

Prints one JSON line per finding: {"seed", "mutation", "consumer", "error"}, then a last
line {"done": cases, "loaded": how many loaded}. A finding is any exception a consumer is
not allowed to raise (the loader and the decoder may raise only their one clean error), a
case that takes longer than CASE_TIMEOUT_S (a hang), or a MemoryError (a blow-up: the
address space is limited to MEMORY_LIMIT bytes). "Heavy" consumers (PNG and SVG export, and
opening the trace in the app's window offscreen) run on every Nth case that loads.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

MEMORY_LIMIT = 3 << 30
CASE_TIMEOUT_S = 10


class Hang(Exception):
    pass


def _on_alarm(_signo: int, _frame: Any) -> None:
    raise Hang(f"a case took longer than {CASE_TIMEOUT_S} s")


def _report(seed: int, mutation: str, consumer: str, error: str) -> None:
    print(json.dumps({"seed": seed, "mutation": mutation, "consumer": consumer,
                      "error": error}), flush=True)


class Consumers:
    def __init__(self, workdir: Path, heavy_every: int) -> None:
        self.workdir = workdir
        self.heavy_every = heavy_every
        self.loaded = 0
        self.window: Any = None

    def native(self, seed: int, mutation: str, data: bytes) -> None:
        from loopscope.tracer.native import NativeFormatError, load_native

        path = self.workdir / f"case-{seed}.loopscope"
        path.write_bytes(data)
        try:
            try:
                trace = load_native(path)
            except NativeFormatError as exc:
                if "\n" in str(exc):
                    _report(seed, mutation, "load", f"a multi-line error: {exc!r}")
                return
            self.loaded += 1
            self.consume(seed, mutation, trace, path)
        finally:
            path.unlink()

    def consume(self, seed: int, mutation: str, trace: Any, path: Path) -> None:
        from loopscope.tracer.export_chrome import write_chrome_json
        from loopscope.tracer.narrate import narrate
        from loopscope.tracer.native import decode_trace, encode_trace
        from loopscope.tracer.spans import derive_spans
        from loopscope.tracer.stats import lane_stats

        steps: list[tuple[str, Any]] = [
            ("narrate", lambda: list(narrate(trace))),
            ("chrome-json", lambda: write_chrome_json(trace, io.StringIO())),
            ("native-resave", lambda: decode_trace(encode_trace(trace))),
            ("spans+stats", lambda: self.stats(trace, derive_spans, lane_stats)),
        ]
        if self.heavy_every and self.loaded % self.heavy_every == 1 % self.heavy_every:
            steps += [("png", lambda: self.image(trace, ".png")),
                      ("svg", lambda: self.image(trace, ".svg")),
                      ("app-open", lambda: self.open_in_app(path))]
        for name, step in steps:
            try:
                step()
            except Exception as exc:
                _report(seed, mutation, name, "".join(traceback.format_exception(exc))[-3000:])

    @staticmethod
    def stats(trace: Any, derive_spans: Any, lane_stats: Any) -> None:
        spans = derive_spans(trace)
        for lane in {*spans.by_lane, *(info.id for info in trace.lanes)}:
            lane_stats(trace, spans, lane)

    def image(self, trace: Any, suffix: str) -> None:
        from loopscope.ui.image_export import ensure_gui_application, render_image

        ensure_gui_application()
        out = self.workdir / f"image{suffix}"
        render_image(trace, out, width=320, height=200)
        out.unlink()

    def open_in_app(self, path: Path) -> None:
        from PySide6.QtWidgets import QApplication

        if self.window is None:
            from loopscope.ui.main_window import MainWindow
            from loopscope.ui.settings import AppSettings

            self.window = MainWindow(AppSettings.at(self.workdir / "settings.ini"))
            self.window.resize(800, 500)
            self.window.show()
        window = self.window
        window.open_trace(str(path))
        QApplication.processEvents()
        window.grab()  # paints every widget: the toolbar, the panes, the timeline
        if window.trace is not None:
            window.stepping.step()  # the narration, and the source pane at the first step
            if len(window.timeline.spans):
                window.timeline.select_span(0)  # the details pane and the source at a span
            window.grab()
        if window.error_box is not None:
            window.error_box.close()
            window.error_box = None
        QApplication.processEvents()

    def pipe(self, seed: int, mutation: str, data: bytes) -> None:
        from loopscope.tracer.stream import FrameDecoder, StreamError
        from loopscope.tracer.trace import SequenceGapError, Trace

        trace = Trace()
        decoder = FrameDecoder(trace)
        try:
            step = 1 + seed % 997
            for offset in range(0, len(data), step):
                decoder.feed(data[offset : offset + step])
            decoder.finish()
        except (StreamError, SequenceGapError) as exc:
            if "\n" in str(exc):
                _report(seed, mutation, "decode", f"a multi-line error: {exc!r}")
        # whatever arrived before the error must be usable too
        self.loaded += 1
        self.consume(seed, mutation, trace, Path(""))


def main() -> int:
    mode, base_file, first, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    heavy_every = int(sys.argv[sys.argv.index("--heavy-every") + 1]) if (
        "--heavy-every" in sys.argv) else 0
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    signal.signal(signal.SIGALRM, _on_alarm)
    from tests.fuzz.cases import native_case, pipe_case

    base = Path(base_file).read_bytes()
    with tempfile.TemporaryDirectory(prefix="loopscope-fuzz-") as workdir:
        fifo = str(Path(workdir) / "fifo")
        os.mkfifo(fifo)
        consumers = Consumers(Path(workdir), heavy_every)
        if heavy_every:
            from PySide6.QtWidgets import QApplication

            app = QApplication([sys.argv[0]])  # noqa: F841 - lives as long as the cases
        for seed in range(first, first + count):
            mutation = "?"
            print(f"case {seed}", file=sys.stderr, flush=True)  # names a case that kills us
            signal.alarm(CASE_TIMEOUT_S)
            try:
                if mode == "native":
                    mutation, data = native_case(base, seed, fifo)
                    consumers.native(seed, mutation, data)
                else:
                    mutation, data = pipe_case(base, seed)
                    consumers.pipe(seed, mutation, data)
            except (Hang, MemoryError) as exc:
                _report(seed, mutation, "limits", repr(exc))
            except Exception as exc:
                _report(seed, mutation, "load" if mode == "native" else "decode",
                        "".join(traceback.format_exception(exc))[-3000:])
            finally:
                signal.alarm(0)
        print(json.dumps({"done": count, "loaded": consumers.loaded}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
