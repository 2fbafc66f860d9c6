"""The desktop app and everything that needs Qt: PySide6 on qasync."""
