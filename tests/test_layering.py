"""The dependency rules of DESIGN.md, checked in fresh interpreters."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules(package: str) -> list[str]:
    names = []
    for path in (ROOT / package).rglob("*.py"):
        if "gevent" in path.stem or "greenlet" in path.stem:
            continue  # importing gevent in a plain interpreter is what the child avoids too
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(names)


def _imported_after(modules: list[str]) -> set[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name.replace('/', '.'))\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=True,
    )
    return set(done.stdout.split())


@pytest.mark.parametrize("package", ["tracer", "scenarios"])
def test_tracer_and_scenarios_never_import_qt(package: str) -> None:
    modules = _modules(package)
    loaded = _imported_after(modules)
    qt = sorted(m for m in loaded if m.split(".")[0] in {"PySide6", "shiboken6", "qasync"})
    assert qt == [], f"importing {package} pulled in Qt: {qt}"


def test_the_parent_side_never_imports_gevent() -> None:
    loaded = _imported_after(
        ["loopscope.tracer.runner", "loopscope.tracer.target", "loopscope.tracer.spans",
         "loopscope.scenarios.catalog", "loopscope.ui.cli"]
    )
    assert not {m for m in loaded if m.split(".")[0] in {"gevent", "greenlet"}}


@pytest.mark.parametrize("package", ["tracer", "scenarios"])
def test_no_file_in_tracer_or_scenarios_mentions_qt_in_an_import(package: str) -> None:
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            if any(n.split(".")[0] in {"PySide6", "shiboken6", "qasync"} for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []
