"""`loopscope report`, run for real as a subprocess: text, JSON, --fail-on, saved traces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loopscope.tracer.report_schema import schema_errors
from tests.cli.test_cli import assert_one_error, run_cli

PROGRAMS = Path(__file__).resolve().parents[1] / "tracer" / "report_programs"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def blocking_trace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    path = folder / "blocking.loopscope"
    done = run_cli("trace", "blocking-call", "-o", path, cwd=folder)
    assert done.returncode == 0, done.stderr
    return path


def test_report_on_blocking_call_names_the_line_and_the_lanes_it_delayed(tmp_path: Path) -> None:
    done = run_cli("report", "blocking-call", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("run: blocking-call (asyncio")
    stall = next(line for line in out.splitlines() if line.startswith("stall [blocker]"))
    assert "blocker ran" in stall and "at blocking_call.py:55" in stall
    assert "ticker" in stall and "heartbeat" in stall
    assert "  delayed ticker: its timer fired" in out
    assert "  delayed heartbeat: its timer fired" in out
    assert "blocking_call.py:55 in blocker" in out
    assert "tick 1" not in out  # the program's own output stays out of the report


def test_json_report_of_a_saved_trace_follows_the_schema(blocking_trace: Path) -> None:
    done = run_cli("report", blocking_trace, "--format", "json", cwd=blocking_trace.parent)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert schema_errors(document) == []
    assert document["run"]["target"] == "blocking-call" and document["run"]["samples"] > 0
    assert [f["rule"] for f in document["findings"]] == ["stall"]
    assert document["findings"][0]["where"] == "blocking_call.py:55"
    assert {lane["name"] for lane in document["lanes"]} >= {"blocker", "ticker", "heartbeat"}


def test_fail_on_exits_non_zero_when_a_finding_matches(blocking_trace: Path) -> None:
    cwd = blocking_trace.parent
    failed = run_cli("report", blocking_trace, "--fail-on", "stall>100ms", cwd=cwd)
    assert failed.returncode == 3
    assert "stall [blocker]" in failed.stdout
    assert failed.stderr.strip() == "loopscope: 1 finding(s) match --fail-on stall>100ms"
    passed = run_cli("report", blocking_trace, "--fail-on", "stall>2s,pending-at-exit",
                     cwd=cwd)
    assert passed.returncode == 0, passed.stderr


def test_fail_on_a_lint_of_a_script(tmp_path: Path) -> None:
    done = run_cli("report", PROGRAMS / "pending_at_exit.py", "--fail-on", "pending-at-exit",
                   cwd=tmp_path)
    assert done.returncode == 3
    assert "pending-at-exit [poller]" in done.stdout


def test_a_clean_run_reports_no_findings(tmp_path: Path) -> None:
    done = run_cli("report", "asyncio-hello", "--fail-on", "any", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("no findings")


def test_an_unknown_fail_on_rule_is_one_error_line(tmp_path: Path) -> None:
    done = run_cli("report", "asyncio-hello", "--fail-on", "slow-ish", cwd=tmp_path)
    assert_one_error(done, "--fail-on", "slow-ish", "stall>100ms", exit_code=2)
