"""The timeline as an image file (.png, .svg, .pdf), through the same layout and paint as the
screen, with a title, the time axis and the legend: a picture to put on a slide. Stalled spans
carry the red corner the live timeline gives them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMarginsF, QRect, QSize, QSizeF
from PySide6.QtGui import QGuiApplication, QImage, QPageLayout, QPageSize, QPainter, QPdfWriter
from PySide6.QtSvg import QSvgGenerator

from loopscope.tracer.events import followed
from loopscope.tracer.findings import Finding
from loopscope.tracer.formats import IMAGE_FORMATS
from loopscope.tracer.held_time import cut_held_time
from loopscope.tracer.safe_write import OutputError, output_problem, real_target, write_bytes
from loopscope.tracer.spans import Spans, derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.framing import (
    figure_height,
    figure_row_height,
    lesson_range,
)
from loopscope.ui.layout import Primitives, Viewport, format_ns, layout, run_extent
from loopscope.ui.paint import label_width_for, paint, text_measure
from loopscope.ui.problem_marks import flagged_spans, paint_problem_corners, stalled_spans
from loopscope.ui.theme import Theme, get_theme
from loopscope.ui.trace_notes import trace_notes

FORMATS = tuple(IMAGE_FORMATS)
MAX_SIDE = 20_000
HEADER_HEIGHT = 64.0
LEGEND_HEIGHT = 34.0
# Lanes share the rows' height; within these bounds, more lanes make thinner rows.
LANE_HEIGHT_RANGE = (10.0, 100.0)
# A PDF page in points for a picture sized in CSS-like pixels (96 per inch).
_PDF_DPI = 96

_app: QGuiApplication | None = None


def image_format(out_path: str | os.PathLike[str]) -> str:
    """The format named by the path's extension; ValueError for anything else."""
    suffix = Path(out_path).suffix.lower()
    if suffix not in FORMATS:
        shown = f"'{suffix}'" if suffix else "no extension"
        raise ValueError(
            f"cannot export an image to {os.fspath(out_path)!r} ({shown}): "
            f"use a file ending in {', '.join(FORMATS)}"
        )
    return suffix


def export_viewport(
    trace: Trace,
    *,
    width: int,
    height: int | None = None,
    start_ns: float | None = None,
    end_ns: float | None = None,
    title: str | None = None,
    label_width: float | None = None,
    full: bool = False,
    all_lanes: bool = False,
    theme: str = "light",
) -> Viewport:
    """The viewport an export draws: the given time range (by default the scenario's concept
    window, or with `full` the whole run, with a margin either side), time 0 at the
    program's first event, the library's plumbing lanes folded into one row unless
    `all_lanes`, a title and a one-line summary. Without a height, the image is as tall as
    its lanes need; lanes that do not fit are counted on the last row. Words are placed by
    the theme's text measure, as they will be drawn."""
    if not (0 < width <= MAX_SIDE and (height is None or 0 < height <= MAX_SIDE)):
        raise ValueError(f"image size must be between 1 and {MAX_SIDE} pixels a side, "
                         f"got {width}x{height}")
    first, last = run_extent(trace)
    lesson_start, lesson_end = lesson_range(trace, full=full)
    start = lesson_start if start_ns is None else float(start_ns)
    end = lesson_end if end_ns is None else float(end_ns)
    if start_ns is None and end_ns is None and end <= start:
        end = start + 1_000_000  # an empty or instantaneous run: show one millisecond
    if end <= start:
        raise ValueError(f"the time range is empty: start {start:.0f} ns is not before "
                         f"end {end:.0f} ns")
    # Touching the run counts: a run whose events all share one instant has no inside.
    if len(trace) and (start > last or end < first):
        # Said as the axis counts: from the program's first event.
        origin = trace.first_event_ns
        raise ValueError(f"the time window {format_ns(start - origin)} to "
                         f"{format_ns(end - origin)} misses the run, which lasts from 0 to "
                         f"{format_ns(last - origin)} (counted from its first event)")
    folded = frozenset() if all_lanes else trace_notes(trace).library_lanes(trace)
    rows = len(trace.lanes) - len(folded) + (1 if folded else 0)
    chrome = HEADER_HEIGHT + 28.0 + LEGEND_HEIGHT
    if height is None:
        height = figure_height(rows, chrome)
        lane_height = figure_row_height(rows)
    else:
        low, high = LANE_HEIGHT_RANGE
        lane_height = min(max((height - chrome) / max(rows, 1), low), high)
    name = title if title is not None else str(trace.meta.get("target") or "Loopscope trace")
    text_width, text_height = text_measure(get_theme(theme))
    return Viewport(
        start_ns=start, end_ns=end, width=width, height=height, lane_height=lane_height,
        label_width=label_width if label_width is not None else min(190.0, width * 0.22),
        header_height=HEADER_HEIGHT,
        legend_height=LEGEND_HEIGHT, title=name,
        subtitle=_summary(trace, start, end, len(folded)),
        row_padding=max(2.0, lane_height * 0.2), time_origin_ns=trace.first_event_ns,
        folded_lanes=folded, overflow_row=True, text_width=text_width, text_height=text_height,
    )


def _summary(trace: Trace, start: float, end: float, folded: int = 0) -> str:
    parts = []
    kind = followed(trace.meta.get("model"), (info.kind for info in trace.lanes))
    if kind == "threads":
        parts.append(kind)
    elif kind:
        parts.append(f"model {kind}")
    parts.append(f"{len(trace.lanes)} lanes" + (f" ({folded} library lanes folded)"
                                                 if folded else ""))
    parts.append(f"{len(trace):,} events")
    origin = trace.first_event_ns
    parts.append(f"run {format_ns(trace.duration_ns - origin)}")
    if start > origin or end < trace.duration_ns:
        parts.append(f"showing {format_ns(end - start)} from "
                     f"{format_ns(max(start - origin, 0.0))}")
    if (status := trace.meta.get("status")) and status != "ok":
        parts.append(f"ended: {status}")
    return "  ·  ".join(parts)


def render_image(
    trace: Trace,
    out_path: str | os.PathLike[str],
    *,
    width: int = 1600,
    height: int | None = None,
    theme: str = "light",
    start_ns: float | None = None,
    end_ns: float | None = None,
    title: str | None = None,
    spans: Spans | None = None,
    full: bool = False,
    all_lanes: bool = False,
    findings: Iterable[Finding] | None = None,
) -> None:
    """Writes the trace's timeline to a .png, .svg or .pdf file, chosen by the extension.

    `spans` are the trace's finished spans if the caller has them (the app does), saving the
    fold. The spans `findings` are about get a red corner; without them, the trace's stalls
    do (the app passes the findings it marks on screen). Needs a QGuiApplication (see
    `export_target_image` for a headless caller). Raises ValueError for an unknown extension,
    theme, size or empty time range, and OSError when the file cannot be written.
    """
    path = Path(out_path)
    suffix = image_format(path)
    chosen = get_theme(theme)
    if spans is None:
        # gevent's and select's clocks went on while a stepped run was held: that time is
        # cut out, so a run is as wide as it ran (the caller's spans are of its own trace).
        trace = cut_held_time(trace)
    viewport = export_viewport(trace, width=width, height=height, start_ns=start_ns,
                               end_ns=end_ns, title=title,
                               label_width=label_width_for(trace, chosen, width),
                               full=full, all_lanes=all_lanes, theme=theme)
    _check_writable(path)
    # drawn in memory, then written all or nothing: a failure leaves an old file as it was
    write_bytes(path, _render(suffix, trace, spans, viewport, chosen, path, findings))


def _render(suffix: str, trace: Trace, spans: Spans | None, viewport: Viewport,
            chosen: Theme, path: Path, findings: Iterable[Finding] | None = None) -> bytes:
    """The picture's bytes in the format `suffix` names; OSError if nothing was drawn."""
    width, height = viewport.width, viewport.height
    if spans is None:
        spans = derive_spans(trace)
    flagged = (stalled_spans(trace, spans) if findings is None
               else set(flagged_spans(spans, findings)))
    primitives = layout(trace, spans, viewport)
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if suffix == ".png":
        image = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
        if image.isNull():
            raise OSError(f"cannot write {path}: no memory for a {width}x{height} picture")
        painter = QPainter(image)
        try:
            paint(painter, primitives, chosen)
            paint_problem_corners(painter, primitives, flagged)
        finally:
            painter.end()  # a painter left active on a freed image crashes Qt
        if not image.save(buffer, "PNG"):  # type: ignore[call-overload]  # str at run time
            raise OSError(f"cannot write {path}: saving the PNG failed")
    elif suffix == ".svg":
        generator = QSvgGenerator()
        generator.setOutputDevice(buffer)
        generator.setSize(QSize(width, height))
        generator.setViewBox(QRect(0, 0, width, height))
        generator.setTitle(viewport.title)
        generator.setDescription(viewport.subtitle)
        _paint_on(generator, primitives, chosen, path, flagged)
    else:
        writer = QPdfWriter(buffer)
        writer.setResolution(_PDF_DPI)
        points = QSizeF(width * 72 / _PDF_DPI, height * 72 / _PDF_DPI)
        writer.setPageLayout(QPageLayout(QPageSize(points, QPageSize.Unit.Point),
                                         QPageLayout.Orientation.Portrait, QMarginsF(0, 0, 0, 0)))
        writer.setTitle(viewport.title)
        writer.setCreator("Loopscope")
        _paint_on(writer, primitives, chosen, path, flagged)
        del writer  # the PDF is complete once its writer is gone
    data = bytes(buffer.data().data())
    buffer.close()
    if not data:
        raise OSError(f"cannot write {path}: the {suffix[1:].upper()} came out empty")
    return data


def _paint_on(device: QSvgGenerator | QPdfWriter, primitives: Primitives, theme: Theme,
              path: Path, flagged: set[int]) -> None:
    painter = QPainter()
    if not painter.begin(device):
        raise OSError(f"cannot write {path}")
    try:
        # A PDF page may come out a pixel or two off the requested size; scale to fit exactly.
        vp = primitives.viewport
        sx, sy = device.width() / vp.width, device.height() / vp.height
        if abs(sx - 1) > 1e-3 or abs(sy - 1) > 1e-3:
            painter.scale(sx, sy)
        paint(painter, primitives, theme)
        paint_problem_corners(painter, primitives, flagged)
    finally:
        painter.end()


def _check_writable(path: Path) -> None:
    """Fails early, with the reason, on a path the file cannot be written to."""
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    if not real_target(path).parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")
    problem = output_problem(path)
    if problem is not None:
        raise OutputError(str(path), problem.split(": ", 1)[-1])


def ensure_gui_application() -> QGuiApplication:
    """The running Qt application, or a new headless one (offscreen unless a platform is set)."""
    global _app
    existing = QGuiApplication.instance()
    if isinstance(existing, QGuiApplication):
        return existing
    if not os.environ.get("QT_QPA_PLATFORM"):
        # A command-line export must work without a display (CI, ssh): draw offscreen.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    _app = QGuiApplication(sys.argv[:1])
    return _app


def export_target_image(
    trace: Trace,
    out_path: str | os.PathLike[str],
    *,
    width: int = 1600,
    height: int | None = None,
    theme: str = "light",
    start_ns: float | None = None,
    end_ns: float | None = None,
    full: bool = False,
    all_lanes: bool = False,
) -> None:
    """The CLI's `loopscope export`: render_image, creating a headless Qt application first."""
    image_format(out_path)  # refuse a bad name before starting Qt
    ensure_gui_application()
    render_image(trace, out_path, width=width, height=height, theme=theme, start_ns=start_ns,
                 end_ns=end_ns, full=full, all_lanes=all_lanes)
