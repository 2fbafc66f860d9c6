"""Toolbar icons drawn in the theme's text colour, so they read on a light and on a dark
toolbar alike (the style's stock media icons are dark glyphs, near-invisible on dark)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap, QPolygonF

SIZE = 32  # drawn at twice the usual 16 px, so it stays sharp on high-density screens


def _triangle(painter: QPainter, left: float, right: float) -> None:
    """A play triangle between two x positions, pointing the way right - left does."""
    painter.drawPolygon(QPolygonF([QPointF(left, 6), QPointF(right, SIZE / 2),
                                   QPointF(left, SIZE - 6)]))


def _bar(painter: QPainter, x: float, width: float = 4.5) -> None:
    painter.drawRect(QRectF(x, 6, width, SIZE - 12))


def _fit(painter: QPainter) -> None:
    """Two arrow heads pushed apart over a line: the whole run fills the view."""
    painter.drawPolygon(QPolygonF([QPointF(3, 16), QPointF(11, 9), QPointF(11, 23)]))
    painter.drawPolygon(QPolygonF([QPointF(29, 16), QPointF(21, 9), QPointF(21, 23)]))
    painter.drawRect(QRectF(10, 14.5, 12, 3))


def _follow(painter: QPainter) -> None:
    """An arrow running into the live edge."""
    painter.drawRect(QRectF(4, 14.5, 14, 3))
    painter.drawPolygon(QPolygonF([QPointF(24, 16), QPointF(16, 9), QPointF(16, 23)]))
    painter.drawRect(QRectF(25, 5, 3, 22))


def _draw(name: str, painter: QPainter) -> None:
    if name == "play":
        _triangle(painter, 9, 25)
    elif name == "stop":
        painter.drawRect(QRectF(8, 8, 16, 16))
    elif name == "pause":
        _bar(painter, 9, 5)
        _bar(painter, 18, 5)
    elif name == "step":
        _triangle(painter, 6, 20)
        _bar(painter, 21)
    elif name == "step-back":
        _bar(painter, 6.5)
        _triangle(painter, 26, 12)
    elif name == "step-through":
        _triangle(painter, 4, 16)
        _triangle(painter, 16, 28)
    elif name == "fit":
        _fit(painter)
    elif name == "follow":
        _follow(painter)
    else:
        raise ValueError(f"no icon called {name!r}")


ICON_NAMES = ("play", "stop", "pause", "step", "step-back", "step-through", "fit", "follow")


def toolbar_icon(name: str, color: str) -> QIcon:
    """The icon called `name` (one of ICON_NAMES) in `color`; Qt greys it when disabled."""
    pixmap = QPixmap(SIZE, SIZE)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    try:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(QPen(Qt.PenStyle.NoPen))
        painter.setBrush(QColor(color))
        _draw(name, painter)
    finally:
        painter.end()
    return QIcon(pixmap)
