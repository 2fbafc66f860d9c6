"""AfterImport: callbacks once a module is first imported, each exactly once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loopscope.tracer.after_import import AfterImport


@pytest.fixture
def fresh_module(tmp_path: Path) -> Iterator[str]:
    """The name of a module nothing has imported yet (sets `loaded` when it runs)."""
    name = f"after_import_probe_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("loaded = True\n", encoding="utf-8")
    sys.path.insert(0, str(tmp_path))
    try:
        yield name
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_callbacks_run_in_order_inside_the_first_import_and_later_ones_at_once(
        fresh_module: str) -> None:
    seen: list[str] = []
    watch = AfterImport(fresh_module)
    watch.call(lambda: seen.append("first " + str(sys.modules[fresh_module].loaded)))
    watch.call(lambda: seen.append("second"))
    watch.install()
    assert seen == []
    __import__(fresh_module)
    assert seen == ["first True", "second"]
    assert watch.fired and watch not in sys.meta_path
    watch.call(lambda: seen.append("late"))
    __import__(fresh_module)
    assert seen == ["first True", "second", "late"]


def test_a_callback_added_while_another_thread_fires_runs_once(fresh_module: str) -> None:
    # the firing thread is held inside the first callback; a callback added meanwhile is run
    # by the thread that adds it, and the firing thread must not run it again
    runs: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def first() -> None:
        inside.set()
        assert release.wait(10)

    watch = AfterImport(fresh_module)
    watch.call(first)
    watch.install()
    importer = threading.Thread(target=__import__, args=(fresh_module,))
    importer.start()
    assert inside.wait(10)
    watch.call(lambda: runs.append(threading.current_thread().name))
    release.set()
    importer.join(10)
    assert runs == [threading.current_thread().name]
