"""The real app process on a real X server (Xvfb): it opens its window, paints it, and quits
cleanly on Ctrl+Q.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

pytestmark = [
    pytest.mark.gui,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed"),
    pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool is not installed"),
]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCREEN = (1280, 800)


@pytest.fixture
def display() -> Iterator[str]:
    """A private X server on a display number the server picks itself (-displayfd)."""
    read_end, write_end = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{SCREEN[0]}x{SCREEN[1]}x24",
         "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end) as announced:
            number = announced.readline().strip()
        if not number:
            pytest.fail("Xvfb did not announce a display")
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _xdotool(display: str, *args: str, timeout: float = 20) -> str:
    result = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": display},
                            capture_output=True, text=True, timeout=timeout, check=True)
    return result.stdout


def _screenshot(display: str, out: Path) -> QImage:
    env = {**os.environ, "DISPLAY": display}
    if shutil.which("import"):
        subprocess.run(["import", "-display", display, "-window", "root", str(out)], env=env,
                       check=True, timeout=30, capture_output=True)
    else:  # no ImageMagick: let Qt grab the X screen in a helper process
        grab = ("from PySide6.QtGui import QGuiApplication; import sys; "
                "app = QGuiApplication(['grab']); "
                "sys.exit(0 if app.primaryScreen().grabWindow(0).save(sys.argv[1]) else 1)")
        subprocess.run([sys.executable, "-c", grab, str(out)],
                       env={**env, "QT_QPA_PLATFORM": "xcb"}, check=True, timeout=30)
    image = QImage(str(out))
    assert not image.isNull(), f"cannot read the screenshot {out}"
    return image


def _distinct_colours(image: QImage, step: int = 7) -> int:
    return len({image.pixel(x, y) for x in range(0, image.width(), step)
                for y in range(0, image.height(), step)})


def test_the_app_opens_paints_and_quits_on_an_x_server(
    display: str, tmp_path: Path, qapp
) -> None:
    env = {
        **os.environ,
        "DISPLAY": display,
        "QT_QPA_PLATFORM": "xcb",
        "LOOPSCOPE_SETTINGS": str(tmp_path / "settings.ini"),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    app = subprocess.Popen([sys.executable, "-m", "loopscope.ui.cli"], env=env, cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        try:
            window_ids = _xdotool(display, "search", "--sync", "--onlyvisible", "--name",
                                  "Loopscope").split()
        except subprocess.TimeoutExpired:
            app.kill()
            _, stderr = app.communicate()
            pytest.fail(f"no Loopscope window appeared; the app said: {stderr.strip()}")
        assert window_ids, "the app showed no window named Loopscope"

        # The window maps before it paints; look until the screen shows a full UI (text,
        # icons, panes), which an empty or black screen never does.
        colours = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            shot = _screenshot(display, tmp_path / "screen.png")
            colours = _distinct_colours(shot)
            if colours > 20:
                break
            time.sleep(0.3)
        assert colours > 20, f"the screen looks blank ({colours} colours)"
        assert app.poll() is None, f"the app died: {app.stderr.read() if app.stderr else ''}"

        _xdotool(display, "windowfocus", "--sync", window_ids[0])
        _xdotool(display, "key", "--clearmodifiers", "ctrl+q")
        try:
            code = app.wait(timeout=15)
        except subprocess.TimeoutExpired:
            app.send_signal(signal.SIGTERM)
            pytest.fail("Ctrl+Q did not close the app")
        stderr = app.stderr.read() if app.stderr else ""
        assert code == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
