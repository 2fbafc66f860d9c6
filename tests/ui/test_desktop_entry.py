"""The shipped icon and desktop entry, and `loopscope install-desktop` writing them."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from loopscope.ui.app import app_icon
from loopscope.ui.cli import EXIT_ERROR
from loopscope.ui.desktop_entry import ICON_SIZES, desktop_entry_text, install_desktop_entry


def test_install_desktop_writes_an_entry_that_runs_this_installation(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "loopscope", "install-desktop", "--prefix", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    entry = tmp_path / "applications" / "loopscope.desktop"
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(entry, encoding="utf-8")
    section = parser["Desktop Entry"]
    assert section["Type"] == "Application" and section["Name"] == "Loopscope"
    assert section["Icon"] == "loopscope"
    command = section["Exec"].split()
    assert os.access(command[0], os.X_OK), command
    shown = subprocess.run([*command, "list"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "producer-consumer" in shown.stdout
    for size in ICON_SIZES:
        icon = QImage(str(tmp_path / f"icons/hicolor/{size}x{size}/apps/loopscope.png"))
        assert (icon.width(), icon.height()) == (size, size)
    svg = tmp_path / "icons/hicolor/scalable/apps/loopscope.svg"
    assert svg.read_text(encoding="utf-8").lstrip().startswith("<?xml")
    assert str(entry) in done.stdout


def test_an_unwritable_prefix_is_one_error_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    done = subprocess.run(
        [sys.executable, "-m", "loopscope", "install-desktop", "--prefix", str(blocker)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_ERROR
    assert done.stderr.startswith("loopscope: error: cannot install the desktop entry")
    assert len(done.stderr.splitlines()) == 1


def test_the_entry_quotes_a_command_with_spaces() -> None:
    assert "Exec=\"/opt/my tools/loopscope\"\n" in desktop_entry_text("/opt/my tools/loopscope")


def test_installing_twice_replaces_the_files(tmp_path: Path) -> None:
    first = install_desktop_entry(tmp_path, command="/bin/true")
    second = install_desktop_entry(tmp_path, command="/bin/false")
    assert first == second
    assert "Exec=/bin/false\n" in first[0].read_text(encoding="utf-8")
    assert not [p for p in tmp_path.rglob(".*.tmp")]


@pytest.mark.gui
def test_the_app_icon_has_every_size(qapp: object) -> None:
    icon = app_icon()
    sizes = {(s.width(), s.height()) for s in icon.availableSizes()}
    assert {(size, size) for size in ICON_SIZES} <= sizes
