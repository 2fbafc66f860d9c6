"""The app's icon and Linux desktop entry: where they ship and `loopscope install-desktop`.

The icon (SVG, and PNGs rendered from it) and the .desktop entry live in the repository's
assets/ folder, installed as the package data `loopscope.assets`. Installing the entry copies
it, with `Exec=` naming this installation's `loopscope` command, into the user's XDG data
folder (applications/ and icons/hicolor/), so the app appears in the desktop's menus.
"""

from __future__ import annotations

import os
import shutil
import sys
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
APP_ID = "loopscope"


def assets() -> Traversable:
    return resources.files("loopscope.assets")


def icon_png(size: int) -> Traversable:
    return assets() / "icons" / f"loopscope-{size}.png"


def icon_files() -> list[tuple[Traversable, int | None]]:
    """Every icon file with its size in pixels, the scalable SVG first (size None)."""
    return [(assets() / "loopscope.svg", None), *((icon_png(size), size) for size in ICON_SIZES)]


def data_home(env: dict[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    configured = environ.get("XDG_DATA_HOME", "")
    if configured and os.path.isabs(configured):
        return Path(configured)
    return Path(environ.get("HOME", str(Path.home()))) / ".local" / "share"


def loopscope_command() -> str:
    """This installation's `loopscope` script: beside the interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("loopscope")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("loopscope") or f"{sys.executable} -m loopscope"


def desktop_entry_text(command: str) -> str:
    text = (assets() / "loopscope.desktop").read_text(encoding="utf-8")
    quoted = f'"{command}"' if " " in command and not command.endswith("-m loopscope") else command
    return text.replace("Exec=loopscope\n", f"Exec={quoted}\n")


def install_desktop_entry(target: Path | None = None, command: str | None = None) -> list[Path]:
    """Writes the desktop entry and the icons under `target` (the XDG data folder); returns
    the files written."""
    root = data_home() if target is None else target
    written: list[Path] = []

    def write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, path)
        written.append(path)

    entry = desktop_entry_text(command or loopscope_command())
    write(root / "applications" / f"{APP_ID}.desktop", entry.encode("utf-8"))
    hicolor = root / "icons" / "hicolor"
    write(hicolor / "scalable" / "apps" / f"{APP_ID}.svg",
          (assets() / "loopscope.svg").read_bytes())
    for size in ICON_SIZES:
        write(hicolor / f"{size}x{size}" / "apps" / f"{APP_ID}.png", icon_png(size).read_bytes())
    return written
