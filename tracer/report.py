"""The report on one run: what the run was, the task table, and the findings.

`build_report(trace)` is pure: the same trace gives the same report, whether it was just
recorded or loaded from a file. `report_json` gives its JSON form (schema: docs/report-schema.md,
checked by tracer.report_schema); `failing_rules` says which `--fail-on` rules it trips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from loopscope.tracer.findings import RULES, Finding
from loopscope.tracer.lane_table import LaneRow, LaneTable, Spread, by_cost, lane_rows
from loopscope.tracer.lints import LintLimits, run_lints
from loopscope.tracer.spans import Spans, derive_spans
from loopscope.tracer.stalls import DEFAULT_THRESHOLD_NS, find_stalls
from loopscope.tracer.trace import Trace

SCHEMA_ID = "loopscope-report/1"


@dataclass(frozen=True)
class ReportOptions:
    stall_ns: int = DEFAULT_THRESHOLD_NS
    limits: LintLimits = field(default_factory=LintLimits)


@dataclass(frozen=True)
class Report:
    run: dict[str, Any]
    lanes: list[LaneRow]  # costliest first
    findings: list[Finding]
    first_event_ns: int = 0  # where the program's clock starts, for times shown to people


def build_report(trace: Trace, options: ReportOptions | None = None,
                 spans: Spans | None = None, table: LaneTable | None = None) -> Report:
    """`table`: the task table already fed with these spans (the app's Tasks view), else
    one is folded here."""
    options = options or ReportOptions()
    spans = derive_spans(trace) if spans is None else spans
    rows = lane_rows(trace, spans) if table is None else table.rows()
    findings = find_stalls(trace, spans, options.stall_ns)
    findings += run_lints(trace, spans, rows, options.limits)
    return Report(run=run_summary(trace), lanes=by_cost(rows), findings=findings,
                  first_event_ns=trace.first_event_ns)


def run_summary(trace: Trace) -> dict[str, Any]:
    meta = trace.meta
    models = sorted({info.kind for info in trace.lanes})
    return {
        "target": meta.get("target"),
        "model": meta.get("model"),
        "python": meta.get("python"),
        "status": meta.get("status"),
        "exit_code": meta.get("exit_code"),
        "error": meta.get("error"),
        "duration_ns": trace.duration_ns,
        "events": len(trace),
        "lanes": len(trace.lanes),
        "lane_kinds": models,
        "samples": len(trace.samples),
    }


# -- JSON -------------------------------------------------------------------------------------


def report_json(report: Report) -> dict[str, Any]:
    return {
        "schema": SCHEMA_ID,
        "run": report.run,
        "lanes": [_lane_json(row) for row in report.lanes],
        "findings": [_finding_json(finding) for finding in report.findings],
    }


def _spread_json(spread: Spread) -> dict[str, int]:
    return {"count": spread.count, "p50_ns": spread.p50, "p99_ns": spread.p99,
            "max_ns": spread.max}


def _same_names(record: object, *names: str) -> dict[str, Any]:
    """The attributes whose JSON key is their own name, in the schema's order."""
    return {name: getattr(record, name) for name in names}


def _lane_json(row: LaneRow) -> dict[str, Any]:
    return {
        **_same_names(row, "lane", "name", "kind", "status", "cost_ns"),
        "time_ns": dict(row.time_in),
        "steps": _spread_json(row.steps),
        "latency": _spread_json(row.latency),
        **_same_names(row, "wakes_given", "wakes_received", "self_wakes"),
    }


def _frame_json(frame: tuple[str, int, str]) -> dict[str, Any]:
    return {"file": frame[0], "line": frame[1], "function": frame[2]}


def _finding_json(finding: Finding) -> dict[str, Any]:
    return {
        **_same_names(finding, "rule", "title", "explanation", "scenario", "lane", "lane_name",
                      "ts_ns", "duration_ns", "where"),
        "source": None if finding.location is None else _frame_json(finding.location),
        "stack": [_frame_json(frame) for frame in finding.stack],
        **_same_names(finding, "samples", "seq"),
        "delayed": [_same_names(d, "lane", "name", "ready_ns", "late_timer_ns", "total_ns")
                    for d in finding.delayed],
        "facts": finding.facts,
    }


# -- --fail-on ------------------------------------------------------------------------------------

_FAIL_ON = re.compile(r"^([a-z-]+)(?:\s*>\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s))?$")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


@dataclass(frozen=True)
class FailRule:
    """`RULE` (any finding of it), `RULE>DURATION` (one lasting longer) or `any`."""

    rule: str
    longer_than_ns: int | None = None

    def matches(self, finding: Finding) -> bool:
        if self.rule != "any" and finding.rule != self.rule:
            return False
        return self.longer_than_ns is None or finding.duration_ns > self.longer_than_ns

    def __str__(self) -> str:
        if self.longer_than_ns is None:
            return self.rule
        return f"{self.rule}>{self.longer_than_ns / 1e6:g}ms"


def parse_fail_on(text: str) -> list[FailRule]:
    """'stall>100ms,pending-at-exit' -> rules; ValueError with the one line to show."""
    rules = []
    for part in (piece.strip() for piece in text.split(",")):
        match = _FAIL_ON.match(part)
        if match is None or (match.group(1) not in RULES and match.group(1) != "any"):
            known = ", ".join(["any", *RULES])
            raise ValueError(f"--fail-on: '{part}' is not a rule (one of {known}, "
                             "optionally with >DURATION such as stall>100ms)")
        name, amount, unit = match.groups()
        longer = None if amount is None else round(float(amount) * _UNITS[unit])
        rules.append(FailRule(name, longer))
    return rules


def failing_rules(report: Report, rules: list[FailRule]) -> list[tuple[FailRule, Finding]]:
    return [(rule, finding) for rule in rules for finding in report.findings
            if rule.matches(finding)]


def stall_threshold_for(rules: list[FailRule], default_ns: int = DEFAULT_THRESHOLD_NS) -> int:
    """A `stall>50ms` gate needs stalls from 50 ms on to be found at all."""
    limits = [rule.longer_than_ns for rule in rules
              if rule.rule in ("stall", "any") and rule.longer_than_ns is not None]
    return min([default_ns, *limits])
