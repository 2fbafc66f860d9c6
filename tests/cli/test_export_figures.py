"""`loopscope export` as a figure: the concept window unless --full, library lanes folded
unless --all-lanes, --start/--end counted from the first event, a height that follows the
lanes. Run on traces recorded once (tests/ui/golden), through the real command line."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from loopscope.tracer.native import load_native
from loopscope.ui.framing import figure_height
from tests.cli.test_cli import run_cli

pytestmark = pytest.mark.gui

GOLDEN = Path(__file__).resolve().parents[1] / "ui" / "golden"


def svg_summary(path: Path) -> str:
    root = ElementTree.parse(path).getroot()
    return next("".join(e.itertext()) for e in root.iter() if e.tag.endswith("desc"))


def svg_texts(path: Path) -> set[str]:
    return {"".join(e.itertext()).strip() for e in ElementTree.parse(path).iter()
            if e.tag.endswith("text")}


def test_export_frames_the_concept_window_unless_asked_for_the_full_run(tmp_path: Path
                                                                        ) -> None:
    trace = GOLDEN / "select-server.loopscope"
    window, full = tmp_path / "window.svg", tmp_path / "full.svg"
    assert run_cli("export", trace, "-o", window, cwd=tmp_path).returncode == 0
    assert run_cli("export", trace, "-o", full, "--full", cwd=tmp_path).returncode == 0

    assert "showing" in svg_summary(window)  # a part of the run: from the first select()
    assert "showing" not in svg_summary(full)
    # The full run's axis starts at zero, the program's first event.
    assert "0 ms" in svg_texts(full)


def test_export_folds_library_lanes_unless_asked_for_all_of_them(tmp_path: Path) -> None:
    trace = GOLDEN / "aiohttp-requests.loopscope"
    folded, every = tmp_path / "folded.svg", tmp_path / "every.svg"
    assert run_cli("export", trace, "-o", folded, cwd=tmp_path).returncode == 0
    assert run_cli("export", trace, "-o", every, "--all-lanes", cwd=tmp_path).returncode == 0

    assert "+ 14 library lanes" in svg_texts(folded)
    assert "BaseSelectorEventLoop._accept_connection2 (Task-7)" not in svg_texts(folded)
    assert "BaseSelectorEventLoop._accept_connection2 (Task-7)" in svg_texts(every)


def test_export_height_follows_the_lanes_and_start_counts_from_the_first_event(
    tmp_path: Path,
) -> None:
    few, many = tmp_path / "few.png", tmp_path / "many.png"
    pc, aio = GOLDEN / "producer-consumer.loopscope", GOLDEN / "aiohttp-requests.loopscope"
    assert run_cli("export", pc, "-o", few, cwd=tmp_path).returncode == 0
    assert run_cli("export", aio, "-o", many, "--all-lanes", cwd=tmp_path).returncode == 0
    chrome = 64 + 28 + 34
    assert QImage(str(few)).height() == figure_height(2, chrome)
    assert QImage(str(many)).height() == figure_height(24, chrome)
    assert QImage(str(few)).height() < QImage(str(many)).height()

    ranged = tmp_path / "ranged.svg"
    done = run_cli("export", pc, "-o", ranged, "--start", "0.0006", "--end", "0.0007",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert load_native(pc).first_event_ns > 1_000_000  # so 0.6 ms counts from the first event
    assert "showing 100 µs from 600 µs" in svg_summary(ranged)
