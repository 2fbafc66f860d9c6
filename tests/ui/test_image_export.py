"""Image export: PNG, SVG and PDF through the same layout and paint as the screen, with the
screen's red corners on stalled spans."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
import zlib
from pathlib import Path

import pytest
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from loopscope.tracer.events import Code, FakeClock, LaneKind
from loopscope.tracer.query import span_rows
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import Trace
from loopscope.ui.image_export import export_viewport, render_image
from loopscope.ui.layout import layout, run_extent, state_band
from loopscope.ui.paint import label_width_for
from loopscope.ui.problem_marks import CORNER_COLOR, corner_triangles
from loopscope.ui.theme import DARK, LIGHT
from tests.conftest import threads_only_trace
from tests.ui.conftest import MS

pytestmark = pytest.mark.gui


def test_png_shows_each_span_in_its_state_colour_where_its_times_say(
    qtbot: QtBot, sample_trace: Trace, tmp_path: Path
) -> None:
    out = tmp_path / "timeline.png"
    render_image(sample_trace, out, width=1200, height=600)

    image = QImage(str(out))
    assert (image.width(), image.height()) == (1200, 600)
    viewport = export_viewport(sample_trace, width=1200, height=600,
                               label_width=label_width_for(sample_trace, LIGHT, 1200))
    rows = {row.lane: row for row in layout(sample_trace, derive_spans(sample_trace),
                                            viewport).lanes}
    plot_width = 1200 - viewport.label_width
    checked = 0
    for span in span_rows(sample_trace, derive_spans(sample_trace)):
        # The middle of the span, computed from its times and the viewport, not the layout.
        middle = (span.start + span.end) / 2 - viewport.start_ns
        x = viewport.label_width + middle / (viewport.end_ns - viewport.start_ns) * plot_width
        # Near the band's top: above the words a wide span carries, centred in it.
        y = state_band(rows[span.lane], viewport)[0] + 2
        # Arrows and markers sit on some spans' edges; sample a few pixels either side too.
        colours = {image.pixelColor(int(x) + dx, int(y)).name() for dx in (-3, 0, 3)}
        code = Code[span.state.upper().replace("-", "_")]
        assert LIGHT.states[code] in colours, (span, colours)
        checked += 1
    assert checked == 15
    # The title sits in the header, on the background.
    assert image.pixelColor(5, 5) == QColor(LIGHT.background)


def test_dark_png_uses_the_dark_palette(qtbot: QtBot, sample_trace: Trace,
                                        tmp_path: Path) -> None:
    out = tmp_path / "dark.png"
    render_image(sample_trace, out, width=800, height=400, theme="dark")
    image = QImage(str(out))
    assert image.pixelColor(3, 3) == QColor(DARK.background)
    colours = {image.pixelColor(x, y).name() for x in range(0, 800, 4) for y in range(0, 400, 4)}
    assert {DARK.states[Code.RUNNING], DARK.states[Code.IO_WAIT]} <= colours
    assert LIGHT.states[Code.RUNNING] not in colours


def test_a_time_range_shows_only_that_range(qtbot: QtBot, sample_trace: Trace,
                                            tmp_path: Path) -> None:
    out = tmp_path / "range.png"
    render_image(sample_trace, out, width=1000, height=500, start_ns=20 * MS, end_ns=60 * MS)
    image = QImage(str(out))
    colours = {image.pixelColor(x, y).name() for x in range(200, 1000, 3)
               for y in range(0, 500, 3)}
    # 20-60 ms: fetch waits on I/O, join is blocked, the loop polls; nobody runs.
    assert {LIGHT.states[Code.IO_WAIT], LIGHT.states[Code.BLOCKED],
            LIGHT.states[Code.POLL]} <= colours
    assert LIGHT.states[Code.RUNNING] not in colours


def test_svg_is_xml_with_the_lane_names_and_title(qtbot: QtBot, sample_trace: Trace,
                                                  tmp_path: Path) -> None:
    out = tmp_path / "timeline.svg"
    render_image(sample_trace, out)
    root = ElementTree.parse(out).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(t.strip() for t in root.itertext())
    for name in ("event loop", "fetch", "nap", "join", "sample-scenario", "running", "io-wait"):
        assert name in text
    assert LIGHT.states[Code.IO_WAIT] in out.read_text()


def test_the_header_says_threads_for_a_run_of_threads_and_the_model_otherwise(
        sample_trace: Trace) -> None:
    trace = threads_only_trace()
    def subtitle(trace: Trace) -> str:
        return export_viewport(trace, width=800, height=400).subtitle

    assert subtitle(trace).startswith("threads  ·  2 lanes")
    assert subtitle(sample_trace).startswith(f"model {sample_trace.meta['model']}  ·  ")


def test_pdf_is_a_pdf(qtbot: QtBot, sample_trace: Trace, tmp_path: Path) -> None:
    out = tmp_path / "timeline.pdf"
    render_image(sample_trace, out, title="A talk about loops")
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(data) > 2000


def test_bad_names_and_paths_are_refused_clearly(qtbot: QtBot, sample_trace: Trace,
                                                 tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"use a file ending in \.png, \.svg, \.pdf"):
        render_image(sample_trace, tmp_path / "timeline.gif")
    with pytest.raises(ValueError, match="no extension"):
        render_image(sample_trace, tmp_path / "timeline")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        render_image(sample_trace, tmp_path / "missing" / "timeline.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory"):
        render_image(sample_trace, tmp_path / "folder.png")
    with pytest.raises(ValueError, match="unknown theme"):
        render_image(sample_trace, tmp_path / "t.png", theme="neon")
    with pytest.raises(ValueError, match="time range is empty"):
        render_image(sample_trace, tmp_path / "t.png", start_ns=50 * MS, end_ns=10 * MS)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OSError, match="cannot write"):
            render_image(sample_trace, locked / "t.png")
    assert [p.name for p in tmp_path.glob("*.png")] == ["folder.png"]


def test_the_cli_hook_works_headless_without_an_application(tmp_path: Path) -> None:
    """In a fresh interpreter with no display and no Qt application, as `loopscope export`."""
    out = tmp_path / "cli.png"
    code = (
        "from tests.ui.conftest import build_sample_trace\n"
        "from loopscope.ui.image_export import export_target_image\n"
        f"export_target_image(build_sample_trace(), {str(out)!r}, width=640, height=360,\n"
        "                    theme='dark', start_ns=None, end_ns=None)\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (640, 360)
    assert image.pixelColor(2, 2) == QColor(DARK.background)


def test_a_time_window_that_misses_the_run_is_refused(sample_trace: Trace) -> None:
    last = sample_trace.duration_ns
    with pytest.raises(ValueError, match="misses the run"):
        export_viewport(sample_trace, width=800, height=400, start_ns=last + 1,
                        end_ns=last + 10 * MS)


def test_an_instantaneous_run_exports_as_one_millisecond(tmp_path: Path) -> None:
    """Every event at the same instant (a program that crashed at once): the default window
    and the app's (its view of such a run) both hold that instant."""
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock())
    task = recorder.spawn("main", LaneKind.TASK)
    recorder.state(task, Code.RUNNING)
    recorder.end(task, error="boom")
    recorder.close()
    assert run_extent(trace) == (0.0, 0.0)
    assert export_viewport(trace, width=800, height=400).end_ns == 1 * MS
    out = tmp_path / "instant.png"
    render_image(trace, out, width=800, height=400, start_ns=0.0, end_ns=1.0 * MS)
    assert QImage(str(out)).size().toTuple() == (800, 400)


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_a_failed_write_leaves_no_new_file_and_keeps_an_old_one(
    qtbot: QtBot, sample_trace: Trace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    suffix: str
) -> None:
    def disk_full(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("loopscope.ui.image_export.paint", disk_full)
    new = tmp_path / f"new{suffix}"
    with pytest.raises(OSError, match="No space left"):
        render_image(sample_trace, new)
    assert not new.exists()
    old = tmp_path / f"old{suffix}"
    old.write_bytes(b"an earlier export")
    with pytest.raises(OSError):
        render_image(sample_trace, old)
    assert old.exists()


# -- red corners on stalled spans -------------------------------------------------------------


def _stalled_export(tmp_path: Path, suffix: str, **options: object
                    ) -> tuple[Path, list[tuple[tuple[float, float], ...]]]:
    """The 300 ms step of tests.tracer.test_report's stalled loop exported whole, and the
    corner triangles the layout says its stalled span gets (one)."""
    from tests.tracer.test_report import _stalled_loop

    trace = _stalled_loop()
    out = tmp_path / f"stalled{suffix}"
    render_image(trace, out, width=1200, height=600, full=True, **options)  # type: ignore[arg-type]
    spans = derive_spans(trace)
    viewport = export_viewport(trace, width=1200, height=600, full=True,
                               label_width=label_width_for(trace, LIGHT, 1200))
    primitives = layout(trace, spans, viewport)
    stalled = [i for i in range(len(spans))
               if spans.state[i] == Code.RUNNING and spans.end[i] - spans.start[i] == 300 * MS]
    return out, corner_triangles(primitives, stalled)


def test_a_png_marks_the_stalled_span_with_a_red_corner_and_nothing_else(
        qtbot: QtBot, tmp_path: Path) -> None:
    out, (triangle,) = _stalled_export(tmp_path, ".png")
    image = QImage(str(out))
    red = QColor(CORNER_COLOR)
    (left, top), (right, _), (_, bottom) = triangle
    # inside the triangle, near its right angle at the span's top right: red
    assert image.pixelColor(int(right - 2), int(top + 2)) == red
    # the span's other side, and below the triangle's slope: the span's own colour
    assert image.pixelColor(int(left - 20), int(top + 2)) != red
    assert image.pixelColor(int(left + 1), int(bottom - 1)) != red
    # no other pixel of the picture is the corner's red
    reds = sum(image.pixelColor(x, y) == red for x in range(0, 1200, 3) for y in range(0, 600, 3))
    assert 0 < reds <= 20


def test_an_export_given_no_findings_draws_no_corner(qtbot: QtBot, tmp_path: Path) -> None:
    out, (triangle,) = _stalled_export(tmp_path, ".png", findings=[])
    (_, top), (right, _), _ = triangle
    assert QImage(str(out)).pixelColor(int(right - 2), int(top + 2)) != QColor(CORNER_COLOR)


def test_svg_and_pdf_draw_the_corner_where_the_layout_puts_it(qtbot: QtBot,
                                                               tmp_path: Path) -> None:
    svg, (triangle,) = _stalled_export(tmp_path, ".svg")
    polygons = [element.get("points") for element in ElementTree.parse(svg).getroot().iter()
                if element.tag.endswith("polygon")
                and (element.get("fill") or _group_fill(svg, element)) == CORNER_COLOR]
    expected = [(round(x, 1), round(y, 1)) for x, y in triangle]
    assert [[(round(float(x), 1), round(float(y), 1)) for x, y in
             (point.split(",") for point in (points or "").split())]
            for points in polygons] == [expected]

    pdf, (triangle,) = _stalled_export(tmp_path, ".pdf")
    content = b"".join(_pdf_streams(pdf.read_bytes()))
    red = QColor(CORNER_COLOR)
    fill = f"{red.redF():.6f} {red.greenF():.6f} {red.blueF():.6f}".encode()
    # the fill colour, then the path: moved to the first point, lines to the other two
    (x0, y0), (x1, y1), (x2, y2) = triangle
    path = re.compile(rb"%s\d* %s\d* %s\d* scn\n.*?%s\S* %s\S* m\n%s\S* %s\S* l\n%s\S* %s\S* l"
                      % (*(re.escape(part) for part in fill.split()),
                         *(_pdf_number(v) for v in (x0, y0, x1, y1, x2, y2))), re.DOTALL)
    assert len(path.findall(content)) == 1


def _group_fill(svg: Path, polygon: ElementTree.Element) -> str | None:
    """The fill of the <g> a polygon is in (Qt's SVG puts the brush on the group)."""
    root = ElementTree.parse(svg).getroot()
    for group in root.iter():
        if any(child.get("points") == polygon.get("points") for child in group):
            return group.get("fill")
    return None


def _pdf_streams(data: bytes) -> list[bytes]:
    streams = []
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.DOTALL):
        try:
            streams.append(zlib.decompress(match.group(1)))
        except zlib.error:
            continue  # not a compressed content stream
    return streams


def _pdf_number(value: float) -> bytes:
    """The integer part of a coordinate as the PDF writes it (its decimals may differ)."""
    return str(int(value)).encode()
