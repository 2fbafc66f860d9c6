"""Which file format a path names, decided in one place for the command line and the app.

A trace is saved as Chrome Trace Event JSON (Perfetto) when its path ends in .json and in the
native format (`.loopscope`, lossless) otherwise. A timeline image is a .png, .svg or .pdf
(drawn by ui.image_export, the only part that needs Qt).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the command line asks what a path is before it loads any trace code
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


# What every native trace file starts with (then " VERSION\n").
NATIVE_MAGIC = b"LOOPSCOPE-TRACE"


def is_trace_file(path: Path) -> bool:
    """Whether `path` is a regular file starting like a saved trace (by its first bytes, not
    its name; never waits on a FIFO or a device)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError):
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        return os.read(fd, len(NATIVE_MAGIC)) == NATIVE_MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


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
