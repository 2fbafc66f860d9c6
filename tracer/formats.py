"""Which file format a path names, decided in one place for the command line and the app.

A trace is saved as Chrome Trace Event JSON (Perfetto) when its path ends in .json and in the
native format (`.loopscope`, lossless) otherwise. A timeline image is a .png, .svg or .pdf
(drawn by ui.image_export, the only part that needs Qt).
"""

from __future__ import annotations

import os
from pathlib import Path

from loopscope.tracer.trace import Trace

CHROME_JSON_SUFFIX = ".json"
NATIVE_SUFFIX = ".loopscope"
# suffix -> what a file dialog calls it
IMAGE_FORMATS: dict[str, str] = {
    ".png": "PNG image",
    ".svg": "SVG image",
    ".pdf": "PDF document",
}


def is_chrome_json(path: str | os.PathLike[str]) -> bool:
    """Whether a trace saved to `path` is written as Chrome JSON (else: native)."""
    return Path(path).suffix.lower() == CHROME_JSON_SUFFIX


def image_suffix(path: str | os.PathLike[str]) -> str | None:
    """The image format a path names (".png", ".svg", ".pdf"), or None."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in IMAGE_FORMATS else None


def image_suffixes_text() -> str:
    """".png, .svg or .pdf", for messages."""
    *first, last = IMAGE_FORMATS
    return f"{', '.join(first)} or {last}"


def save_trace(trace: Trace, path: str | os.PathLike[str]) -> None:
    """Saves the trace in the format its path names. OSError when it cannot be written."""
    if is_chrome_json(path):
        from loopscope.tracer.export_chrome import save_chrome_json

        save_chrome_json(trace, Path(path))
    else:
        from loopscope.tracer.native import save_native

        save_native(trace, Path(path))
