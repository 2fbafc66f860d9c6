"""The bulk detail checks (a whole batch's or file's table at once) against the row-by-row
ones they stand in for: the same dicts for every table, the same refusal for every bad row."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from loopscope.tracer.events import detail_to_dict
from loopscope.tracer.trace_checks import (
    INT64,
    TraceCheckError,
    check_detail,
    check_details,
    details_of_pairs,
)

GOOD_ROWS: list[list[Any]] = [
    [],
    ["delay_s", 0.05, "deadline_ns", 607730040],
    ["cause", "timer", "deadline_ns", 1466704722],
    ["via", "yield"],
    ["readable", [], "writable", [3, 4]],
    ["fd", 9, "mode", "read", "timeout_s", None],
    ["timeout_s", 1, "delay_s", True, "paused_ns", None],
    ["result", "closed", "result", "again"],  # a repeated key: the last value wins
    ["n", INT64 - 1, "m", -INT64],
    ["nested", [[1, [2, "x"]], None]],
    ["flag", False, "nothing", None, "ratio", float("inf")],
]

BAD_ROWS: list[Any] = [
    ["n", INT64],
    ["n", -INT64 - 1],
    ["deadline_ns", 1.5],
    ["deadline_ns", True],
    ["paused_ns", "soon"],
    ["delay_s", "soon"],
    ["timeout_s", [1]],
    ["readable", 3],
    ["writable", None],
    ["value", {"a": 1}],
    ["value", [[[[["too deep"]]]]]],
    ["value", [INT64]],
    "not a list",
    {"a": 1},
]

ODD_ROWS: list[list[Any]] = [
    ["key"],  # an odd row's last item is dropped, as detail_to_dict does
    ["key", 1, "dropped"],
    [1, "a number as a key"],  # becomes "1", as detail_to_dict does
    [None, 2],
    [[1], 2],  # a list as a key (not hashable)
]


def _one_by_one(rows: list[Any]) -> list[dict[str, Any]]:
    checked = []
    for row in rows:
        if not isinstance(row, list):
            raise TraceCheckError("a detail row is not a list")
        checked.append(check_detail(detail_to_dict(tuple(row))))
    return checked


def _verdict(check: Any, rows: list[Any]) -> Any:
    try:
        return check(rows)
    except TraceCheckError as exc:
        return ("refused", str(exc))


def _hashable(key: object) -> object:
    return str(key) if isinstance(key, list) else key


def _tables() -> list[list[Any]]:
    tables: list[list[Any]] = [[], GOOD_ROWS, ODD_ROWS, GOOD_ROWS + ODD_ROWS]
    for bad in BAD_ROWS:
        tables += [[bad], [*GOOD_ROWS, bad], [bad, *GOOD_ROWS], [*ODD_ROWS, bad, GOOD_ROWS[1]]]
    tables += [list(pair) for pair in itertools.combinations(GOOD_ROWS + ODD_ROWS, 2)]
    return tables


@pytest.mark.parametrize("rows", _tables())
def test_a_table_of_pairs_is_checked_as_its_rows_one_by_one(rows: list[Any]) -> None:
    expected = _verdict(_one_by_one, rows)
    got = _verdict(details_of_pairs, rows)
    assert got == expected
    if not isinstance(expected, tuple):
        assert [list(d.items()) for d in got] == [list(d.items()) for d in expected]


@pytest.mark.parametrize("rows", _tables())
def test_a_table_of_dicts_is_checked_as_its_rows_one_by_one(rows: list[Any]) -> None:
    dicts = [{_hashable(key): value for key, value in zip(row[0::2], row[1::2], strict=False)}
             if isinstance(row, list) else row for row in rows]

    def one_by_one(table: list[Any]) -> list[dict[str, Any]]:
        return [check_detail(row) for row in table]

    assert _verdict(check_details, dicts) == _verdict(one_by_one, dicts)


def test_the_bulk_checks_take_a_big_table_whole() -> None:
    rows = [["delay_s", 0.05, "deadline_ns", n] for n in range(10_000)]
    details = details_of_pairs(rows)
    assert details[1234] == {"delay_s": 0.05, "deadline_ns": 1234}
    assert len(details) == 10_000
