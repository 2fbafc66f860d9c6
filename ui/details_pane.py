"""The details pane: what the selected span or lane is, and where the lane's time went.

The HTML is built by plain functions (no widgets involved) so tests can read it directly.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QTextBrowser, QWidget

from loopscope.tracer.events import NO_LANE, STATE_NAMES, Code
from loopscope.tracer.held_frame import HeldView
from loopscope.tracer.spans import Spans
from loopscope.tracer.stats import LaneStats, lane_stats
from loopscope.tracer.trace import Trace

_STYLE = (
    "<style>"
    "h3 { margin: 0 0 6px 0; }"
    "td { padding: 1px 10px 1px 0; vertical-align: top; }"
    "td.key { color: palette(mid); white-space: nowrap; }"
    "td.num { text-align: right; }"
    "</style>"
)


def format_duration(ns: float) -> str:
    """A duration (or a time since the run's start) with a unit that keeps it short."""
    magnitude = abs(ns)
    if magnitude < 1_000:
        return f"{ns:.0f} ns"
    if magnitude < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    if magnitude < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.3f} s"


def _rows(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><td class='key'>{escape(k)}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _value(value: Any) -> str:
    return escape(_plain(value))


def shown_details(trace: Trace, detail: dict[str, Any],
                  time_text: Callable[[float], str]) -> list[tuple[str, str]]:
    """A span's detail as people read it: a time ("deadline_ns") on the program's clock, as
    the axis counts it, a length ("cost_ns") as a duration, anything else as recorded."""
    shown = []
    for key, value in detail.items():
        if key.endswith("_ns") and isinstance(value, int) and not isinstance(value, bool):
            at = value - trace.first_event_ns if key == _TIME_KEY else value
            shown.append((key.removesuffix("_ns"), time_text(at)))
        else:
            shown.append((str(key), _plain(value)))
    return shown


_TIME_KEY = "deadline_ns"  # the one point in time among details; other "_ns" are lengths


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def span_details_html(trace: Trace, spans: Spans, index: int) -> str:
    lane = spans.lane[index]
    state = STATE_NAMES.get(spans.state[index], str(spans.state[index]))
    origin = trace.first_event_ns
    start, end = spans.start[index], spans.end[index]
    rows = [
        ("lane", escape(_lane_label(trace, lane))),
        ("state", f"<b>{escape(state)}</b>"),
        ("start", format_duration(start - origin)),
        ("end", format_duration(end - origin)),
        ("duration", format_duration(end - start)),
    ]
    seq = spans.start_seq[index]
    other = trace.other[seq] if 0 <= seq < len(trace) else NO_LANE
    if other != NO_LANE:
        relations: dict[int, str] = {Code.READY: "made ready by", Code.BLOCKED: "waits on"}
        relation = relations.get(spans.state[index], "other lane")
        rows.append((relation, escape(trace.lane_name(other))))
    rows += [(key, escape(text)) for key, text in
             shown_details(trace, spans.detail_of(index, trace), format_duration)]
    source_index = spans.source[index]
    if source_index:
        filename, line, function = trace.sources[source_index]
        rows.append(("source", escape(f"{Path(filename).name}:{line} in {function}")))
    rows.append(("event", f"#{seq}"))
    return f"{_STYLE}<h3>{escape(state)} span</h3>{_rows(rows)}"


def lane_details_html(trace: Trace, spans: Spans, lane: int) -> str:
    stats = lane_stats(trace, spans, lane)
    rows = [("kind", escape(stats.kind or "?"))]
    try:
        info = trace.lane_info(lane)
    except (IndexError, StopIteration):
        info = None
    if info is not None:
        if info.parent != NO_LANE:
            rows.append(("spawned by", escape(trace.lane_name(info.parent))))
        rows.append(("spawned at", format_duration(info.spawn_ts - trace.first_event_ns)))
    rows.append(("lifetime", format_duration(stats.lifetime_ns)))
    ending = _lane_ending(trace, lane)
    if ending:
        rows.append(ending)
    return (
        f"{_STYLE}<h3>{escape(stats.name)}</h3>{_rows(rows)}"
        f"<p><b>Time by state</b></p>{_time_table(stats)}"
        f"<p><b>Steps and scheduling</b></p>{_rows(_step_rows(stats))}"
    )


def _time_table(stats: LaneStats) -> str:
    lifetime = stats.lifetime_ns or 1
    body = "".join(
        f"<tr><td class='key'>{escape(state)}</td><td class='num'>{format_duration(ns)}</td>"
        f"<td class='num'>{100 * ns / lifetime:.1f}%</td></tr>"
        for state, ns in stats.time_in.items()
        if ns
    )
    return f"<table>{body}</table>" if body else "<p>no finished spans yet</p>"


def _step_rows(stats: LaneStats) -> list[tuple[str, str]]:
    rows = [("steps (running spans)", str(stats.steps))]
    if stats.mean_step_ns is not None:
        rows.append(("mean step", format_duration(stats.mean_step_ns)))
        rows.append(("longest step", format_duration(stats.longest_step_ns)))
    if stats.mean_latency_ns is not None:
        rows.append(("scheduling latency, mean", format_duration(stats.mean_latency_ns)))
        rows.append(("scheduling latency, worst", format_duration(stats.worst_latency_ns)))
        rows.append(("wake-ups measured", str(stats.latencies)))
    return rows


def _lane_ending(trace: Trace, lane: int) -> tuple[str, str] | None:
    lanes, codes = trace.lane, trace.code
    for seq in range(len(trace) - 1, -1, -1):
        if lanes[seq] == lane and codes[seq] == Code.END:
            detail = trace.details[trace.detail[seq]]
            if "error" in detail:
                return "ended with", f"<span style='color:#c0392b'>{_value(detail['error'])}</span>"
            return "ended with", _value(detail.get("result", "None"))
    return None


def _lane_label(trace: Trace, lane: int) -> str:
    try:
        info = trace.lane_info(lane)
    except (IndexError, StopIteration):
        return f"lane {lane}"
    return f"{info.name} ({info.kind})" if info.kind else info.name


def held_view_html(trace: Trace, view: HeldView) -> str:
    """Where the held program is paused and its local variables there, as the child read
    them from the paused frame (tracer.held_frame): short reprs, plain text."""
    if view.where is None:
        return (f"{_STYLE}<h3>Held</h3><p>No frame of the program is paused here: the "
                f"scheduler's own code is running (the loop, the hub).</p>")
    filename, line, function = view.where
    rows = [(name, f"<code>{escape(text)}</code>") for name, text in view.locals]
    more = f"<p>… and {view.truncated} more</p>" if view.truncated else ""
    table = _rows(rows) if rows else "<p>no local variables</p>"
    return (f"{_STYLE}<h3>Held in {escape(function)}()</h3>"
            f"<p>paused at {escape(Path(filename).name)}:{line}</p>"
            f"<p><b>Local variables</b></p>{table}{more}")


def trace_summary_html(trace: Trace) -> str:
    meta = trace.meta
    rows = [
        ("target", escape(str(meta.get("target", "?")))),
        ("model", escape(str(meta.get("model", "?")))),
        ("status", escape(str(meta.get("status", "?")))),
        ("duration", format_duration(trace.duration_ns - trace.first_event_ns)),
        # the times shown count from the first event; the child started this long before it
        ("first event", f"{format_duration(trace.first_event_ns)} after the child started"),
        ("events", f"{len(trace):,}"),
        ("lanes", str(len(trace.lanes))),
    ]
    if meta.get("python"):
        rows.append(("python", escape(str(meta["python"]))))
    if meta.get("dropped"):
        rows.append(("dropped events", str(meta["dropped"])))
    if meta.get("error"):
        rows.append(("error", f"<span style='color:#c0392b'>{escape(str(meta['error']))}</span>"))
    hint = "<p>Click a span or a lane name on the timeline to see its details here.</p>"
    return f"{_STYLE}<h3>Run</h3>{_rows(rows)}{hint}"


class DetailsPane(QTextBrowser):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.show_placeholder()

    def show_placeholder(self) -> None:
        self.setHtml(
            f"{_STYLE}<p>Pick a scenario on the left and press <b>Run</b> (F5), or open a "
            "saved trace (Ctrl+O).</p><p>Then click a span or a lane name on the timeline to "
            "see its details here.</p>"
        )

    def show_span(self, trace: Trace, spans: Spans, index: int) -> None:
        self.setHtml(span_details_html(trace, spans, index))

    def show_lane(self, trace: Trace, spans: Spans, lane: int) -> None:
        self.setHtml(lane_details_html(trace, spans, lane))

    def show_summary(self, trace: Trace) -> None:
        self.setHtml(trace_summary_html(trace))

    def show_held(self, trace: Trace, view: HeldView) -> None:
        self.setHtml(held_view_html(trace, view))
