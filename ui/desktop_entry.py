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
from collections.abc import Sequence
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
APP_ID = "loopscope"


def assets() -> Traversable:
    return resources.files("loopscope.assets")


def icon_png(size: int) -> Traversable:
    return assets() / "icons" / f"loopscope-{size}.png"


def data_home(env: dict[str, str] | None = None) -> Path:
    environ = os.environ if env is None else env
    configured = environ.get("XDG_DATA_HOME", "")
    if configured and os.path.isabs(configured):
        return Path(configured)
    return Path(environ.get("HOME", str(Path.home()))) / ".local" / "share"


def loopscope_command() -> list[str]:
    """This installation's `loopscope` command as arguments: the script beside the interpreter,
    else the one on PATH, else the interpreter running the package."""
    beside = Path(sys.executable).with_name("loopscope")
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("loopscope")
    return [found] if found else [sys.executable, "-m", "loopscope"]


def desktop_entry_text(command: str | Sequence[str]) -> str:
    """The shipped entry with `Exec=` naming `command` (one path, or arguments), each
    argument quoted where it holds a space, as the desktop entry specification asks."""
    arguments = [command] if isinstance(command, str) else list(command)
    exec_line = " ".join(f'"{arg}"' if " " in arg else arg for arg in arguments)
    text = (assets() / "loopscope.desktop").read_text(encoding="utf-8")
    return text.replace("Exec=loopscope\n", f"Exec={exec_line}\n")


def install_desktop_entry(target: Path | None = None,
                          command: str | Sequence[str] | None = None) -> list[Path]:
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
