"""The source pane shows the program being traced, and notices when it changed on disk."""

from __future__ import annotations

import os
from pathlib import Path

from pytestqt.qtbot import QtBot

from ui.source_pane import SourcePane


def test_showing_an_edited_file_again_shows_the_new_text(qtbot: QtBot, tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text("print('first version')\n", encoding="utf-8")
    pane = SourcePane()
    qtbot.addWidget(pane)
    assert pane.show_file(str(script))
    assert "first version" in pane.code.toPlainText()

    script.write_text("print('second version')\n", encoding="utf-8")
    later = script.stat().st_mtime_ns + 1_000_000_000
    os.utime(script, ns=(later, later))
    assert pane.show_file(str(script))
    assert "second version" in pane.code.toPlainText()


def test_an_unreadable_file_says_so_in_the_caption(qtbot: QtBot, tmp_path: Path) -> None:
    pane = SourcePane()
    qtbot.addWidget(pane)
    assert not pane.show_file(str(tmp_path / "missing.py"))
    assert "cannot show the source" in pane.caption.text()
