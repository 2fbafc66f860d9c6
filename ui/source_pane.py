"""The source pane: the running program's code, with the selected span's line highlighted."""

from __future__ import annotations

import html
import keyword
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
    QTextFormat,
)
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTextEdit, QVBoxLayout, QWidget

from loopscope.tracer.source_files import source_text

_PYTHON_RULES = (
    (re.compile(r"\b(?:" + "|".join([*keyword.kwlist, *keyword.softkwlist]) + r")\b"), "#8e44ad"),
    (re.compile(r"\b(?:True|False|None|self)\b"), "#2c7fb8"),
    (re.compile(r"\bdef\s+(\w+)|\bclass\s+(\w+)"), "#1f6fbf"),
    (re.compile(r"(?:[rbfu]{0,2})(?:\"[^\"\n]*\"|'[^'\n]*')", re.IGNORECASE), "#2e8b57"),
    (re.compile(r"#[^\n]*"), "#888888"),
)


class _PythonHighlighter(QSyntaxHighlighter):
    """Enough colour to read a scenario at a glance; not a full Python lexer."""

    def __init__(self, document: QTextDocument) -> None:
        super().__init__(document)
        self._formats = []
        for pattern, colour in _PYTHON_RULES:
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(colour))
            self._formats.append((pattern, fmt))

    def highlightBlock(self, text: str) -> None:
        for pattern, fmt in self._formats:
            for match in pattern.finditer(text):
                group = next((g for g in range(1, (pattern.groups or 0) + 1)
                              if match.group(g)), 0)
                self.setFormat(match.start(group), match.end(group) - match.start(group), fmt)


class _LineNumbers(QWidget):
    def __init__(self, editor: CodeView) -> None:
        super().__init__(editor)
        self.editor = editor

    def sizeHint(self) -> QSize:
        return QSize(self.editor.line_number_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self.editor.paint_line_numbers(event)


class CodeView(QPlainTextEdit):
    """A read-only code view with line numbers and one highlighted line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setStyleHint(QFont.StyleHint.Monospace)
        self.setFont(font)
        self._numbers = _LineNumbers(self)
        self._highlighter = _PythonHighlighter(self.document())
        self.highlighted_line = 0
        self.faint_lines: tuple[int, ...] = ()
        self.blockCountChanged.connect(self._update_margin)
        self.updateRequest.connect(self._scroll_numbers)
        self._update_margin()

    def line_number_width(self) -> int:
        digits = len(str(max(1, self.blockCount())))
        return 12 + self.fontMetrics().horizontalAdvance("9") * max(3, digits)

    def _update_margin(self) -> None:
        self.setViewportMargins(self.line_number_width(), 0, 0, 0)

    def _scroll_numbers(self, rect: QRect, dy: int) -> None:
        if dy:
            self._numbers.scroll(0, dy)
        else:
            self._numbers.update(0, rect.y(), self._numbers.width(), rect.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        area = self.contentsRect()
        self._numbers.setGeometry(QRect(area.left(), area.top(), self.line_number_width(),
                                        area.height()))

    def paint_line_numbers(self, event: QPaintEvent) -> None:
        painter = QPainter(self._numbers)
        palette = self.palette()
        painter.fillRect(event.rect(), palette.alternateBase())
        painter.setPen(palette.placeholderText().color())
        block = self.firstVisibleBlock()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        height = self.fontMetrics().height()
        width = self._numbers.width() - 6
        while block.isValid() and top <= event.rect().bottom():
            number = block.blockNumber() + 1
            if block.isVisible():
                font = painter.font()
                font.setBold(number == self.highlighted_line or number in self.faint_lines)
                painter.setFont(font)
                painter.drawText(0, top, width, height, Qt.AlignmentFlag.AlignRight, str(number))
            top += round(self.blockBoundingRect(block).height())
            block = block.next()
        painter.end()

    def highlight_line(self, line: int) -> None:
        """Marks a 1-based line and scrolls it into the middle; 0 clears the mark."""
        self.highlight_lines(line, ())
        if 1 <= line <= self.blockCount():
            self.centerCursor()

    def highlight_lines(self, line: int, faint: tuple[int, ...] = ()) -> None:
        """Marks `line` strongly (scrolled into view; 0 for none) and `faint` lines faintly:
        where the running lane is, and where the suspended ones wait."""
        self.highlighted_line = line
        self.faint_lines = tuple(sorted(n for n in set(faint) if n != line
                                        and 1 <= n <= self.blockCount()))
        selections = [self._line_selection(n, 28) for n in self.faint_lines]
        if 1 <= line <= self.blockCount():
            selections.append(self._line_selection(line, 90))
            cursor = QTextCursor(self.document().findBlockByNumber(line - 1))
            self.setTextCursor(cursor)
            if not self._comfortably_visible(line):
                self.centerCursor()
        self.setExtraSelections(selections)
        self._numbers.update()

    def _line_selection(self, line: int, alpha: int) -> QTextEdit.ExtraSelection:
        selection = QTextEdit.ExtraSelection()
        colour = self.palette().highlight().color()
        colour.setAlpha(alpha)
        selection.format.setBackground(colour)
        selection.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
        selection.cursor = QTextCursor(self.document().findBlockByNumber(line - 1))
        return selection

    def _comfortably_visible(self, line: int) -> bool:
        """The line is in view with a few lines to spare: stepping need not scroll."""
        first = self.firstVisibleBlock().blockNumber() + 1
        shown = max(self.viewport().height() // max(self.fontMetrics().height(), 1), 1)
        margin = min(3, shown // 4)
        return first + margin <= line <= first + shown - 1 - margin


class SourcePane(QWidget):
    """A caption naming the file, and the code under it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.caption = QLabel("No program")
        self.caption.setTextFormat(Qt.TextFormat.PlainText)  # names come from trace files
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.code = CodeView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.caption)
        layout.addWidget(self.code)
        self.path: str | None = None
        self._modified: int | None = None
        # the meta of the trace whose sources are shown; None for a file the user chose
        self.trace_meta: dict[str, Any] | None = None

    def follow_trace(self, meta: dict[str, Any] | None) -> None:
        """From now on show only this trace's own source files (tracer.source_files)."""
        self.trace_meta = meta
        self.path = None  # a file shown for another trace is checked again

    def show_file(self, path: str | None) -> bool:
        """Shows a file (once; showing it again keeps the scroll position). False if unreadable."""
        if path is None:
            self.path = None
            self.caption.setText("No program")
            self.code.setPlainText("")
            return False
        try:
            modified = Path(path).stat().st_mtime_ns
        except OSError:
            modified = None
        if path == self.path and modified == self._modified:
            self.clear_marks()  # a mark from an earlier run or step would be stale
            return True  # unchanged since it was shown: keep the scroll position
        source = source_text(self.trace_meta, path)
        if source.text is None:
            self.path = None
            self.caption.setText(f"{Path(path).name}: cannot show the source "
                                 f"({source.reason})")
            self.code.setPlainText("")
            return False
        text = source.text
        self.path = path
        self._modified = modified
        self.caption.setText(Path(path).name)
        self.caption.setToolTip(f"<p>{html.escape(path)}</p>")
        self.code.setPlainText(text)
        self.code.highlight_line(0)
        return True

    def clear_marks(self) -> None:
        """No line marked (the scroll position stays): nothing has run yet at this step."""
        self.code.highlight_lines(0)
        if self.path is not None:
            self.caption.setText(Path(self.path).name)

    def show_step(self, path: str, line: int, faint: tuple[int, ...] = (),
                  where: str = "") -> None:
        """Shows the running lane's line strongly and the other lanes' lines in the same file
        faintly; `where` goes in the caption (e.g. which lane runs there)."""
        if path != self.path and not Path(path).is_file():
            return
        if self.show_file(path):
            self.code.highlight_lines(line, faint)
            self.caption.setText(f"{Path(path).name}:{line}" + (f"  —  {where}" if where
                                                                 else ""))

    def show_location(self, path: str, line: int) -> None:
        """Shows a file at a line, highlighted; a file that cannot be read leaves the pane as is."""
        if path != self.path and not Path(path).is_file():
            return
        if self.show_file(path):
            self.code.highlight_line(line)
            self.caption.setText(f"{Path(path).name}:{line}")
