"""Timeline frame cost on a 1,000,000-span trace over 50 lanes, at 1600x900.

Measures layout + paint into a QImage for the full view (goal 16 ms), a zoomed view (goal
5 ms) and a one-second window dense with exact rectangles (goal 16 ms, one 60 Hz frame),
side by side with a naive baseline in the same run: every visible span drawn as its own
rectangle, no merging. Prints times and ratios.

With --words: what the words on the timeline cost, on the four headline scenarios' golden
traces as exported (1600x900): each frame with its words and without, in alternating pairs.

With --level-of-detail: each view laid out and painted from the per-lane level of detail and
span by span (as before it), in alternating pairs, for a 1,000,000-span and a
10,000,000-span trace: the level of detail's frame should not grow with the spans.

With --against CHECKOUT: this checkout's layout and paint side by side with another's (its
ui/layout.py and ui/paint.py loaded beside these, the rest shared), frame by frame in
alternating pairs, for the three views and the headline figures; medians of wall time, or of
the thread's CPU time with --cpu (steadier on a loaded machine).

    .venv/bin/python bench/bench_paint.py [--words | --level-of-detail | --against DIR [--cpu]]
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import sys
import time
import types
from array import array
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PySide6.QtCore import QRectF
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter

from loopscope.tracer.events import Code
from loopscope.tracer.spans import Spans, derive_spans
from loopscope.tracer.trace import LaneInfo, Trace
from loopscope.ui.layout import Viewport, layout
from loopscope.ui.paint import paint
from loopscope.ui.theme import LIGHT

LANES = 50
SPANS = 1_000_000
RUN_NS = 10_000_000_000  # 10 s
WIDTH, HEIGHT = 1600, 900


def synthesize(spans: int = SPANS, lanes: int = LANES, seed: int = 7) -> Trace:
    """A trace with `spans` state events spread over `lanes` lanes in 10 s, a wake arrow for
    every fifth state change and an output line now and then, built column-wise in numpy."""
    rng = np.random.default_rng(seed)
    states = rng.choice(
        np.array([Code.RUNNING, Code.READY, Code.IO_WAIT, Code.SLEEPING, Code.BLOCKED], np.int8),
        size=spans, p=[0.4, 0.2, 0.2, 0.1, 0.1],
    )
    lane = rng.integers(1, lanes, size=spans, dtype=np.int32)
    lane[::lanes] = 0  # the loop lane gets its share too
    states[lane == 0] = np.where(rng.random(int((lane == 0).sum())) < 0.5, Code.POLL,
                                 Code.DISPATCH)
    wakes = np.nonzero(rng.random(spans) < 0.2)[0]
    outputs = np.nonzero(rng.random(spans) < 0.001)[0]
    # Interleave: spawns first, then each state change (a wake just before some of them).
    count = lanes + spans + len(wakes) + len(outputs) + lanes
    code = np.empty(count, np.int8)
    lane_col = np.empty(count, np.int32)
    other = np.full(count, -1, np.int32)
    detail = np.zeros(count, np.int32)
    order_key = np.concatenate([
        np.full(lanes, -1.0),
        np.arange(spans, dtype=np.float64),
        wakes - 0.5,
        outputs + 0.25,
        np.full(lanes, float(spans)),
    ])
    kinds = np.concatenate([
        np.full(lanes, Code.SPAWN, np.int8), states, np.full(len(wakes), Code.WAKE, np.int8),
        np.full(len(outputs), Code.OUTPUT, np.int8), np.full(lanes, Code.END, np.int8),
    ])
    lanes_of = np.concatenate([np.arange(lanes, dtype=np.int32), lane, lane[wakes],
                               lane[outputs], np.arange(lanes, dtype=np.int32)])
    others = np.concatenate([np.full(lanes, -1, np.int32), np.full(spans, -1, np.int32),
                             rng.integers(0, lanes, size=len(wakes), dtype=np.int32),
                             np.full(len(outputs) + lanes, -1, np.int32)])
    order = np.argsort(order_key, kind="stable")
    code[:], lane_col[:], other[:] = kinds[order], lanes_of[order], others[order]
    ts = np.sort(rng.integers(0, RUN_NS, size=count, dtype=np.int64))
    ts[:lanes] = 0
    ts[-lanes:] = RUN_NS
    trace = Trace()
    trace.details.append({"text": "synthetic output"})
    detail[code == Code.OUTPUT] = 1
    for n in range(lanes):
        trace.details.append({"name": "loop" if n == 0 else f"task {n}",
                              "kind": "loop" if n == 0 else "task"})
    detail[:lanes] = np.arange(2, lanes + 2)
    for name, column, values in (("ts", "q", ts), ("lane", "i", lane_col), ("code", "b", code),
                                 ("other", "i", other), ("detail", "i", detail),
                                 ("source", "i", np.zeros(count, np.int32))):
        buffer = array(column)
        buffer.frombytes(values.tobytes())
        setattr(trace, name, buffer)
    trace.lanes = [LaneInfo(n, trace.details[n + 2]["name"], trace.details[n + 2]["kind"], -1,
                            n, 0) for n in range(lanes)]
    trace.meta.update(target="synthetic-1M", model="synthetic")
    return trace


def best_of(runs: int, action: Callable[[], object]) -> float:
    """The median of `runs` timings in seconds (the machine is shared; medians are steadier)."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def frame(trace: Trace, spans: Spans, viewport: Viewport, image: QImage) -> None:
    painter = QPainter(image)
    paint(painter, layout(trace, spans, viewport), LIGHT)
    painter.end()


def naive_frame(trace: Trace, spans: Spans, viewport: Viewport, image: QImage) -> None:
    """The baseline: every span in range becomes a rectangle, grouped by state."""
    start = np.frombuffer(spans.start, np.int64)
    end = np.frombuffer(spans.end, np.int64)
    state = np.frombuffer(spans.state, np.int8)
    lane = np.frombuffer(spans.lane, np.int32)
    npp = viewport.ns_per_px
    visible = np.nonzero((end > viewport.start_ns) & (start < viewport.end_ns))[0]
    painter = QPainter(image)
    painter.fillRect(0, 0, viewport.width, viewport.height, QColor("#ffffff"))
    for code, color in LIGHT.states.items():
        which = visible[state[visible] == code]
        x = viewport.label_width + (start[which] - viewport.start_ns) / npp
        w = (end[which] - start[which]) / npp
        y = viewport.axis_height + lane[which] * viewport.lane_height
        painter.setBrush(QColor(color))
        painter.drawRects([QRectF(*r) for r in zip(x.tolist(), y.tolist(), w.tolist(),
                                                    [viewport.lane_height - 6] * len(which),
                                                    strict=True)])
    painter.end()
    del start, end, state, lane


GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "ui" / "golden"
HEADLINES = ("producer-consumer", "select-server", "aiohttp-requests", "gevent-switching")


def words_cost(rounds: int = 41) -> None:
    """Layout + paint of each headline figure with and without its words, alternating."""
    from loopscope.tracer.native import load_native
    from loopscope.ui.image_export import export_viewport
    from loopscope.ui.layout import SpanIndex, span_index
    from loopscope.ui.paint import label_width_for

    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_ARGB32_Premultiplied)
    print(f"{'figure':<20}{'words':>10}{'no words':>11}{'ratio':>8}")
    for name in HEADLINES:
        trace = load_native(GOLDEN / f"{name}.loopscope")
        spans = derive_spans(trace)
        index = span_index(trace, spans)
        with_words = export_viewport(trace, width=WIDTH, height=HEIGHT,
                                     label_width=label_width_for(trace, LIGHT, WIDTH))
        without = dataclasses.replace(with_words, texts=False)

        def one(viewport: Viewport, trace: Trace = trace, spans: Spans = spans,
                index: SpanIndex = index) -> float:
            began = time.perf_counter()
            painter = QPainter(image)
            paint(painter, layout(trace, spans, viewport, index=index), LIGHT)
            painter.end()
            return time.perf_counter() - began

        one(with_words), one(without)  # warm the caches both sides use
        pairs = [(one(with_words), one(without)) for _ in range(rounds)]
        ratio = statistics.median(a / b for a, b in pairs)
        print(f"{name:<20}{statistics.median(a for a, _ in pairs) * 1e3:>8.2f}ms"
              f"{statistics.median(b for _, b in pairs) * 1e3:>9.2f}ms{ratio:>7.2f}x")


def level_of_detail_cost(rounds: int = 15) -> None:
    """Each view's frame from the level of detail and span by span, alternating, medians."""
    from loopscope.ui import layout as layout_module
    from loopscope.ui.layout import span_index

    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_ARGB32_Premultiplied)
    by_detail = layout_module._DENSE_FACTOR
    print(f"{'spans':>12} {'view':<14}{'by detail':>11}{'span by span':>14}{'ratio':>8}")
    for spans_wanted in (SPANS, 10 * SPANS):
        trace = synthesize(spans_wanted)
        spans = derive_spans(trace)
        span_index(trace, spans)
        lane_height = (HEIGHT - 28 - 28) / LANES
        middle = RUN_NS / 2
        for name, viewport in (
                ("full view", Viewport(0, RUN_NS, WIDTH, HEIGHT, lane_height=lane_height)),
                ("zoomed 10 ms", Viewport(middle, middle + 10_000_000, WIDTH, HEIGHT,
                                          lane_height=lane_height)),
                ("1 s window", Viewport(middle, middle + 1_000_000_000, WIDTH, HEIGHT,
                                        lane_height=lane_height))):
            def one(factor: int, vp: Viewport = viewport, trace: Trace = trace,
                    spans: Spans = spans) -> float:
                layout_module._DENSE_FACTOR = factor
                began = time.perf_counter()
                frame(trace, spans, vp, image)
                return time.perf_counter() - began

            one(by_detail), one(10**12)  # warm both
            pairs = [(one(by_detail), one(10**12)) for _ in range(rounds)]
            layout_module._DENSE_FACTOR = by_detail
            print(f"{len(spans):>12,} {name:<14}"
                  f"{statistics.median(a for a, _ in pairs) * 1e3:>9.2f}ms"
                  f"{statistics.median(b for _, b in pairs) * 1e3:>12.2f}ms"
                  f"{statistics.median(a / b for a, b in pairs):>7.2f}x")
        del trace, spans


def _load_beside(name: str, path: Path, renames: dict[str, str]) -> types.ModuleType:
    """The module at `path` loaded under `name`, its imports of `renames`' keys redirected."""
    source = path.read_text()
    for old, new in renames.items():
        source = source.replace(old, new)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def against(checkout: Path, cpu: bool, rounds: int = 41) -> None:
    """Frames from `checkout`'s layout and paint and from these, alternating, medians."""
    from loopscope.tracer.native import load_native
    from loopscope.ui import layout as this_layout
    from loopscope.ui import paint as this_paint
    from loopscope.ui.image_export import export_viewport

    other_layout = _load_beside("other_layout", checkout / "ui" / "layout.py", {})
    other_paint = _load_beside("other_paint", checkout / "ui" / "paint.py",
                               {"from loopscope.ui.layout import": "from other_layout import"})
    clock = time.thread_time if cpu else time.perf_counter
    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_ARGB32_Premultiplied)
    trace = synthesize()
    spans = derive_spans(trace)
    lane_height = (HEIGHT - 28 - 28) / LANES
    middle = RUN_NS / 2
    # The words measured as the app's timeline measures them.
    text_width, text_height = this_paint.text_measure(LIGHT)
    measured = {"lane_height": lane_height, "text_width": text_width,
                "text_height": text_height}
    frames: list[tuple[str, Trace, Spans, Viewport]] = [
        ("full view", trace, spans, Viewport(0, RUN_NS, WIDTH, HEIGHT, **measured)),
        ("zoomed 10 ms", trace, spans, Viewport(middle, middle + 10_000_000, WIDTH, HEIGHT,
                                                **measured)),
        ("1 s window", trace, spans, Viewport(middle, middle + 1_000_000_000, WIDTH, HEIGHT,
                                              **measured)),
    ]
    for name in HEADLINES:
        golden = load_native(GOLDEN / f"{name}.loopscope")
        frames.append((name, golden, derive_spans(golden), export_viewport(
            golden, width=WIDTH, height=HEIGHT,
            label_width=this_paint.label_width_for(golden, LIGHT, WIDTH))))
    print(f"{'frame':<20}{'other':>10}{'this':>10}{'this/other':>12}"
          f"   ({'CPU' if cpu else 'wall'} time, {rounds} alternating pairs, medians)")
    for name, shown, its_spans, viewport in frames:
        # The fields both know: a newer viewport's extras (e.g. the text measure) are left
        # for the older layout to do without, as it did.
        other_viewport = other_layout.Viewport(**{
            field.name: getattr(viewport, field.name)
            for field in dataclasses.fields(other_layout.Viewport)
            if hasattr(viewport, field.name)})
        sides = [(other_layout, other_paint, other_viewport,
                  other_layout.span_index(shown, its_spans)),
                 (this_layout, this_paint, viewport, this_layout.span_index(shown, its_spans))]

        def one(side: int, shown: Trace = shown, its_spans: Spans = its_spans,
                sides: list[tuple[types.ModuleType, types.ModuleType, object, object]] = sides
                ) -> float:
            lay, draw, view, index = sides[side]
            began = clock()
            painter = QPainter(image)
            draw.paint(painter, lay.layout(shown, its_spans, view, index=index), LIGHT)
            painter.end()
            return clock() - began

        for _ in range(3):
            one(0), one(1)
        pairs = []
        for n in range(rounds):  # each side goes first in every other pair
            if n % 2:
                pairs.append((one(0), one(1)))
            else:
                this = one(1)
                pairs.append((one(0), this))
        print(f"{name:<20}{statistics.median(a for a, _ in pairs) * 1e3:>8.2f}ms"
              f"{statistics.median(b for _, b in pairs) * 1e3:>8.2f}ms"
              f"{statistics.median(b / a for a, b in pairs):>11.2f}x")


def main() -> None:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    if "--against" in sys.argv[1:]:
        against(Path(sys.argv[sys.argv.index("--against") + 1]), "--cpu" in sys.argv[1:])
        return
    if "--words" in sys.argv[1:]:
        words_cost()
        return
    if "--level-of-detail" in sys.argv[1:]:
        level_of_detail_cost()
        return
    began = time.perf_counter()
    trace = synthesize()
    synth_s = time.perf_counter() - began
    began = time.perf_counter()
    spans = derive_spans(trace)
    fold_s = time.perf_counter() - began
    print(f"trace: {len(trace):,} events, {len(spans):,} spans, {LANES} lanes "
          f"(synthesised in {synth_s:.2f} s, folded into spans in {fold_s:.2f} s)")

    image = QImage(WIDTH, HEIGHT, QImage.Format.Format_ARGB32_Premultiplied)
    lane_height = (HEIGHT - 28 - 28) / LANES
    full = Viewport(0, RUN_NS, WIDTH, HEIGHT, lane_height=lane_height)
    middle = RUN_NS / 2
    zoomed = Viewport(middle, middle + 10_000_000, WIDTH, HEIGHT, lane_height=lane_height)
    # A second of the run: ~50,000 spans a pixel or more wide, each its own exact rectangle.
    second = Viewport(middle, middle + 1_000_000_000, WIDTH, HEIGHT, lane_height=lane_height)

    began = time.perf_counter()
    frame(trace, spans, full, image)  # the first frame also builds the span index
    first_s = time.perf_counter() - began
    print(f"first frame (builds the per-lane index once): {first_s * 1e3:.1f} ms")
    primitives = layout(trace, spans, full)
    print(f"full view: {len(primitives.rects):,} rectangles "
          f"({len(primitives.rects) - primitives.merged_from:,} merged runs)")

    rows = []
    for name, viewport, goal_ms in (("full view", full, 16.0), ("zoomed 10 ms", zoomed, 5.0),
                                    ("1 s window", second, 16.0)):
        ours = best_of(15, lambda vp=viewport: frame(trace, spans, vp, image))
        layout_only = best_of(15, lambda vp=viewport: layout(trace, spans, vp))
        naive = best_of(3, lambda vp=viewport: naive_frame(trace, spans, vp, image))
        rows.append((name, ours, layout_only, naive, goal_ms))
    print()
    print(f"{'frame':<14}{'layout':>10}{'layout+paint':>14}{'naive':>11}"
          f"{'naive/ours':>12}{'ours/goal':>11}")
    for name, ours, layout_only, naive, goal_ms in rows:
        print(f"{name:<14}{layout_only * 1e3:>8.2f}ms{ours * 1e3:>12.2f}ms{naive * 1e3:>9.1f}ms"
              f"{naive / ours:>11.1f}x{ours * 1e3 / goal_ms:>10.2f}x")
    del app


if __name__ == "__main__":
    main()
