"""The report as a terminal reads it: the run, the task table, then the findings."""

from __future__ import annotations

import textwrap

from loopscope.tracer.events import followed
from loopscope.tracer.findings import Delay
from loopscope.tracer.lane_table import LaneRow
from loopscope.tracer.report import Report
from loopscope.tracer.samples import frame_location

STACK_LINES = 6  # frames of a stall's stack shown under it
DELAY_LINES = 10  # the most delayed lanes shown under a stall


def short_duration(ns: float) -> str:
    """A duration in at most about six characters: 0, 850ns, 12µs, 1.2ms, 502ms, 1.03s."""
    if ns <= 0:
        return "0"
    if ns < 1_000:
        return f"{ns:.0f}ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.3g}µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.3g}ms"
    return f"{ns / 1_000_000_000:.3g}s"


def finding_time(ts_ns: int, first_event_ns: int) -> str:
    """When a finding happened, on the program's clock: from its first event, as the axis."""
    return f"{(ts_ns - first_event_ns) / 1e9:.3f} s"


def how_delayed(delay: Delay) -> str:
    """What a stall did to a lane it held up: "its timer fired 80ms late, ready but not run
    for 12ms"."""
    parts = []
    if delay.late_timer_ns:
        parts.append(f"its timer fired {short_duration(delay.late_timer_ns)} late")
    if delay.ready_ns:
        parts.append(f"ready but not run for {short_duration(delay.ready_ns)}")
    return ", ".join(parts)


def render_report(report: Report) -> str:
    lines = _run_lines(report)
    lines.append("")
    lines += table_lines(report.lanes)
    lines.append("")
    if not report.findings:
        lines.append("no findings")
    else:
        count = len(report.findings)
        lines.append(f"{count} finding{'s' if count != 1 else ''}:")
        for finding in report.findings:
            lines.append("")
            at = (f" at {finding_time(finding.ts_ns, report.first_event_ns)}"
                  if finding.ts_ns is not None else "")
            lane = f" [{finding.lane_name}]" if finding.lane_name else ""
            lines.append(f"{finding.rule}{lane}{at}: {finding.title}")
            if finding.stack:
                lines.append(f"  stack ({finding.samples} samples, innermost first):")
                for frame in finding.stack[:STACK_LINES]:
                    lines.append(f"    {frame_location(frame)} in {frame[2]}")
                if len(finding.stack) > STACK_LINES:
                    lines.append(f"    ... {len(finding.stack) - STACK_LINES} more")
            for delay in finding.delayed[:DELAY_LINES]:
                lines.append(f"  delayed {delay.name}: {how_delayed(delay)}")
            if len(finding.delayed) > DELAY_LINES:
                lines.append(f"  ... {len(finding.delayed) - DELAY_LINES:,} more delayed lanes"
                             " (all of them: --format json)")
            lines += textwrap.wrap(finding.explanation, 100, initial_indent="  why: ",
                                   subsequent_indent="       ")
            if finding.scenario:
                lines.append(f"  see: the '{finding.scenario}' scenario "
                             f"(loopscope narrate {finding.scenario})")
    return "\n".join(lines) + "\n"


def _run_lines(report: Report) -> list[str]:
    run = report.run
    status = run.get("status") or "unknown"
    if run.get("exit_code") not in (None, 0):
        status += f", exit {run['exit_code']}"
    if run.get("error"):
        status += f": {run['error']}"
    model = followed(run.get("model"), run.get("lane_kinds") or ()) or "?"
    python = f", Python {run['python']}" if run.get("python") else ""
    return [
        f"run: {run.get('target') or '?'} ({model}{python}); ended {status}",
        f"     {short_duration(run['duration_ns'] - report.first_event_ns)}, {run['lanes']} lanes, "
        f"{run['events']} events, {run['samples']} stack samples",
    ]


def table_lines(rows: list[LaneRow]) -> list[str]:
    """The task table, one lane a line in the order given."""
    name_width = max([4, *(len(row.name) for row in rows)])
    name_width = min(name_width, 32)
    status_width = max([6, *(len(row.status) for row in rows)])
    header = (f"{'lane':<{name_width}}  {'status':<{status_width}}  {'running':>7} {'ready':>7} "
              f"{'io-wait':>7} {'sleeping':>8} {'blocked':>7}  {'steps':>6}  "
              f"{'step p50/p99/max':>20}  {'latency p50/p99/max':>20}  {'wakes out/in':>12}")
    lines = [header]
    for row in rows:
        name = row.name if len(row.name) <= name_width else row.name[: name_width - 1] + "…"
        time_in = row.time_in
        running = time_in["running"] + time_in["dispatch"]
        lines.append(
            f"{name:<{name_width}}  {row.status:<{status_width}}  {short_duration(running):>7} "
            f"{short_duration(time_in['ready']):>7} {short_duration(time_in['io-wait']):>7} "
            f"{short_duration(time_in['sleeping']):>8} {short_duration(time_in['blocked']):>7}  "
            f"{row.steps.count:>6}  {_triple(row.steps.p50, row.steps.p99, row.steps.max):>20}  "
            f"{_triple(row.latency.p50, row.latency.p99, row.latency.max):>20}  "
            f"{f'{row.wakes_given}/{row.wakes_received}':>12}"
        )
    return lines


def _triple(p50: int, p99: int, largest: int) -> str:
    if not largest:
        return "-"
    return f"{short_duration(p50)}/{short_duration(p99)}/{short_duration(largest)}"
