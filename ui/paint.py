"""The one routine that draws timeline primitives, on the widget, a QImage, an SVG or a PDF.

Drawing is batched: one drawRects call per state colour, one path per arrow kind. When the
merged (sub-pixel) runs are too many to draw one by one, they are blitted as a numpy-built
image, one row per lane. Everything is sized in pixels, so every device looks the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QByteArray, QDataStream, QLineF, QPointF, QRect, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPaintEngine,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
    QStaticText,
    QTransform,
)

from loopscope.tracer.events import MARKERS, STATE_NAMES, Code
from loopscope.tracer.trace import Trace
from loopscope.ui.layout import (
    ARROW_KINDS,
    GROUP_KIND,
    MARKER_KINDS,
    MORE_KIND,
    Box,
    LaneRow,
    LegendEntry,
    Primitives,
    Rects,
    TextLabel,
    state_band,
)
from loopscope.ui.theme import Theme

# Above this many merged runs, an image per lane row is cheaper than one rectangle each.
MERGED_RUNS_AS_IMAGE = 2000
# Exact rectangles are drawn as images too when there are more than this many, and more than
# one for every hundred cells of the image (one rectangle costs about as much to draw as a
# hundred cells to blit).
EXACT_RECTS_AS_IMAGE = 300
IMAGE_CELLS_PER_RECT = 0.01
ARROW_HEAD = 7.0
# Above this many instant markers, draw them as plain ticks.
DENSE_MARKERS = 300
FINE_ARROWS = 80
HEADS_PER_PATH = 64
LABEL_INSET = 10.0


@dataclass(frozen=True)
class _Ink:
    """A theme's QColors and QFonts, made once."""

    theme: Theme
    background: QColor
    label_background: QColor
    row_stripe: QColor
    text: QColor
    text_dim: QColor
    grid: QColor
    separator: QColor
    states: dict[int, QColor]
    arrows: dict[str, QColor]
    markers: dict[str, QColor]
    now_line: QColor
    selection: QColor
    label_halo: QColor
    font: QFont
    font_bold: QFont
    font_small: QFont
    title_font: QFont
    subtitle_font: QFont
    # state code, read as an unsigned byte -> ARGB: an indexed image's colour table
    state_table: list[int]


def _font(theme: Theme, pixels: int, bold: bool = False) -> QFont:
    font = QFont()
    font.setFamilies(list(theme.font_families))
    font.setPixelSize(pixels)
    font.setBold(bold)
    font.setStyleStrategy(QFont.StyleStrategy.PreferAntialias)
    return font


_inks: dict[int, _Ink] = {}


def _ink(theme: Theme) -> _Ink:
    cached = _inks.get(id(theme))
    if cached is None or cached.theme is not theme:
        cached = _inks[id(theme)] = _make_ink(theme)
    return cached


def _make_ink(theme: Theme) -> _Ink:
    states = {code: QColor(color) for code, color in theme.states.items()}
    table = [0] * 256  # no state (-1, the byte 255) stays transparent
    for code, color in states.items():
        table[code] = color.rgba()  # opaque, so premultiplied equals straight
    return _Ink(
        theme=theme,
        background=QColor(theme.background),
        label_background=QColor(theme.label_background),
        row_stripe=QColor(theme.row_stripe),
        text=QColor(theme.text),
        text_dim=QColor(theme.text_dim),
        grid=QColor(theme.grid),
        separator=QColor(theme.separator),
        states=states,
        arrows={"wake": QColor(theme.wake), "switch": QColor(theme.switch)},
        markers={info.kind: QColor(getattr(theme, info.colour)) for info in MARKERS},
        now_line=QColor(theme.now_line),
        selection=QColor(theme.selection),
        label_halo=_with_alpha(theme.background, 225),
        font=_font(theme, theme.font_px),
        font_bold=_font(theme, theme.font_px, bold=True),
        font_small=_font(theme, theme.font_px - 2),
        title_font=_font(theme, theme.title_px, bold=True),
        subtitle_font=_font(theme, theme.subtitle_px),
        state_table=table,
    )


def _with_alpha(color: str, alpha: int) -> QColor:
    made = QColor(color)
    made.setAlpha(alpha)
    return made


def paint(painter: QPainter, primitives: Primitives, theme: Theme) -> None:
    """Draws one frame. The painter's device is any QPaintDevice at least the viewport's size."""
    ink = _ink(theme)
    vp = primitives.viewport
    painter.save()
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.fillRect(QRectF(0, 0, vp.width, vp.height), ink.background)
        _paint_rows(painter, primitives, ink)
        _paint_grid(painter, primitives, ink)

        painter.save()
        plot = primitives.plot
        painter.setClipRect(QRectF(plot.x, plot.y, plot.w, plot.h))
        _paint_rects(painter, primitives, ink)
        _paint_markers(painter, primitives, ink)
        _paint_arrows(painter, primitives, ink)
        _paint_texts(painter, primitives, ink)
        _paint_pauses(painter, primitives, ink)
        _paint_highlight_and_now(painter, primitives, ink)
        _paint_cursor_spans(painter, primitives, ink)
        painter.restore()

        if vp.lane_names:
            _paint_labels(painter, primitives, ink)
        _paint_axis(painter, primitives, ink)
        _paint_header(painter, primitives, ink)
        _paint_legend(painter, primitives, ink)
        _paint_notes(painter, primitives, ink)
        _paint_cursor_line(painter, primitives, ink)
    finally:
        painter.restore()


def _rect_list(rects: Rects, which: np.ndarray) -> list[QRectF]:
    # Narrower than a pixel still shows as one pixel.
    x, y, w, h = rects.x[which], rects.y[which], np.maximum(rects.w[which], 1.0), rects.h[which]
    return list(map(QRectF, x.tolist(), y.tolist(), w.tolist(), h.tolist()))


def _paint_rows(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    vp = primitives.viewport
    labels, plot = primitives.labels, primitives.plot
    painter.fillRect(QRectF(labels.x, labels.y, labels.w, labels.h), ink.label_background)
    for row in primitives.lanes:
        if row.row % 2:
            painter.fillRect(QRectF(plot.x, row.y, plot.w, row.height), ink.row_stripe)
    painter.setPen(QPen(ink.separator, 1))
    painter.drawLine(QLineF(plot.x - 0.5, plot.y, plot.x - 0.5, plot.y + plot.h))
    if primitives.lane_count and primitives.lanes:
        last = primitives.lanes[-1]
        bottom = min(last.y + last.height, plot.y + plot.h)
        painter.setPen(QPen(ink.grid, 1))
        painter.drawLine(QLineF(0, bottom - 0.5, vp.width, bottom - 0.5))


def _paint_grid(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    plot = primitives.plot
    painter.setPen(QPen(ink.grid, 1))
    painter.drawLines([
        QLineF(round(t.x) + 0.5, plot.y, round(t.x) + 0.5, plot.y + plot.h)
        for t in primitives.ticks
        if plot.x < t.x < plot.x + plot.w
    ])


def _paint_rects(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    rects = primitives.rects
    painter.setPen(Qt.PenStyle.NoPen)
    merged_from = primitives.merged_from
    if merged_from > max(EXACT_RECTS_AS_IMAGE, primitives.strips.size * IMAGE_CELLS_PER_RECT) \
            and _is_raster(painter):
        # More rectangles than drawing them one by one is worth (in a live view of a dense
        # run, tens of thousands): the same pixels, rounded as the raster engine rounds a
        # rectangle, as one image row per lane.
        _blit_strips(painter, primitives, ink, _strips_with_exact_rects(primitives))
        return
    _paint_rects_by_state(painter, rects, np.arange(merged_from), ink)
    merged_count = len(rects) - merged_from
    if merged_count > MERGED_RUNS_AS_IMAGE:
        _blit_strips(painter, primitives, ink)
        return
    _paint_rects_by_state(painter, rects, np.arange(merged_from, len(rects)), ink)


def _paint_rects_by_state(painter: QPainter, rects: Rects, which: np.ndarray, ink: _Ink
                          ) -> None:
    """One drawRects call per state colour, in state order. The rectangles are made in one
    pass, sorted by state (stably, so each colour keeps its order), and sliced per colour."""
    if not len(which):
        return
    state = rects.state[which]
    order = np.argsort(state, kind="stable")
    ordered = _rect_list(rects, which[order])
    state = state[order]
    bounds = np.flatnonzero(np.diff(state)) + 1
    starts = [0, *bounds.tolist()]
    stops = [*bounds.tolist(), len(ordered)]
    for start, stop in zip(starts, stops, strict=True):
        painter.setBrush(ink.states.get(int(state[start]), ink.text_dim))
        painter.drawRects(ordered[start:stop])


def _strips_with_exact_rects(primitives: Primitives) -> np.ndarray:
    """The merged-column grid with the exact rectangles rasterised under it: each covers the
    plot columns whose pixels a non-antialiased fill of it would (edges rounded half up),
    later state codes over earlier ones and merged runs over all, as drawn one by one."""
    merged = primitives.strips
    rows, columns = merged.shape
    # One column more than the merged runs have: a plot that starts part-way into a pixel
    # ends part-way into one, and the rectangles reach into it (the plot clip trims it).
    columns += 1
    rects = primitives.rects
    exact = np.argsort(rects.state[: primitives.merged_from], kind="stable")
    lanes = rects.lane[exact]
    row_of_lane = np.full(int(lanes.max(initial=0)) + 1, -1, dtype=np.int64)
    for number, strip_row in enumerate(primitives.strip_rows):
        if strip_row.lane < len(row_of_lane):
            row_of_lane[strip_row.lane] = number
    row = row_of_lane[lanes]
    # Plot column k is drawn on the device pixel whose centre falls in [plot.x + k, +1).
    offset = math.ceil(primitives.plot.x - 0.5)
    x = rects.x[exact]
    left = np.clip(np.floor(x + 0.5).astype(np.int64) - offset, 0, columns)
    right = np.floor(x + np.maximum(rects.w[exact], 1.0) + 0.5).astype(np.int64) - offset
    right = np.clip(right, 0, columns)
    keep = (row >= 0) & (right > left)
    row, left, right, state = row[keep], left[keep], right[keep], rects.state[exact][keep]
    grid = _runs_grid(rows, columns, row, left, right, state, merged.dtype)
    np.copyto(grid[:, : columns - 1], merged, where=merged >= 0)
    return grid


def _runs_grid(rows: int, columns: int, row: np.ndarray, left: np.ndarray, right: np.ndarray,
               state: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A rows x columns grid of -1 with each run [left, right) of its row set to its state,
    later runs over earlier ones where they overlap."""
    start = row * columns + left
    order = np.argsort(start, kind="stable")
    start, stop, ordered = start[order], (row * columns + right)[order], state[order]
    if len(start) and not (start[1:] >= stop[:-1]).all():
        # Some overlap (a sliver widened to its pixel): each cell set in the runs' order.
        grid = np.full((rows, columns), -1, dtype=dtype)
        lengths = right - left
        first_cell = np.repeat(row * columns + left - np.cumsum(lengths) + lengths, lengths)
        grid.ravel()[first_cell + np.arange(int(lengths.sum()))] = np.repeat(state, lengths)
        return grid
    # Disjoint runs: the grid is gaps and runs in turn, made by one repeat.
    values = np.full(2 * len(start) + 1, -1, dtype=dtype)
    values[1::2] = ordered
    lengths = np.empty(2 * len(start) + 1, dtype=np.int64)
    lengths[1::2] = stop - start
    lengths[0:-1:2] = start - np.concatenate(([0], stop[:-1]))
    lengths[-1] = rows * columns - (stop[-1] if len(stop) else 0)
    return np.repeat(values, lengths).reshape(rows, columns)


def _blit_strips(painter: QPainter, primitives: Primitives, ink: _Ink,
                 strips: np.ndarray | None = None) -> None:
    strips = primitives.strips if strips is None else strips
    if not strips.size:
        return
    codes = np.ascontiguousarray(strips.view(np.uint8))
    rows, columns = codes.shape
    # The codes as an indexed image with the states' colours for its table: Qt turns that
    # into pixels several times faster than a lookup in numpy.
    indexed = QImage(codes.data, columns, rows, columns, QImage.Format.Format_Indexed8)
    indexed.setColorTable(ink.state_table)
    image = indexed.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    del indexed  # it borrows `codes`
    plot = primitives.plot
    vp = primitives.viewport
    for number, row in enumerate(primitives.strip_rows):
        y, h = state_band(row, vp)
        painter.drawImage(QRectF(plot.x, y, columns, h), image, QRectF(0, number, columns, 1))


def _paint_markers(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    if not primitives.markers:
        return
    if len(primitives.markers) > DENSE_MARKERS:
        _paint_dense_markers(painter, primitives, ink)
        return
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(Qt.PenStyle.NoPen)
    shapes: dict[str, QPainterPath] = {}
    for marker in primitives.markers:
        size = min(max(marker.height * 0.22, 4.0), 9.0)
        add_marker_shape(shapes.setdefault(marker.kind, QPainterPath()), marker.kind, marker.x,
                         marker.y + 1, marker.y + marker.height - 1, size)
    for kind, path in shapes.items():
        painter.fillPath(path, ink.markers[kind])
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)


# The markers that end a lane (an END's kinds): a bar across the whole row.
_ENDING_MARKERS = frozenset(info.kind for info in MARKERS if info.code == Code.END)


def add_marker_shape(path: QPainterPath, kind: str, x: float, top: float, bottom: float,
                     size: float) -> None:
    """Adds the shape of a marker of `kind` (tracer.events.MARKERS) at x between top and
    bottom: each kind has its own, drawn here for the timeline and its legend alike."""
    middle = (top + bottom) / 2
    if kind == "cancelled":
        # It was cancelled: the end's bar in a ring struck through once (a "no" sign), as
        # one outline, so that where the strokes cross stays filled.
        shape = QPainterPath()
        shape.addRect(QRectF(x - 1.0, top, 2.0, bottom - top))
        slash = QPainterPath()
        _add_cross(slash, x, middle, size, directions=(1.0,))
        ring = QPainterPath()
        ring.addEllipse(QPointF(x, middle), size + 1.0, size + 1.0)
        hole = QPainterPath()
        hole.addEllipse(QPointF(x, middle), size - 0.6, size - 0.6)
        path.addPath(shape.united(slash).united(ring.subtracted(hole)))
    elif kind in _ENDING_MARKERS:
        # A bar across the row: the lane stops here.
        path.addRect(QRectF(x - 1.0, top, 2.0, bottom - top))
        if kind == "error":  # it raised: the bar crossed by an X
            _add_cross(path, x, middle, size)
    elif kind == "output":
        path.addPolygon(QPolygonF([QPointF(x - size, top), QPointF(x + size, top),
                                   QPointF(x, top + 1.4 * size)]))
        path.closeSubpath()
    elif kind == "mark":
        path.addPolygon(QPolygonF([QPointF(x, middle - size), QPointF(x + size, middle),
                                   QPointF(x, middle + size), QPointF(x - size, middle)]))
        path.closeSubpath()
    else:
        raise ValueError(f"no shape for the marker kind {kind!r}")


def _add_cross(path: QPainterPath, x: float, y: float, size: float,
               directions: tuple[float, ...] = (1.0, -1.0)) -> None:
    arm, half = size, 1.3
    for direction in directions:
        path.addPolygon(QPolygonF([
            QPointF(x - arm - half, y - direction * (arm - half)),
            QPointF(x - arm + half, y - direction * (arm + half)),
            QPointF(x + arm + half, y + direction * (arm - half)),
            QPointF(x + arm - half, y + direction * (arm + half)),
        ]))
        path.closeSubpath()


_LEFT_MIDDLE = Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft


class _TextFit:
    """Widths and elided forms of the words a frame draws, measured once per font: the same
    labels come back frame after frame while a view pans or a live run grows. Words that do
    not fit are elided to the whole pixel below the room, so a cached form always fits."""

    def __init__(self, font: QFont) -> None:
        self.font = font
        self.metrics = QFontMetricsF(font)
        self._advances: dict[str, float] = {}
        self._elided: dict[tuple[str, int], str] = {}
        self._static: dict[str, QStaticText] = {}
        self._ascent = self.metrics.ascent()
        self._height = self.metrics.height()
        self.line_height = math.ceil(self._height)

    def draw_left_middle(self, painter: QPainter, box: QRectF, text: str, raster: bool) -> None:
        """`text` at the left of `box`, centred vertically, as drawText with AlignLeft |
        AlignVCenter draws it. On a raster device from a laid-out QStaticText, kept per
        text (laying text out is most of what drawing it costs); a vector device (SVG, PDF)
        gets drawText, so its words stay text."""
        if not raster:
            painter.drawText(box, _LEFT_MIDDLE, text)
            return
        static = self._static.get(text)
        if static is None:
            if len(self._static) > 5_000:
                self._static.clear()
            static = self._static[text] = QStaticText(text)
            static.setTextFormat(Qt.TextFormat.PlainText)
            static.prepare(QTransform(), self.font)
        top = box.y() + (box.height() - self._height) / 2
        painter.save()
        painter.setClipRect(box, Qt.ClipOperation.IntersectClip)
        painter.drawStaticText(QPointF(box.x(), top), static)
        painter.restore()

    def advance(self, text: str) -> float:
        width = self._advances.get(text)
        if width is None:
            if len(self._advances) > 20_000:
                self._advances.clear()
            width = self._advances[text] = self.metrics.horizontalAdvance(text)
        return width

    def elided(self, text: str, room: float) -> str:
        if self.advance(text) <= room:
            return text
        whole = math.floor(room)
        key = (text, whole)
        shown = self._elided.get(key)
        if shown is None:
            if len(self._elided) > 20_000:
                self._elided.clear()
            shown = self._elided[key] = self.metrics.elidedText(
                text, Qt.TextElideMode.ElideRight, whole)
        return shown


_text_fits: dict[int, tuple[QFont, _TextFit]] = {}


def text_measure(theme: Theme) -> tuple[Callable[[str], float], float]:
    """How the painter's small text measures: each word's width, and a line's height; what
    the layout places words by (Viewport.text_width and text_height)."""
    fit = _text_fit(_ink(theme).font_small)
    return fit.advance, fit.line_height


def _text_fit(font: QFont) -> _TextFit:
    known = _text_fits.get(id(font))
    if known is None or known[0] is not font:
        known = _text_fits[id(font)] = (font, _TextFit(font))
    return known[1]


def _paint_texts(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    """Words inside wide spans (on the span's colour) and beside arrows (on a halo of the
    background), elided to their box."""
    if not primitives.texts:
        return
    painter.setFont(ink.font_small)
    fit = _text_fit(ink.font_small)
    raster = _is_raster(painter)
    for label in primitives.texts:
        if label.kind == "span":
            room = label.w
            text = fit.elided(label.text, room)
            if not text or text == "…":
                continue
            painter.setPen(_readable_on(ink.states.get(label.state, ink.text_dim)))
            fit.draw_left_middle(painter, QRectF(label.x, label.y, room, label.h), text, raster)
        elif label.kind == "note":
            width = min(fit.advance(label.text) + 8, label.w)
            box = QRectF(label.x, label.y + 2, width, label.h - 4)
            painter.fillRect(box, ink.label_halo)
            painter.setPen(ink.text)
            fit.draw_left_middle(painter, box.adjusted(4, 0, -2, 0),
                                 fit.elided(label.text, width - 6), raster)
        else:
            # The layout sized the box for these words (text_measure): drawn inside it, they
            # cover nothing it kept them clear of.
            box = QRectF(label.x, label.y, label.w, label.h)
            width = label.w
            painter.fillRect(box, ink.label_halo)
            painter.setPen(ink.text)
            fit.draw_left_middle(painter, box.adjusted(3, 0, -3, 0),
                                 fit.elided(label.text, width - 6), raster)


def _paint_pauses(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    """Stretches the run was held while its clock went on: hatched, with how long."""
    if not primitives.pauses:
        return
    hatch = QBrush(ink.separator, Qt.BrushStyle.BDiagPattern)
    painter.setFont(ink.font_small)
    metrics = QFontMetricsF(ink.font_small)
    for pause in primitives.pauses:
        if pause.kind == "break":
            _paint_break(painter, pause, ink)
            continue
        box = QRectF(pause.x, pause.y, pause.w, pause.h)
        painter.fillRect(box, ink.label_halo)
        painter.fillRect(box, hatch)
        width = metrics.horizontalAdvance(pause.text) + 8
        if width <= pause.w:
            label = QRectF(pause.x + (pause.w - width) / 2, pause.y + 2, width, 16)
            painter.fillRect(label, ink.background)
            painter.setPen(ink.text)
            painter.drawText(label, Qt.AlignmentFlag.AlignCenter, pause.text)


def _paint_break(painter: QPainter, pause: TextLabel, ink: _Ink) -> None:
    """Where held time was cut out: a gap in the background colour across the lanes, edged
    by two zigzags, as an axis break is drawn."""
    painter.fillRect(QRectF(pause.x, pause.y, pause.w, pause.h), ink.background)
    tooth = 4.0
    count = max(int(pause.h // tooth), 1)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setPen(QPen(ink.text_dim, 1.2))
    for edge in (pause.x + 1.5, pause.x + pause.w - 1.5):
        painter.drawPolyline(QPolygonF([
            QPointF(edge + (1.5 if n % 2 else -1.5), pause.y + n * tooth)
            for n in range(count + 1)
        ]))
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)


def _paint_dense_markers(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    """Many markers: plain ticks, which read as well at that density and draw far faster.
    Built column-wise: a Python step per marker cost more than drawing the ticks."""
    xs, tops, heights, kinds = list(zip(*primitives.markers, strict=True))[:4]
    kind_of = np.array(kinds)
    x = np.round(np.array(xs)) + 0.5
    top, height = np.array(tops), np.array(heights)
    raster = _is_raster(painter)
    for kind in dict.fromkeys(kinds):  # in the order the kinds first appear, as before
        which = kind_of == kind
        x_kind, top_kind = x[which], top[which]
        # An ending marker's tick crosses its whole row; the others a third of it.
        bottom = top_kind + (height[which] if kind in _ENDING_MARKERS else height[which] / 3)
        pen = QPen(ink.markers[kind], 1)
        if raster and (bottom > top_kind).all():
            # One path read from numpy rather than a QLineF a tick (making and freeing
            # those was most of the cost): the raster engine strokes its segments into the
            # same pixels as the lines. A line of no length is the exception (drawLines
            # marks its pixel, a path does not), and a vector device should keep lines.
            painter.strokePath(_segments_path(x_kind, top_kind, x_kind, bottom), pen)
        else:
            painter.setPen(pen)
            painter.drawLines(list(map(QLineF, x_kind.tolist(), top_kind.tolist(),
                                       x_kind.tolist(), bottom.tolist())))


def _paint_arrows(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    if not primitives.arrows:
        return
    # Few arrows get smooth heads and a dot at their origin; many get plain heads, which cost
    # a fraction as much and are too small to tell apart then anyway.
    fine = len(primitives.arrows) <= FINE_ARROWS
    if fine:
        _paint_fine_arrows(painter, primitives, ink)
        return
    # Many arrows: shafts, halos and heads built column-wise in numpy and drawn in batches,
    # the same pixels as the fine path's pen strokes without a Python step per arrow.
    xs, starts, ends, kinds = list(zip(*primitives.arrows, strict=True))[:4]
    kind_of = np.array(kinds)
    all_x, all_y0, all_y1 = np.array(xs), np.array(starts), np.array(ends)
    whole_pixels = _is_raster(painter)
    for kind in ARROW_KINDS:
        which = kind_of == kind
        if not which.any():
            continue
        x = np.round(all_x[which])
        y0, y1 = all_y0[which], all_y1[which]
        shaft_end = y1 - np.where(y1 > y0, ARROW_HEAD, -ARROW_HEAD)
        color = ink.arrows[kind]
        painter.setPen(Qt.PenStyle.NoPen)
        # A halo in the background colour keeps an arrow readable over any state colour.
        painter.setBrush(ink.background)
        halos = _vertical_bars(x, y0, shaft_end, 4, whole_pixels)
        painter.drawRects(halos)
        if kind == "switch":
            # Switches dashed, wakes solid: told apart without relying on colour.
            pen = QPen(color, 2.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap)
            pen.setDashPattern([2.0, 1.5])
            painter.setPen(pen)
            painter.drawLines(list(map(QLineF, x.tolist(), y0.tolist(), x.tolist(),
                                       shaft_end.tolist())))
            painter.setPen(Qt.PenStyle.NoPen)
        else:
            painter.setBrush(color)
            # The shafts are the halos' middle 2 pixels: the same rectangles narrowed in
            # place (Qt has copied them), a third of the cost of making them anew.
            for bar in halos:
                bar.adjust(1, 0, -1, 0)
            painter.drawRects(halos)
        heads = np.empty((len(x), 4, 2))
        heads[:, 0, 0] = heads[:, 3, 0] = x
        heads[:, 0, 1] = heads[:, 3, 1] = y1  # the tip twice: closed, as closeSubpath does
        # All wound the same way round, so heads that overlap fill as one (winding fill).
        half_base = np.where(y1 > y0, ARROW_HEAD / 2, -ARROW_HEAD / 2)
        heads[:, 1, 0] = x - half_base
        heads[:, 2, 0] = x + half_base
        heads[:, 1, 1] = heads[:, 2, 1] = shaft_end
        # A few dozen heads a path: the rasteriser's cost grows faster than the path does
        # (thousands of heads in one path took 25 times as long).
        for first in range(0, len(x), HEADS_PER_PATH):
            painter.fillPath(_polygons_path(heads[first:first + HEADS_PER_PATH]), color)


def _is_raster(painter: QPainter) -> bool:
    engine = painter.paintEngine()
    return engine is not None and engine.type() == QPaintEngine.Type.Raster


def _vertical_bars(x: np.ndarray, y0: np.ndarray, y1: np.ndarray, width: int,
                   whole_pixels: bool) -> list[QRect] | list[QRectF]:
    """What a flat-capped pen `width` wide strokes along each vertical line (x, y0)-(x, y1) at
    a whole x. On a raster device as whole-pixel rectangles, which fill a third faster: its
    engine rounds a float rectangle's edges half up anyway. Vector devices keep the floats."""
    top, bottom = np.minimum(y0, y1), np.maximum(y0, y1)
    left = x - width // 2
    if not whole_pixels:
        return list(map(QRectF, left.tolist(), top.tolist(), [float(width)] * len(x),
                        (bottom - top).tolist()))
    column, first_row, end_row = _union_per_column(
        left.astype(np.int64), np.floor(top + 0.5).astype(np.int64),
        np.floor(bottom + 0.5).astype(np.int64))
    return list(map(QRect, column.tolist(), first_row.tolist(), [width] * len(column),
                    (end_row - first_row).tolist()))


def _union_per_column(column: np.ndarray, first_row: np.ndarray, end_row: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row ranges [first_row, end_row) in the same column that overlap or touch, merged into
    one: the same pixels in one colour, with far fewer rows to fill where thousands of
    arrows leave the same lane at the same pixel."""
    if len(column) < 2:
        return column, first_row, end_row
    order = np.lexsort((first_row, column))
    column, first_row, end_row = column[order], first_row[order], end_row[order]
    # The furthest row reached so far within each column, by one running maximum over all:
    # lifting each column above every earlier one keeps the columns apart.
    low = int(min(first_row.min(), end_row.min()))
    lift = int(max(first_row.max(), end_row.max())) - low + 1
    base = (column - column[0]) * lift
    reach = np.maximum.accumulate(base + end_row - low) - base + low
    starts_run = np.ones(len(column), dtype=bool)
    starts_run[1:] = (column[1:] != column[:-1]) | (first_row[1:] > reach[:-1])
    first = starts_run.nonzero()[0]
    return column[first], first_row[first], np.maximum.reduceat(end_row, first)


_PATH_ELEMENT = np.dtype([("type", ">i4"), ("x", ">f8"), ("y", ">f8")])


def _segments_path(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray
                   ) -> QPainterPath:
    """One path of the line segments (x0, y0)-(x1, y1), read from QPainterPath's QDataStream
    form as _polygons_path reads polygons."""
    count = len(x0)
    elements = np.empty(2 * count, dtype=_PATH_ELEMENT)
    elements["type"][0::2] = 0  # MoveToElement
    elements["type"][1::2] = 1  # LineToElement
    elements["x"][0::2], elements["y"][0::2] = x0, y0
    elements["x"][1::2], elements["y"][1::2] = x1, y1
    return _path_from_elements(elements, last_subpath=2 * count - 2, winding=False)


def _polygons_path(polygons: np.ndarray) -> QPainterPath:
    """One path of closed polygons (shape: polygons x points x 2) with the winding fill rule,
    read from QPainterPath's QDataStream form: hundreds of times faster than adding each
    polygon from Python."""
    count, points, _ = polygons.shape
    elements = np.empty(count * points, dtype=_PATH_ELEMENT)
    elements["type"] = 1  # LineToElement
    elements["type"][::points] = 0  # MoveToElement
    elements["x"] = polygons[:, :, 0].ravel()
    elements["y"] = polygons[:, :, 1].ravel()
    return _path_from_elements(elements, last_subpath=(count - 1) * points, winding=True)


def _path_from_elements(elements: np.ndarray, *, last_subpath: int, winding: bool
                        ) -> QPainterPath:
    # element count, elements, start of the last subpath, fill rule (1: winding)
    data = (np.array([len(elements)], ">i4").tobytes() + elements.tobytes()
            + np.array([last_subpath, int(winding)], ">i4").tobytes())
    path = QPainterPath()
    stream = QDataStream(QByteArray(data))
    stream >> path
    return path


def _paint_fine_arrows(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    for kind in ARROW_KINDS:
        shafts: list[QLineF] = []
        heads = QPainterPath()
        for arrow in primitives.arrows:
            if arrow.kind != kind:
                continue
            down = 1.0 if arrow.y1 > arrow.y0 else -1.0
            # Arrows are vertical: snapped to a pixel they need no antialiasing, which keeps
            # hundreds of long shafts cheap.
            x = float(round(arrow.x))
            shafts.append(QLineF(x, arrow.y0, x, arrow.y1 - down * ARROW_HEAD))
            heads.addPolygon(QPolygonF([
                QPointF(x, arrow.y1),
                QPointF(x - ARROW_HEAD / 2, arrow.y1 - down * ARROW_HEAD),
                QPointF(x + ARROW_HEAD / 2, arrow.y1 - down * ARROW_HEAD),
            ]))
            heads.closeSubpath()
            heads.addEllipse(QPointF(x, arrow.y0), 2.5, 2.5)
        if not shafts:
            continue
        color = ink.arrows[kind]
        # A halo in the background colour keeps an arrow readable over any state colour.
        painter.setPen(QPen(ink.background, 4.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap))
        painter.drawLines(shafts)
        pen = QPen(color, 2.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.FlatCap)
        # Switches dashed, wakes solid: told apart without relying on colour.
        if kind == "switch":
            pen.setDashPattern([2.0, 1.5])
        painter.setPen(pen)
        painter.drawLines(shafts)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.fillPath(heads, color)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)


def _paint_highlight_and_now(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    plot = primitives.plot
    if primitives.now_x is not None:
        painter.setPen(QPen(ink.now_line, 1.5, Qt.PenStyle.DashLine))
        painter.drawLine(QLineF(primitives.now_x, plot.y, primitives.now_x, plot.y + plot.h))
    box = primitives.highlight
    if box is not None:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(ink.selection, 2))
        painter.drawRect(QRectF(box.x - 1, box.y + 1, box.w + 2, box.h - 2))


def _paint_cursor_spans(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    """Rings the state band of every lane under the cursor, so each lane's state there
    stands out from the spans around it."""
    x = primitives.cursor_x
    if x is None:
        return
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(QPen(ink.text, 1))
    for row in primitives.lanes:
        state = primitives.cursor_states.get(row.lane)
        if state is None:
            continue
        y, height = state_band(row, primitives.viewport)
        painter.fillRect(QRectF(x - 4, y, 8, height), ink.states.get(state, ink.text_dim))
        painter.drawRect(QRectF(x - 4, y, 8, height))


def _paint_cursor_line(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    """The stepping cursor: a line through the axis and the lanes, with a handle on the axis."""
    x = primitives.cursor_x
    if x is None:
        return
    axis, plot = primitives.axis, primitives.plot
    painter.save()
    painter.setClipRect(QRectF(plot.x, axis.y, plot.w, axis.h + plot.h))
    painter.setPen(QPen(ink.selection, 2))
    painter.drawLine(QLineF(x, axis.y + axis.h / 2, x, plot.y + plot.h))
    handle = QPolygonF([QPointF(x - 6, axis.y + 4), QPointF(x + 6, axis.y + 4),
                        QPointF(x, axis.y + axis.h - 2)])
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    painter.setBrush(ink.selection)
    painter.drawPolygon(handle)
    painter.restore()


def label_width_for(trace: Trace, theme: Theme, total_width: float) -> float:
    """A name column wide enough for the longest lane name and its kind, within reason.

    Between 140 px and 30% of the whole width; a longer name is elided in the middle.
    """
    ink = _ink(theme)
    metrics = QFontMetricsF(ink.font_bold)
    small = QFontMetricsF(ink.font_small)
    widest = max(
        (metrics.horizontalAdvance(info.name) + small.horizontalAdvance(info.kind) + 8
         for info in trace.lanes),
        default=0.0,
    )
    return float(min(max(widest + 2 * LABEL_INSET + 6, 140.0), total_width * 0.3))


def _paint_labels(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    """The lane names; from a cached image while they stay the same (see _draw_cached)."""
    at_cursor = (tuple(sorted(primitives.cursor_states.items()))
                 if primitives.cursor_x is not None else None)
    key = (tuple(primitives.lanes), at_cursor)
    if not _draw_cached(painter, primitives.labels, "labels", ink, key,
                        lambda offscreen: _draw_labels(offscreen, primitives, ink)):
        _draw_labels(painter, primitives, ink)


_cached_images: dict[str, tuple[tuple[object, ...], QImage]] = {}
_PLAIN_MOVES = (QTransform.TransformationType.TxNone, QTransform.TransformationType.TxTranslate)


def _draw_cached(painter: QPainter, box: Box, slot: str, ink: _Ink, key: tuple[object, ...],
                 draw: Callable[[QPainter], None]) -> bool:
    """Draws what `draw` draws inside `box` from an image made the last time `key` was the
    same, and says whether it could. Text is the slowest thing a frame draws, and panning or
    zooming never changes the lane names or the legend. Vector output (SVG, PDF) keeps its
    text, and a scaled or fractionally placed painter would resample it: both draw directly.
    The image is transparent where nothing was drawn, so whatever lies under it shows."""
    transform = painter.worldTransform()
    if (not _is_raster(painter) or transform.type() not in _PLAIN_MOVES
            or not float(transform.dx()).is_integer() or not float(transform.dy()).is_integer()
            or not float(box.x).is_integer() or not float(box.y).is_integer()
            or box.w < 1 or box.h < 1):
        return False
    ratio = painter.device().devicePixelRatioF()
    full_key = (id(ink), box, ratio, *key)
    cached = _cached_images.get(slot)
    if cached is None or cached[0] != full_key:
        image = QImage(math.ceil(box.w * ratio), math.ceil(box.h * ratio),
                       QImage.Format.Format_ARGB32_Premultiplied)
        image.setDevicePixelRatio(ratio)
        image.fill(Qt.GlobalColor.transparent)
        offscreen = QPainter(image)
        try:
            offscreen.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            offscreen.translate(-box.x, -box.y)
            draw(offscreen)
        finally:
            offscreen.end()
        cached = _cached_images[slot] = (full_key, image)
    painter.drawImage(QPointF(box.x, box.y), cached[1])
    return True


def _draw_labels(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    labels = primitives.labels
    painter.save()
    painter.setClipRect(QRectF(labels.x, labels.y, labels.w, labels.h))
    small = QFontMetricsF(ink.font_small)
    for row, box in lane_name_boxes(primitives, ink.theme):
        state = primitives.cursor_states.get(row.lane) if primitives.cursor_x is not None \
            else None
        _paint_lane_label(painter, row, box, labels.w, ink, small, state)
    painter.restore()


def lane_name_boxes(primitives: Primitives, theme: Theme) -> list[tuple[LaneRow, QRectF]]:
    """Each visible row whose name is drawn, with the box its words go in: the row itself
    when a line of the names' font fits in it; in thinner rows a line of the small font
    centred on the row, the names taken top to bottom and one left out where it would
    overlap the one above (its row's tooltip and click still say it)."""
    ink = _ink(theme)
    line = QFontMetricsF(ink.font).height()
    rows = primitives.lanes
    if not rows or rows[0].height >= line:
        return [(row, QRectF(LABEL_INSET, row.y, 0.0, row.height)) for row in rows]
    small_line = math.ceil(QFontMetricsF(ink.font_small).height())
    boxes = []
    bottom = -math.inf
    for row in rows:
        top = row.y + (row.height - small_line) / 2
        if top < bottom:
            continue
        boxes.append((row, QRectF(LABEL_INSET, top, 0.0, small_line)))
        bottom = top + small_line
    return boxes


def _paint_lane_label(
    painter: QPainter, row: LaneRow, box: QRectF, width: float, ink: _Ink,
    small: QFontMetricsF, state: int | None = None,
) -> None:
    """A lane's name at the left of its box and its tag (fd, kind, or the state at the
    cursor) at the right, each measured in the font it is drawn in so they never meet. A
    box other than the row is a thin row's: its words are in the small font."""
    thin = box.height() != row.height
    # At the stepping cursor the label names the lane's state there instead of its kind.
    plain_tag = row.tag or row.kind
    if row.kind in (GROUP_KIND, MORE_KIND):
        plain_tag = ""
    tag = STATE_NAMES.get(state, plain_tag) if state is not None else plain_tag
    kind_width = small.horizontalAdvance(tag) + 8 if tag else 0.0
    room = width - 2 * LABEL_INSET
    show_kind = tag and room - kind_width > 60
    name_room = room - kind_width if show_kind else room
    font = ink.font_small if thin else ink.font_bold if row.kind == "loop" else ink.font
    name = QFontMetricsF(font).elidedText(row.name, Qt.TextElideMode.ElideMiddle, name_room)
    painter.setFont(font)
    painter.setPen(ink.text_dim if row.kind in (GROUP_KIND, MORE_KIND) else ink.text)
    painter.drawText(QRectF(LABEL_INSET, box.y(), name_room, box.height()),
                     Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, name)
    if show_kind:
        tag_box = QRectF(width - LABEL_INSET - kind_width, box.y(), kind_width, box.height())
        painter.setFont(ink.font_small)
        if state is not None and not thin:
            pill = QRectF(tag_box.x() - 2, row.y + 4, tag_box.width() + 4, row.height - 8)
            painter.fillRect(pill, ink.states.get(state, ink.text_dim))
            painter.setPen(_readable_on(ink.states.get(state, ink.text_dim)))
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, tag)
        else:
            painter.setPen(ink.text_dim)
            painter.drawText(tag_box,
                             Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, tag)


def _readable_on(background: QColor) -> QColor:
    return QColor("#000000") if background.lightnessF() > 0.55 else QColor("#ffffff")


def _paint_axis(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    axis = primitives.axis
    if axis.h <= 0:
        return
    painter.fillRect(QRectF(0, axis.y, axis.x + axis.w, axis.h), ink.label_background)
    painter.setPen(QPen(ink.separator, 1))
    bottom = axis.y + axis.h - 0.5
    painter.drawLine(QLineF(0, bottom, axis.x + axis.w, bottom))
    painter.setFont(ink.font)
    fit = _text_fit(ink.font)
    raster = _is_raster(painter)
    right_edge = axis.x + axis.w
    tick_pen = QPen(ink.separator, 1)
    for tick in primitives.ticks:
        x = round(tick.x) + 0.5
        painter.setPen(tick_pen)
        painter.drawLine(QLineF(x, bottom - 6, x, bottom))
        width = fit.advance(tick.label)
        if tick.x + 4 + width > right_edge:
            continue  # a label that would be cut off at the right edge is left out
        painter.setPen(ink.text_dim)
        fit.draw_left_middle(painter, QRectF(tick.x + 4, axis.y, width + 2, axis.h - 4),
                             tick.label, raster)
    if primitives.axis_note:
        painter.setPen(ink.text_dim)
        painter.drawText(QRectF(LABEL_INSET, axis.y, axis.x - 2 * LABEL_INSET, axis.h - 4),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                         primitives.axis_note)


def _paint_header(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    header = primitives.header
    if header.h <= 0 or not primitives.title:
        return
    painter.setPen(ink.text)
    painter.setFont(ink.title_font)
    title_height = QFontMetricsF(ink.title_font).height()
    top = header.y + max((header.h - title_height - QFontMetricsF(ink.subtitle_font).height())
                         / 2, 4)
    painter.drawText(QRectF(16, top, header.w - 32, title_height),
                     Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, primitives.title)
    if primitives.subtitle:
        painter.setPen(ink.text_dim)
        painter.setFont(ink.subtitle_font)
        painter.drawText(QRectF(16, top + title_height, header.w - 32, header.h - title_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop,
                         primitives.subtitle)


def _paint_legend(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    box = primitives.legend_box
    if box.h <= 0 or not primitives.legend:
        return
    places = legend_places(primitives, _text_fit(ink.font).advance)  # widths measured once
    if not _draw_cached(painter, box, "legend", ink, tuple(places),
                        lambda offscreen: _draw_legend(offscreen, primitives, ink, places)):
        _draw_legend(painter, primitives, ink, places)


def legend_places(primitives: Primitives, advance: Callable[[str], float]
                  ) -> list[tuple[LegendEntry, float, float]]:
    """The legend entries that fit, each with its glyph's x and its label's width (`advance`
    measures a text): left to right, stopping short of the note on arrows not drawn at the
    legend's right end."""
    box = primitives.legend_box
    note = _hidden_arrows_note(primitives)
    right = box.x + box.w - (advance(note) + LABEL_INSET + 18 if note else 0)
    places = []
    x = LABEL_INSET
    for entry in primitives.legend:
        text_width = advance(entry.label)
        if x + 18 + text_width > right:
            break
        places.append((entry, x, text_width))
        x += 18 + text_width + 18
    return places


def _draw_legend(painter: QPainter, primitives: Primitives, ink: _Ink,
                 places: list[tuple[LegendEntry, float, float]]) -> None:
    box = primitives.legend_box
    painter.setPen(QPen(ink.separator, 1))
    painter.drawLine(QLineF(0, box.y + 0.5, box.w, box.y + 0.5))
    painter.setFont(ink.font)
    middle = box.y + box.h / 2
    for entry, x, text_width in places:
        _paint_legend_glyph(painter, entry, x, middle, ink)
        painter.setPen(ink.text)
        painter.drawText(QRectF(x + 18, box.y, text_width + 2, box.h),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, entry.label)


def _paint_legend_glyph(
    painter: QPainter, entry: LegendEntry, x: float, middle: float, ink: _Ink
) -> None:
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    if entry.kind == "state":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(ink.states.get(entry.code, ink.text_dim))
        painter.drawRoundedRect(QRectF(x, middle - 6, 12, 12), 2, 2)
    elif entry.kind == "arrow":
        color = ink.arrows[entry.label]
        pen = QPen(color, 1.3)
        pen.setStyle(Qt.PenStyle.DashLine if entry.label == "switch" else Qt.PenStyle.SolidLine)
        painter.setPen(pen)
        painter.drawLine(QLineF(x, middle, x + 8, middle))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QBrush(color))
        painter.drawPolygon(QPolygonF([QPointF(x + 13, middle), QPointF(x + 7, middle - 3.5),
                                       QPointF(x + 7, middle + 3.5)]))
    else:
        marker = MARKER_KINDS[entry.code]
        shape = QPainterPath()
        top = middle - (4 if marker == "output" else 7)
        add_marker_shape(shape, marker, x + 6, top, middle + 7, 4.5)
        painter.fillPath(shape, ink.markers[marker])
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)


def _hidden_arrows_note(primitives: Primitives) -> str:
    """What the legend's right end says when the view has too many arrows to draw."""
    hidden = primitives.arrows_hidden
    return f"{hidden:,} arrows not drawn: zoom in to see them" if hidden else ""


def _paint_notes(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    plot = primitives.plot
    painter.setFont(ink.font)
    if primitives.message:
        painter.setPen(ink.text_dim)
        painter.drawText(QRectF(plot.x, plot.y, plot.w, plot.h), Qt.AlignmentFlag.AlignCenter,
                         primitives.message)
    legend = primitives.legend_box
    note = _hidden_arrows_note(primitives)
    if note and legend.h > 0:
        painter.setPen(ink.text_dim)
        painter.drawText(QRectF(legend.x, legend.y, legend.w - LABEL_INSET, legend.h),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, note)
