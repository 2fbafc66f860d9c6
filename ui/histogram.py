"""A histogram of durations on a doubling scale: step times or scheduling latencies.

`doubling_buckets` is the pure part (tests read it); `HistogramWidget` draws its bars.
Durations spread over orders of magnitude (a 5 µs step and a 500 ms stall), so each bucket
is twice as wide as the one before: [1 µs, 2 µs), [2 µs, 4 µs), ...; the first holds
everything shorter than 1 µs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from loopscope.tracer.report_text import short_duration

FIRST_EDGE_NS = 1_000


class Bucket(NamedTuple):
    low_ns: int  # inclusive (0 for the first bucket)
    high_ns: int  # exclusive
    samples: int  # how many durations fell in it


def doubling_buckets(durations: Sequence[int] | npt.NDArray[np.int64]) -> list[Bucket]:
    """Counts per doubling bucket, from the first to the last bucket that holds anything."""
    return buckets_of(bucket_counts(durations))


def bucket_counts(durations: Sequence[int] | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """How many durations fall in each doubling bucket (index k is bucket k): counts of two
    sets of durations add up to the counts of both."""
    if not len(durations):
        return np.zeros(0, dtype=np.int64)
    values = np.asarray(durations, dtype=np.int64)
    # bucket 0: below 1 µs; bucket k: [2^(k-1) µs, 2^k µs)
    scaled = np.maximum(values, 1) / FIRST_EDGE_NS
    index = np.where(values < FIRST_EDGE_NS, 0, np.floor(np.log2(scaled)).astype(np.int64) + 1)
    return np.bincount(index).astype(np.int64)


def add_counts(left: npt.NDArray[np.int64], right: npt.NDArray[np.int64]
               ) -> npt.NDArray[np.int64]:
    if len(left) < len(right):
        left, right = right, left
    total = left.copy()
    total[: len(right)] += right
    return total


def buckets_of(counts: npt.NDArray[np.int64]) -> list[Bucket]:
    last = int(np.flatnonzero(counts)[-1]) + 1 if counts.any() else 0
    return [
        Bucket(0 if k == 0 else FIRST_EDGE_NS << (k - 1), FIRST_EDGE_NS << k, int(counts[k]))
        for k in range(last)
    ]


class Tally:
    """Bucket counts of durations that only grow (a lane's steps, live): each `update` counts
    only the durations past the ones it has seen."""

    def __init__(self) -> None:
        self.counts: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.seen = 0

    def update(self, durations: Sequence[int] | npt.NDArray[np.int64]) -> None:
        if len(durations) < self.seen:  # not the same set grown: count it afresh
            self.counts, self.seen = np.zeros(0, dtype=np.int64), 0
        if len(durations) > self.seen:
            self.counts = add_counts(self.counts, bucket_counts(durations[self.seen:]))
            self.seen = len(durations)


class HistogramWidget(QWidget):
    """Bars for `doubling_buckets`, with the range of the scale under them."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.buckets: list[Bucket] = []
        self.setMinimumHeight(90)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        return QSize(260, 110)

    def set_durations(self, durations: Sequence[int] | npt.NDArray[np.int64]) -> None:
        self.set_buckets(doubling_buckets(durations))

    def set_buckets(self, buckets: list[Bucket]) -> None:
        if buckets != self.buckets:
            self.buckets = buckets
            self.update()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        try:
            palette = self.palette()
            text = palette.windowText().color()
            painter.fillRect(self.rect(), palette.base())
            painter.setPen(text)
            metrics = painter.fontMetrics()
            line = metrics.height()
            total = sum(bucket.samples for bucket in self.buckets)
            painter.drawText(QRectF(4, 2, self.width() - 8, line),
                             Qt.AlignmentFlag.AlignLeft, f"{self.title} ({total})")
            if not self.buckets:
                return
            top, bottom = 4 + line, self.height() - line - 4
            width = (self.width() - 8) / len(self.buckets)
            tallest = max(bucket.samples for bucket in self.buckets)
            bar = QColor(70, 130, 200)
            for position, bucket in enumerate(self.buckets):
                if not bucket.samples:
                    continue
                height = max(1.0, (bottom - top) * bucket.samples / tallest)
                painter.fillRect(QRectF(4 + position * width + 1, bottom - height,
                                        max(width - 2, 1), height), bar)
            painter.setPen(text)
            low = short_duration(self.buckets[0].low_ns) if self.buckets[0].low_ns else "0"
            painter.drawText(QRectF(4, bottom + 2, self.width() - 8, line),
                             Qt.AlignmentFlag.AlignLeft, low)
            painter.drawText(QRectF(4, bottom + 2, self.width() - 8, line),
                             Qt.AlignmentFlag.AlignRight,
                             short_duration(self.buckets[-1].high_ns))
        finally:
            painter.end()
