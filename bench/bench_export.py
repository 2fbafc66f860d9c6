"""Image export of a 1,000,000-span trace over 50 lanes at 1600x900.

Goals: PNG in at most 1 s, SVG under 10 MB. Side by side in one run: the PNG export against
its floor (encoding a blank image of the same size), with and without folding the events into
spans first (the CLI folds; the app already has the spans), and the SVG and PDF sizes.

    .venv/bin/python bench/bench_export.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_paint import SPANS, synthesize
from PySide6.QtGui import QGuiApplication, QImage

from loopscope.tracer.spans import derive_spans
from loopscope.ui.image_export import render_image

WIDTH, HEIGHT = 1600, 900
RUNS = 3


def timed(action: Callable[[], object]) -> float:
    """The median of a few runs, in seconds."""
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return sorted(times)[len(times) // 2]


def main() -> None:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    trace = synthesize()
    spans = derive_spans(trace)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        render_image(trace, out / "warm-up.png", spans=spans)  # builds the span index once
        blank = QImage(WIDTH, HEIGHT, QImage.Format.Format_ARGB32_Premultiplied)
        blank.fill(0xFFFFFFFF)
        floor = timed(lambda: blank.save(str(out / "blank.png"), "PNG"))
        with_spans = timed(lambda: render_image(trace, out / "t.png", spans=spans))
        folding = timed(lambda: render_image(trace, out / "t.png"))
        svg = timed(lambda: render_image(trace, out / "t.svg", spans=spans))
        pdf = timed(lambda: render_image(trace, out / "t.pdf", spans=spans))
        sizes = {ext: (out / f"t.{ext}").stat().st_size for ext in ("png", "svg", "pdf")}
    print(f"trace: {len(trace):,} events, {SPANS:,} spans; image {WIDTH}x{HEIGHT}")
    print()
    print(f"{'export':<34}{'time':>10}{'vs blank PNG':>14}{'vs goal':>10}{'size':>12}")
    print(f"{'blank PNG encode (floor)':<34}{floor * 1e3:>8.1f}ms{1.0:>13.1f}x")
    for name, seconds, size in (("PNG, spans given", with_spans, sizes["png"]),
                                ("PNG, folding events first (CLI)", folding, sizes["png"])):
        print(f"{name:<34}{seconds * 1e3:>8.1f}ms{seconds / floor:>13.1f}x"
              f"{seconds / 1.0:>9.2f}x{size / 1e3:>10.0f}kB")
    print(f"{'SVG, spans given':<34}{svg * 1e3:>8.1f}ms{svg / floor:>13.1f}x{'':>10}"
          f"{sizes['svg'] / 1e6:>10.2f}MB  (goal < 10 MB: {sizes['svg'] / 10e6:.2f}x)")
    print(f"{'PDF, spans given':<34}{pdf * 1e3:>8.1f}ms{pdf / floor:>13.1f}x{'':>10}"
          f"{sizes['pdf'] / 1e3:>10.0f}kB")
    del app


if __name__ == "__main__":
    main()
