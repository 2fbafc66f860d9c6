"""What the app remembers between runs: recent files, window geometry, splitter layout, theme.

Backed by QSettings. `LOOPSCOPE_SETTINGS=/path/file.ini` (or `AppSettings.at(path)`) points it
at one INI file, which tests and benchmarks use so they never touch the user's settings.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

MAX_RECENT = 10
SETTINGS_ENV = "LOOPSCOPE_SETTINGS"
THEMES = ("light", "dark")


class AppSettings:
    def __init__(self, store: QSettings) -> None:
        self.store = store

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> AppSettings:
        return cls(QSettings(str(path), QSettings.Format.IniFormat))

    @classmethod
    def default(cls) -> AppSettings:
        override = os.environ.get(SETTINGS_ENV)
        if override:
            return cls.at(override)
        return cls(QSettings("Loopscope", "Loopscope"))

    # -- recent files -------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        value = self.store.value("recent_files", [])
        if isinstance(value, str):  # QSettings hands back a one-element list as a plain string
            value = [value]
        return [str(v) for v in value if v] if isinstance(value, list) else []

    def add_recent_file(self, path: str | os.PathLike[str]) -> list[str]:
        absolute = str(Path(path).resolve())
        recent = [absolute, *(p for p in self.recent_files() if p != absolute)][:MAX_RECENT]
        self.store.setValue("recent_files", recent)
        self.store.sync()
        return recent

    def remove_recent_file(self, path: str) -> None:
        self.store.setValue("recent_files", [p for p in self.recent_files() if p != path])
        self.store.sync()

    def clear_recent_files(self) -> None:
        self.store.setValue("recent_files", [])
        self.store.sync()

    # -- window layout ------------------------------------------------------------------

    def window_state(self, name: str) -> QByteArray | None:
        """A saved geometry or splitter state (QByteArray), or None when there is none."""
        value = self.store.value(f"window/{name}")
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_window_state(self, name: str, state: QByteArray) -> None:
        self.store.setValue(f"window/{name}", state)

    # -- preferences --------------------------------------------------------------------

    @property
    def theme(self) -> str:
        value = str(self.store.value("view/theme", "light"))
        return value if value in THEMES else "light"

    @theme.setter
    def theme(self, name: str) -> None:
        self.store.setValue("view/theme", name if name in THEMES else "light")

    @property
    def last_directory(self) -> str:
        return str(self.store.value("files/last_directory", str(Path.home())))

    @last_directory.setter
    def last_directory(self, directory: str) -> None:
        self.store.setValue("files/last_directory", directory)

    def sync(self) -> None:
        self.store.sync()
