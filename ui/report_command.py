"""`loopscope report TARGET`: the task table and the findings, as text or JSON, and a CI gate.

    loopscope report TARGET [--format text|json] [--stall-ms MS] [--fail-on RULE[,RULE]]

The report is built by tracer.report from the trace the target gives (a run, or a saved
trace). With --fail-on, the command exits with EXIT_FINDINGS when a finding matches one of
the rules, after printing the whole report, so CI can gate on it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loopscope.tracer.report import FailRule

# The report's modules use numpy: they load when `report` runs, not for every command's parser
# (tests/cli holds this equal to tracer.stalls.DEFAULT_THRESHOLD_NS).
DEFAULT_STALL_MS = 100.0

# Distinct from an error (1) and a usage mistake (2): the run was fine, the program was not.
EXIT_FINDINGS = 3


def add_report_parser(commands: argparse._SubParsersAction[Any],
                      add_target: Callable[[argparse.ArgumentParser], None]) -> None:
    reporter = commands.add_parser(
        "report", help="the per-lane task table and the findings (stalls, lints)",
        description="Run TARGET (or read a saved trace) and print what each lane did -- time "
        "running, ready and waiting, its steps and its scheduling latency -- costliest first, "
        "then the findings: steps that stalled the thread (with the line that blocked and "
        "the lanes it delayed) and the lints.",
    )
    add_target(reporter)
    reporter.add_argument("--format", choices=("text", "json"), default="text",
                          help="json: the schema of docs/report-schema.md")
    reporter.add_argument("--stall-ms", type=_milliseconds, metavar="MS",
                          default=DEFAULT_STALL_MS,
                          help="a step at least this long is a stall (default: 100)")
    reporter.add_argument("--fail-on", action="append", default=[], metavar="RULE",
                          type=_fail_on_rules,
                          help="exit with status 3 when a finding matches: a rule id "
                          "(stall, pending-at-exit, ...), RULE>DURATION (stall>100ms) or "
                          "'any'; repeat or separate with commas")


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of milliseconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"'{text}' must be more than zero milliseconds")
    return value


def _fail_on_rules(text: str) -> list[FailRule]:
    from loopscope.tracer.report import parse_fail_on

    try:
        return parse_fail_on(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--fail-on: ")) from None


def command_report(options: argparse.Namespace, script_args: Sequence[str],
                   cli: ModuleType) -> int:
    """`cli` is loopscope.ui.cli: how targets are run or loaded, and how a run ends."""
    from loopscope.tracer.report import (
        ReportOptions,
        build_report,
        failing_rules,
        report_json,
        stall_threshold_for,
    )
    from loopscope.tracer.report_text import render_report

    rules: list[FailRule] = [rule for group in options.fail_on for rule in group]
    target = cli._resolve(options, script_args)
    # The program's own output would mix into the report (or break its JSON): not echoed.
    obtained = cli.obtain_trace(target, options.timeout, echo_stdout=False)
    threshold = stall_threshold_for(rules, round(options.stall_ms * 1e6))
    report = build_report(obtained.trace, ReportOptions(stall_ns=threshold))
    if options.format == "json":
        import json  # here: the command line's start-up does not need it

        sys.stdout.write(json.dumps(report_json(report), indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(render_report(report))
    sys.stdout.flush()
    status: int = cli._finish(obtained)
    tripped = failing_rules(report, rules)
    if tripped:
        names = sorted({str(rule) for rule, _finding in tripped})
        sys.stderr.write(f"loopscope: {len(tripped)} finding(s) match --fail-on "
                         f"{', '.join(names)}\n")
        return EXIT_FINDINGS
    return status
