"""Starts the desktop app: a QApplication on a qasync loop with the main window.

Only what the first paint needs is imported before the window shows; the runner, the trace
formats and the exporters load when first used.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Mapping
from importlib import resources
from typing import Any

APP_NAME = "Loopscope"


def display_problem(
    env: Mapping[str, str] = os.environ, platform: str = sys.platform
) -> str | None:
    """Why no window can be shown here, or None. Asked before Qt starts because Qt, finding
    no display, aborts the whole process (a core dump, no exception to catch)."""
    if not platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return ("no display to open the app on (DISPLAY and WAYLAND_DISPLAY are unset); "
            "the trace, narrate and export commands work without one")


def launch(trace_path: str | None = None) -> int:
    """Runs the app until its window closes; opens `trace_path` first if given. Returns 0."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else APP_NAME])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setStyle("Fusion")  # the same look on every platform, and it follows our palettes
    app.setWindowIcon(app_icon())
    app.setDesktopFileName("loopscope")  # the taskbar matches the window to loopscope.desktop
    # The loop ends when our window has closed (after stopping any child), not when Qt thinks
    # the last window went away.
    app.setQuitOnLastWindowClosed(False)

    from loopscope.ui.main_window import MainWindow

    window = MainWindow()
    window.show()
    # Everything imported so far lives as long as the app: move it out of the collector's
    # reach, so a full collection while a run streams in does not stall the GUI for ~15 ms.
    gc.collect()
    gc.freeze()

    async def main() -> None:
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        # Python only runs signal handlers when it gets control; Qt's loop is in C++.
        wake_python = QTimer()
        wake_python.start(200)
        wake_python.timeout.connect(lambda: None)
        if trace_path is not None:
            window.load_trace(trace_path)  # in the background, the window painted meanwhile
        await closed.wait()
        wake_python.stop()

    previous = _close_on_signals(window.close)
    try:
        from loopscope.ui.qt_loop import QtEventLoop

        _run_on_qt_loop(main(), QtEventLoop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def app_icon() -> Any:
    """The app's icon from the shipped assets: each PNG size rendered from the SVG (an icon
    built from the SVG itself would report no sizes to the window system's taskbar)."""
    from PySide6.QtCore import QSize
    from PySide6.QtGui import QIcon

    from loopscope.ui.desktop_entry import ICON_SIZES, icon_png

    icon = QIcon()
    for size in ICON_SIZES:
        with resources.as_file(icon_png(size)) as path:
            icon.addFile(str(path), QSize(size, size))
    return icon


def _close_on_signals(close: Callable[[], object]) -> dict[int, Any]:
    """Ctrl+C or a SIGTERM closes the window as Quit would: the child is stopped first."""

    def on_signal(signum: int, frame: object) -> None:
        close()

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, on_signal)
    return previous


def _run_on_qt_loop(coroutine: Coroutine[Any, Any, None], loop_factory: Any) -> None:
    if sys.version_info >= (3, 12):
        asyncio.run(coroutine, loop_factory=loop_factory)
    else:  # asyncio.run has no loop_factory before 3.12
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(coroutine)
