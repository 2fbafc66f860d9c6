"""The C extensions' contract (tracer/loopscope.h) against its Python twins.

Every #define in the header names the Python value it mirrors; this reads the header as text
(no compiler needed) and checks each one, and that both C files take the header rather than
numbers of their own.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from loopscope.tracer.events import NO_LANE, Code
from loopscope.tracer.models import (
    _asyncio_tracer,
    _asyncio_waits,
    _greenlets,
    _plain_loads,
    generator_model,
)
from loopscope.tracer.recorder import SPEEDUPS, PurePendingBuffer
from loopscope.tracer.values import VALUE_ROW

TRACER = Path(__file__).resolve().parents[2] / "tracer"
HEADER = TRACER / "loopscope.h"
_DEFINE = re.compile(r"^#define\s+([A-Z][A-Z0-9_]*)\s+(.+?)\s*(?:/\*.*)?$", re.MULTILINE)


def _header_defines() -> dict[str, str]:
    return dict(_DEFINE.findall(HEADER.read_text(encoding="utf-8")))


def _number(text: str) -> int:
    """An integer #define's value: a literal, (-N) or (1 << N)."""
    text = text.strip()
    shifted = re.fullmatch(r"\((\d+)\s*<<\s*(\d+)\)", text)
    if shifted:
        return int(shifted.group(1)) << int(shifted.group(2))
    return int(text.strip("()"), 0)


def test_every_event_code_is_in_the_header_with_its_python_value() -> None:
    defines = _header_defines()
    codes = {name.removeprefix("CODE_"): _number(value)
             for name, value in defines.items() if name.startswith("CODE_")}
    assert codes == {code.name: int(code) for code in Code}
    assert _number(defines["NO_LANE"]) == NO_LANE


def test_the_other_shared_numbers_match_their_python_twins() -> None:
    defines = _header_defines()
    twins = {
        "VALUE_ROW": VALUE_ROW,
        "CO_GENERATOR_FLAG": generator_model.CO_GENERATOR,
        "CO_COROUTINE_FLAG": generator_model.CO_COROUTINE,
        "REPR_LIMIT": generator_model.REPR_LIMIT,
        "READ_CONSTANT": _plain_loads.READ_CONSTANT,
        "READ_LOCAL": _plain_loads.READ_LOCAL,
        "READ_CELL": _plain_loads.READ_CELL,
        "STREAM_WRITE": _asyncio_tracer._STREAM_WRITE,
        "SWEEP_WAITING_AT": _asyncio_tracer.SWEEP_WAITING_AT,
        "PROGRAM_SIDE": _asyncio_waits.PROGRAM_SIDE,
        "LIBRARY_SIDE": _asyncio_waits.LIBRARY_SIDE,
        "PASSED_OVER": _asyncio_waits.PASSED_OVER,
    }
    assert {name: _number(defines[name]) for name in twins} == twins
    assert defines["RECORDER_API_CAPSULE"] == '"loopscope.tracer._speedups._recorder_api"'


@pytest.mark.parametrize(
    ("prefix", "fields", "empty_row"),
    [
        ("SITE_", generator_model.SITE_FIELDS, generator_model._NO_SITE),
        ("VALUE_READ_", generator_model.VALUE_READ_FIELDS, generator_model.ValueRead(0, None, -1)),
        ("CACHED_", generator_model.CACHED_FIELDS, generator_model.CachedValue(None, "", 0)),
        ("PENDING_", generator_model.PENDING_FIELDS, generator_model._NO_PENDING),
        ("LANE_CODE_", generator_model.LANE_CODE_FIELDS, None),
        ("ARRIVAL_", _greenlets.ARRIVAL_FIELDS, _greenlets._NO_ARRIVAL),
        ("CAUSE_", _asyncio_tracer.CAUSE_FIELDS, None),
        ("WAITERS_", _asyncio_tracer.WAITERS_FIELDS, None),
        ("SLEEP_", _asyncio_tracer.SLEEP_FIELDS, None),
        ("VERDICT_", _asyncio_tracer.VERDICT_FIELDS, None),
        ("OWNER_", _asyncio_tracer.OWNER_FIELDS, None),
        ("LINES_OF_", _asyncio_tracer.LINES_OF_FIELDS, None),
    ],
)
def test_the_rows_c_reads_are_named_alike_on_both_sides(
    prefix: str, fields: tuple[str, ...], empty_row: tuple[object, ...] | None
) -> None:
    defines = _header_defines()
    named = {name.removeprefix(prefix).lower(): _number(value)
             for name, value in defines.items()
             if name.startswith(prefix) and name != f"{prefix}FIELDS"}
    assert named == {field: index for index, field in enumerate(fields)}
    assert _number(defines[f"{prefix}FIELDS"]) == len(fields)
    if empty_row is not None:
        assert len(empty_row) == len(fields)


def _includes_contract(source: Path, seen: frozenset[Path] = frozenset()) -> bool:
    """Whether a C file takes loopscope.h, itself or through a header of tracer/ that does."""
    for name in re.findall(r'^#include "([^"]+)"', source.read_text(encoding="utf-8"),
                           re.MULTILINE):
        if name == HEADER.name:
            return True
        header = TRACER / name
        if header.exists() and header not in seen and _includes_contract(header, seen | {source}):
            return True
    return False


def test_the_c_files_take_the_header_and_define_none_of_its_names_again() -> None:
    shared = set(_header_defines())
    sources = sorted(path for path in [*TRACER.glob("*.c"), *TRACER.glob("*.h")]
                     if path != HEADER)
    assert len([path for path in sources if path.suffix == ".c"]) >= 2
    for source in sources:
        text = source.read_text(encoding="utf-8")
        assert _includes_contract(source), f"{source.name} does not take loopscope.h"
        own = {name for name, _value in _DEFINE.findall(text)}
        assert not own & shared, f"{source.name} defines {sorted(own & shared)} again"
        assert "} LoopscopeRecorderAPI;" not in text, \
            f"{source.name} copies the recorder API struct"


def _stub_class(stub: Path, class_name: str) -> ast.ClassDef:
    tree = ast.parse(stub.read_text(encoding="utf-8"))
    [cls] = [node for node in tree.body
             if isinstance(node, ast.ClassDef) and node.name == class_name]
    return cls


def test_the_recorder_stub_types_the_c_buffer_as_its_pure_python_twin() -> None:
    """_speedups.pyi types the C RecorderCore as a PurePendingBuffer, so the buffer's
    signatures are written once, in the twin: the stub restates none of them, and the C type
    has every method the twin has (the C-versus-pure tests hold their behaviour alike)."""
    stub = _stub_class(TRACER / "_speedups.pyi", "RecorderCore")
    assert [ast.unparse(base) for base in stub.bases] == ["PurePendingBuffer"]
    assert not [node.name for node in stub.body if isinstance(node, ast.FunctionDef)]
    if SPEEDUPS is None:
        pytest.skip("tracer._speedups is not built")
    # _limit_reached is the subclass's (Recorder): both buffers call it, neither defines it
    twin = {name for name in vars(PurePendingBuffer)
            if not name.startswith("__") and name != "_limit_reached"}
    assert {"record", "handoff", "value_row", "_take", "_set_clock", "_limit"} <= twin
    assert sorted(name for name in twin if not hasattr(SPEEDUPS.RecorderCore, name)) == []
