"""The one routine that draws timeline primitives, on the widget, a QImage, an SVG or a PDF.

Drawing is batched: one drawRects call per state colour, one path per arrow kind. When the
merged (sub-pixel) runs are too many to draw one by one, they are blitted as a numpy-built
image, one row per lane. Everything is sized in pixels, so every device looks the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QLineF, QPointF, QRectF, Qt
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPainter,
    QPainterPath,
    QPen,
    QPolygonF,
)

from tracer.trace import Trace
from ui.layout import (
    ARROW_KINDS,
    LaneRow,
    LegendEntry,
    Primitives,
    Rects,
    state_band,
)
from ui.theme import Theme

# Above this many merged runs, an image per lane row is cheaper than one rectangle each.
MERGED_RUNS_AS_IMAGE = 2000
ARROW_HEAD = 7.0
# Above this many instant markers, draw them as plain ticks.
DENSE_MARKERS = 300
FINE_ARROWS = 80
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
    font: QFont
    font_bold: QFont
    font_small: QFont
    title_font: QFont
    subtitle_font: QFont
    # state code + 1 -> premultiplied ARGB; entry 0 (no state) is transparent
    state_lut: np.ndarray


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
    lut = np.zeros(17, dtype=np.uint32)
    for code, color in states.items():
        lut[code + 1] = color.rgba()  # opaque, so premultiplied equals straight
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
        markers={"output": QColor(theme.output), "end": QColor(theme.end),
                 "mark": QColor(theme.mark)},
        now_line=QColor(theme.now_line),
        selection=QColor(theme.selection),
        font=_font(theme, theme.font_px),
        font_bold=_font(theme, theme.font_px, bold=True),
        font_small=_font(theme, theme.font_px - 2),
        title_font=_font(theme, theme.title_px, bold=True),
        subtitle_font=_font(theme, theme.subtitle_px),
        state_lut=lut,
    )


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
        _paint_highlight_and_now(painter, primitives, ink)
        painter.restore()

        _paint_labels(painter, primitives, ink)
        _paint_axis(painter, primitives, ink)
        _paint_header(painter, primitives, ink)
        _paint_legend(painter, primitives, ink)
        _paint_notes(painter, primitives, ink)
    finally:
        painter.restore()


def _rect_list(rects: Rects, which: np.ndarray) -> list[QRectF]:
    # Narrower than a pixel still shows as one pixel.
    x, y, w, h = rects.x[which], rects.y[which], np.maximum(rects.w[which], 1.0), rects.h[which]
    return [QRectF(*r) for r in zip(x.tolist(), y.tolist(), w.tolist(), h.tolist(), strict=True)]


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
    exact_state = rects.state[:merged_from]
    for code in np.unique(exact_state).tolist():
        painter.setBrush(ink.states.get(code, ink.text_dim))
        painter.drawRects(_rect_list(rects, np.nonzero(exact_state == code)[0]))
    merged_count = len(rects) - merged_from
    if merged_count > MERGED_RUNS_AS_IMAGE:
        _blit_strips(painter, primitives, ink)
        return
    merged_state = rects.state[merged_from:]
    for code in np.unique(merged_state).tolist():
        painter.setBrush(ink.states.get(code, ink.text_dim))
        painter.drawRects(_rect_list(rects, np.nonzero(merged_state == code)[0] + merged_from))


def _blit_strips(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    strips = primitives.strips
    if not strips.size:
        return
    pixels = np.ascontiguousarray(ink.state_lut[strips.astype(np.int16) + 1])
    rows, columns = pixels.shape
    image = QImage(pixels.data, columns, rows, columns * 4,
                   QImage.Format.Format_ARGB32_Premultiplied)
    plot = primitives.plot
    for number, row in enumerate(primitives.strip_rows):
        y, h = state_band(row, primitives.viewport)
        painter.drawImage(QRectF(plot.x, y, columns, h), image, QRectF(0, number, columns, 1))
    del image  # it borrows `pixels`; drop it before the buffer goes


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
        path = shapes.setdefault(marker.kind, QPainterPath())
        x, top, bottom = marker.x, marker.y + 1, marker.y + marker.height - 1
        size = min(max(marker.height * 0.22, 4.0), 9.0)
        if marker.kind == "end":
            # A bar across the row: the lane stops here.
            path.addRect(QRectF(x - 1.0, top, 2.0, bottom - top))
        elif marker.kind == "output":
            path.addPolygon(QPolygonF([QPointF(x - size, top), QPointF(x + size, top),
                                       QPointF(x, top + 1.4 * size)]))
            path.closeSubpath()
        else:
            middle = (top + bottom) / 2
            path.addPolygon(QPolygonF([QPointF(x, middle - size), QPointF(x + size, middle),
                                       QPointF(x, middle + size), QPointF(x - size, middle)]))
            path.closeSubpath()
    for kind, path in shapes.items():
        painter.fillPath(path, ink.markers[kind])
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)


def _paint_dense_markers(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    """Many markers: plain ticks, which read as well at that density and draw far faster."""
    ticks: dict[str, list[QLineF]] = {}
    for marker in primitives.markers:
        x = round(marker.x) + 0.5
        bottom = marker.y + (marker.height if marker.kind == "end" else marker.height / 3)
        ticks.setdefault(marker.kind, []).append(QLineF(x, marker.y, x, bottom))
    for kind, lines in ticks.items():
        painter.setPen(QPen(ink.markers[kind], 1))
        painter.drawLines(lines)


def _paint_arrows(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    if not primitives.arrows:
        return
    # Few arrows get smooth heads and a dot at their origin; many get plain heads, which cost
    # a fraction as much and are too small to tell apart then anyway.
    fine = len(primitives.arrows) <= FINE_ARROWS
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
            if fine:
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
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, fine)
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
    labels = primitives.labels
    painter.save()
    painter.setClipRect(QRectF(labels.x, labels.y, labels.w, labels.h))
    metrics = QFontMetricsF(ink.font)
    small = QFontMetricsF(ink.font_small)
    for row in primitives.lanes:
        _paint_lane_label(painter, row, labels.w, ink, metrics, small)
    painter.restore()


def _paint_lane_label(
    painter: QPainter, row: LaneRow, width: float, ink: _Ink, metrics: QFontMetricsF,
    small: QFontMetricsF,
) -> None:
    kind_width = small.horizontalAdvance(row.kind) + 8 if row.kind else 0.0
    room = width - 2 * LABEL_INSET
    show_kind = row.kind and room - kind_width > 60
    name_room = room - kind_width if show_kind else room
    name = metrics.elidedText(row.name, Qt.TextElideMode.ElideMiddle, name_room)
    painter.setFont(ink.font_bold if row.kind == "loop" else ink.font)
    painter.setPen(ink.text)
    painter.drawText(QRectF(LABEL_INSET, row.y, name_room, row.height),
                     Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, name)
    if show_kind:
        painter.setFont(ink.font_small)
        painter.setPen(ink.text_dim)
        painter.drawText(QRectF(width - LABEL_INSET - kind_width, row.y, kind_width, row.height),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, row.kind)


def _paint_axis(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    axis = primitives.axis
    if axis.h <= 0:
        return
    painter.fillRect(QRectF(0, axis.y, axis.x + axis.w, axis.h), ink.label_background)
    painter.setPen(QPen(ink.separator, 1))
    bottom = axis.y + axis.h - 0.5
    painter.drawLine(QLineF(0, bottom, axis.x + axis.w, bottom))
    painter.setFont(ink.font)
    metrics = QFontMetricsF(ink.font)
    right_edge = axis.x + axis.w
    for tick in primitives.ticks:
        x = round(tick.x) + 0.5
        painter.setPen(QPen(ink.separator, 1))
        painter.drawLine(QLineF(x, bottom - 6, x, bottom))
        width = metrics.horizontalAdvance(tick.label)
        if tick.x + 4 + width > right_edge:
            continue  # a label that would be cut off at the right edge is left out
        painter.setPen(ink.text_dim)
        painter.drawText(QRectF(tick.x + 4, axis.y, width + 2, axis.h - 4),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, tick.label)
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
    painter.setPen(QPen(ink.separator, 1))
    painter.drawLine(QLineF(0, box.y + 0.5, box.w, box.y + 0.5))
    painter.setFont(ink.font)
    metrics = QFontMetricsF(ink.font)
    x = LABEL_INSET
    middle = box.y + box.h / 2
    for entry in primitives.legend:
        text_width = metrics.horizontalAdvance(entry.label)
        if x + 18 + text_width > box.x + box.w:
            break
        _paint_legend_glyph(painter, entry, x, middle, ink)
        painter.setPen(ink.text)
        painter.drawText(QRectF(x + 18, box.y, text_width + 2, box.h),
                         Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, entry.label)
        x += 18 + text_width + 18


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
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(ink.markers[entry.label])
        if entry.label == "end":
            painter.drawRect(QRectF(x + 5, middle - 7, 2, 14))
        elif entry.label == "output":
            painter.drawPolygon(QPolygonF([QPointF(x + 2, middle - 4), QPointF(x + 10, middle - 4),
                                           QPointF(x + 6, middle + 3)]))
        else:
            painter.drawPolygon(QPolygonF([QPointF(x + 6, middle - 5), QPointF(x + 10, middle),
                                           QPointF(x + 6, middle + 5), QPointF(x + 2, middle)]))
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)


def _paint_notes(painter: QPainter, primitives: Primitives, ink: _Ink) -> None:
    plot = primitives.plot
    painter.setFont(ink.font)
    if primitives.message:
        painter.setPen(ink.text_dim)
        painter.drawText(QRectF(plot.x, plot.y, plot.w, plot.h), Qt.AlignmentFlag.AlignCenter,
                         primitives.message)
    legend = primitives.legend_box
    if primitives.arrows_hidden and legend.h > 0:
        note = f"{primitives.arrows_hidden:,} arrows not drawn: zoom in to see them"
        painter.setPen(ink.text_dim)
        painter.drawText(QRectF(legend.x, legend.y, legend.w - LABEL_INSET, legend.h),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, note)
