"""The model registry (tracer.models.MODELS): every model declared once, and completely."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import pytest

from loopscope.scenarios import catalog
from loopscope.tracer.models import (
    MODEL_NAMES,
    MODELS,
    clock_policy_for,
    guess_model,
    model_spec,
    narration_looks_ahead,
)
from loopscope.tracer.models.toolkit import ClockPolicy
from loopscope.tracer.runner import RunResult
from loopscope.tracer.target import TargetError, resolve_target


def test_every_model_is_declared_once_with_a_module_that_runs_it() -> None:
    assert len(set(MODEL_NAMES)) == len(MODELS) == 6
    for spec in MODELS:
        module = importlib.import_module(spec.module)
        assert callable(getattr(module, "run", None)), f"{spec.module} has no run()"
        assert model_spec(spec.name) is spec
        assert spec.title and spec.lane_kinds


def test_every_scenario_runs_a_registered_model_and_every_model_has_scenarios() -> None:
    models_of_scenarios = {scenario.model for scenario in catalog.all_scenarios()}
    assert models_of_scenarios == set(MODEL_NAMES)


@pytest.mark.parametrize(
    ("source", "model"),
    [
        ("import gevent\nimport asyncio\n", "gevent"),
        ("from greenlet import greenlet\n", "greenlet"),
        ("import trio\n", "trio"),
        ("import asyncio\n", "asyncio"),
        ("import aiohttp\n", "asyncio"),
        ("import selectors\n", "select"),
        ("def gen():\n    yield 1\n", "generator"),
        ("print('hello')\n", "asyncio"),
    ],
)
def test_a_scripts_model_is_guessed_from_the_registry(source: str, model: str) -> None:
    assert guess_model(source) == model


def test_what_stepping_asks_of_a_model_comes_from_its_declaration() -> None:
    assert {name: clock_policy_for(name) for name in MODEL_NAMES} == {
        "gevent": ClockPolicy.MARK, "greenlet": ClockPolicy.STOP, "trio": ClockPolicy.STOP,
        "asyncio": ClockPolicy.STOP, "select": ClockPolicy.MARK, "generator": ClockPolicy.STOP,
    }
    assert [name for name in MODEL_NAMES if narration_looks_ahead(name)] == ["gevent"]
    # a model nobody declared (an old trace, a test's own) is treated with every caution
    assert clock_policy_for("tests.tracer.toy_model") is ClockPolicy.MARK
    assert narration_looks_ahead("tests.tracer.toy_model")


def test_an_unknown_model_is_one_clear_error() -> None:
    with pytest.raises(TargetError, match="unknown model 'fibers' \\(choose from gevent, "):
        resolve_target("x.py", (), "fibers")


@pytest.mark.slow
@pytest.mark.parametrize("scenario", [s.id for s in catalog.all_scenarios()])
def test_a_scenarios_lanes_are_of_the_kinds_its_model_declares(
    scenario: str, record_scenario: Callable[..., RunResult]
) -> None:
    trace = record_scenario(scenario).trace
    spec = model_spec(catalog.get(scenario).model)
    assert spec is not None
    assert {info.kind for info in trace.lanes} <= spec.lane_kinds
