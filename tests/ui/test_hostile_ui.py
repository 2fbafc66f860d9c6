"""Strings from a trace are plain text in the app, and its source pane shows only the
trace's own unchanged source files: a crafted trace can neither render markup (an <img> of
/dev/zero or of a FIFO would eat memory or freeze the window) nor display other files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import qasync
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.native import save_native
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.source_files import record_identities
from loopscope.tracer.trace import Trace
from loopscope.ui.main_window import MainWindow
from loopscope.ui.settings import AppSettings

pytestmark = pytest.mark.gui


@pytest.fixture
def window(qtbot, qapp: QApplication, tmp_path: Path) -> Iterator[MainWindow]:
    qapp.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(qapp)
    main = MainWindow(AppSettings.at(tmp_path / "settings.ini"))
    qtbot.addWidget(main)
    main.show()
    yield main
    main.live.kill_now()
    loop.close()


def _crafted(tmp_path: Path, text: str, source: str) -> Path:
    trace = Trace()
    rec = Recorder(trace, clock=FakeClock(tick_ns=1000))
    lane = rec.spawn(text, LaneKind.MAIN)
    rec.state(lane, Code.RUNNING, source=rec.source(source, 1, text))
    rec.end(lane, error=RuntimeError(text))
    rec.close()
    trace.meta.update(target=text if source == "" else source, kind="script", status=text,
                      model=text, error=text, python=text)
    path = tmp_path / "crafted.loopscope"
    save_native(trace, path)
    return path


def test_markup_in_a_trace_is_shown_as_the_text_it_is(window: MainWindow, tmp_path: Path
                                                      ) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    markup = f'<img src="{fifo}"><b>spoofed</b>'
    assert window.open_trace(str(_crafted(tmp_path, markup, "")))
    window.grab()  # paints every label: an <img> of a FIFO would hang right here
    labels = [label for label in window.findChildren(QLabel) if markup in label.text()]
    assert window.target_label in labels and window.state_label in labels
    for label in labels:
        assert label.textFormat() == Qt.TextFormat.PlainText, label.objectName()


@pytest.mark.parametrize("source", ["/etc/passwd", "/dev/zero", "FIFO"])
def test_a_crafted_source_path_is_not_shown(window: MainWindow, tmp_path: Path,
                                            source: str) -> None:
    if source == "FIFO":
        source = str(tmp_path / "fifo.py")
        os.mkfifo(source)
    assert window.open_trace(str(_crafted(tmp_path, "main", source)))
    window.stepping.step()
    window.grab()
    assert window.source.code.toPlainText() == ""
    caption = window.source.caption.text()
    # a regular file the trace does not own is refused by name; anything else is not a file
    assert ("cannot show the source (not recorded with this trace)" in caption
            if source == "/etc/passwd" else caption == "No program")


def test_the_trace_s_own_source_is_shown_until_it_changes(window: MainWindow,
                                                          tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text("print('hello')\n")
    path = _crafted(tmp_path, "main", str(program))
    from loopscope.tracer.native import load_native

    trace = load_native(path)
    record_identities(trace.meta, [str(program)])
    save_native(trace, path)
    assert window.open_trace(str(path))
    assert window.source.code.toPlainText() == "print('hello')\n"
    program.write_text("print('swapped')\n")
    assert window.open_trace(str(path))
    assert window.source.code.toPlainText() == ""
    assert "changed since the trace was recorded" in window.source.caption.text()
