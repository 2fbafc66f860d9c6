"""Loads one of pyperformance's benchmark modules (bm_NAME/run_benchmark.py) by path, so that
the corpus runs its functions directly, without pyperf's worker processes."""

import importlib.util
import sys
from pathlib import Path

import pyperformance

BENCHMARKS = Path(pyperformance.__file__).resolve().parent / "data-files" / "benchmarks"


def load(name):
    path = BENCHMARKS / f"bm_{name}" / "run_benchmark.py"
    spec = importlib.util.spec_from_file_location(f"bm_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
