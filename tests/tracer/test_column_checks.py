"""The C column checks (_speedups.column_problem) against their numpy twin: the same verdict,
word for word, on good columns and on columns wrong in each way the checks know."""

from __future__ import annotations

from array import array

import pytest

from loopscope.tracer.events import Code
from loopscope.tracer.recorder import SPEEDUPS
from loopscope.tracer.trace_checks import (
    _KNOWN_CODE_BYTES,
    TraceCheckError,
    check_columns,
    numpy_column_problem,
)
from loopscope.tracer.values import VALUE_ROW

pytestmark = pytest.mark.skipif(SPEEDUPS is None, reason="the C extension is not built")

Columns = list["array[int]"]


def good() -> Columns:
    """Three events on lanes 0 and 1: a spawn, a step, a wait with a value row detail."""
    return [
        array("q", [5, 7, 7]),
        array("i", [0, 1, 1]),
        array("b", [int(Code.SPAWN), int(Code.RUNNING), int(Code.BLOCKED)]),
        array("i", [-1, 0, -1]),
        array("i", [0, 1, VALUE_ROW]),
        array("i", [0, 1, 0]),
    ]


def changed(column: int, index: int, value: int) -> Columns:
    columns = good()
    columns[column][index] = value
    return columns


CASES = {
    "good": good(),
    "unknown code": changed(2, 1, 99),
    "negative code": changed(2, 0, -5),
    "ts before the previous batch": changed(0, 0, 1),
    "ts too large": changed(0, 2, 1 << 62),
    "ts backwards": changed(0, 2, 6),
    "lane negative": changed(1, 0, -1),
    "lane too large": changed(1, 2, 3),
    "other below -1": changed(3, 0, -2),
    "other too large": changed(3, 1, 3),
    "source too large": changed(5, 1, 2),
    "source negative": changed(5, 1, -1),
    "detail too large": changed(4, 1, 2),
    "detail negative": changed(4, 1, -3),
    "value row missing": changed(4, 1, VALUE_ROW + 1),
    # two things wrong: both twins name the one their shared order checks first
    "detail and value row": [*good()[:4], array("i", [VALUE_ROW + 4, 9, 0]), good()[5]],
    "short column": [*good()[:5], array("i", [0])],
    "empty": [array(t) for t in ("q", "i", "b", "i", "i", "i")],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_c_checks_agree_with_numpy(name: str) -> None:
    columns = CASES[name]
    tables = (2, 1, 2, 0, 3)  # details, value rows, sources, previous events, previous ts
    assert SPEEDUPS is not None
    c_verdict = SPEEDUPS.column_problem(*columns, _KNOWN_CODE_BYTES, *tables)
    assert c_verdict == numpy_column_problem(columns, *tables)
    assert (c_verdict is None) == (name in ("good", "empty"))


def test_check_columns_raises_the_c_verdict() -> None:
    with pytest.raises(TraceCheckError, match="the timestamps go backwards"):
        check_columns(CASES["ts backwards"], 2, 1, 2)
    check_columns(good(), 2, 1, 2)


def test_columns_of_other_types_take_the_numpy_checks() -> None:
    columns = good()
    columns[1] = array("l", columns[1])  # not the wire's type: the C checks would misread it
    check_columns(columns, 2, 1, 2)
    columns[1][0] = 7
    with pytest.raises(TraceCheckError, match="lane out of range"):
        check_columns(columns, 2, 1, 2)
