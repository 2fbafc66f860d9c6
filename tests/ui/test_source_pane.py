"""The source pane shows the program being traced, and notices when it changed on disk."""

from __future__ import annotations

import os
from pathlib import Path

from pytestqt.qtbot import QtBot

from loopscope.ui.source_pane import SourcePane


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


def test_showing_the_same_file_for_a_new_run_drops_the_old_runs_mark(
    qtbot: QtBot, tmp_path: Path
) -> None:
    script = tmp_path / "prog.py"
    script.write_text("a = 1\nb = 2\nc = 3\n", encoding="utf-8")
    pane = SourcePane()
    qtbot.addWidget(pane)
    pane.show_step(str(script), 3, (1,), "main ran here last")
    assert (pane.code.highlighted_line, pane.code.faint_lines) == (3, (1,))
    assert pane.caption.text() == "prog.py:3  —  main ran here last"
    assert pane.show_file(str(script))  # the same program, run again
    assert (pane.code.highlighted_line, pane.code.faint_lines) == (0, ())
    assert pane.caption.text() == "prog.py"
