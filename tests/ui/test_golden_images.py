"""Golden images: the four headline scenarios, exported from traces recorded once and kept
here (tests/ui/golden/*.loopscope), must look as the checked-in PNGs do, and their SVGs
must carry the words a learner reads the lesson from.

The comparison allows for the small differences a font's rendering makes between machines:
a pixel counts as changed when a channel moves by more than CHANNEL_TOLERANCE, and up to
CHANGED_FRACTION of the pixels may change. A change meant to alter the pictures is
accepted by regenerating them (and looking at them):

    LOOPSCOPE_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/ui/test_golden_images.py
"""

from __future__ import annotations

import os
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage
from pytestqt.qtbot import QtBot

from loopscope.tracer.native import load_native
from loopscope.ui.image_export import render_image

pytestmark = pytest.mark.gui

GOLDEN = Path(__file__).parent / "golden"
README_IMAGES = Path(__file__).parents[2] / "assets" / "readme"
WIDTH = 1200
CHANNEL_TOLERANCE = 48
CHANGED_FRACTION = 0.01
UPDATE = os.environ.get("LOOPSCOPE_UPDATE_GOLDEN") == "1"

# The words each lesson is read from, as they must appear in the SVG's text.
LESSON_WORDS = {
    # the values handed over on the hand-off arrows
    "producer-consumer": ["send(1)", "send(2)", "'200 OK'", "produce", "consumer"],
    # each socket's lane says its fd; the polls say which fds came back
    "select-server": ["fd 3", "fd 9", "ready: fd 3, 4, 5, 6", "fd 3, 9", "fd 11 writable"],
    # four requests, four handler lanes sleeping at once, the plumbing folded
    "aiohttp-requests": ["GET /hello/alice", "GET /hello/carol", "sleeping 0.5 s",
                         "+ 14 library lanes"],
    # bar sleeps 1 s, foo 2 s, both through the hub
    "gevent-switching": ["sleeping 1 s", "sleeping 2 s", "gevent hub", "bar", "foo"],
}


def pixels(path: Path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)
    data = np.frombuffer(image.constBits(), dtype=np.uint8)  # type: ignore[call-overload]
    return data.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4].copy()


@pytest.mark.parametrize("scenario", sorted(LESSON_WORDS))
def test_headline_scenarios_export_as_their_golden_images(qtbot: QtBot, tmp_path: Path,
                                                          scenario: str) -> None:
    trace = load_native(GOLDEN / f"{scenario}.loopscope")
    out = tmp_path / f"{scenario}.png"
    render_image(trace, out, width=WIDTH)
    expected = GOLDEN / f"{scenario}.png"
    if UPDATE:
        shutil.copyfile(out, expected)
        render_image(trace, README_IMAGES / f"{scenario}.png", width=1600)
    got, want = pixels(out), pixels(expected)
    assert got.shape == want.shape, "the image's size changed"
    changed = (np.abs(got.astype(np.int16) - want.astype(np.int16)) > CHANNEL_TOLERANCE)
    fraction = changed.reshape(got.shape[0], -1, 4).any(axis=2).mean()
    assert fraction <= CHANGED_FRACTION, (
        f"{fraction:.2%} of {scenario}'s pixels changed; look at {out} against {expected}")


@pytest.mark.parametrize("scenario", sorted(LESSON_WORDS))
def test_headline_svgs_carry_the_lessons_words_as_text(qtbot: QtBot, tmp_path: Path,
                                                       scenario: str) -> None:
    trace = load_native(GOLDEN / f"{scenario}.loopscope")
    out = tmp_path / f"{scenario}.svg"
    render_image(trace, out, width=WIDTH)
    texts = {"".join(element.itertext()).strip()
             for element in ElementTree.parse(out).iter() if element.tag.endswith("text")}
    missing = [word for word in LESSON_WORDS[scenario] if word not in texts]
    assert not missing, f"{scenario}: not in the SVG's text: {missing}"
