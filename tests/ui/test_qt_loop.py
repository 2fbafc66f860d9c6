"""The app's qasync loop steps tasks with itself as the running loop when Qt runs its callbacks
outside a running asyncio loop (qasync 0.28 dispatches there; see ui/qt_loop.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from PySide6.QtCore import QElapsedTimer
from PySide6.QtWidgets import QApplication

from loopscope.ui.qt_loop import QtEventLoop

pytestmark = pytest.mark.gui


@pytest.fixture
def loop(qapp: QApplication) -> Iterator[QtEventLoop]:
    event_loop = QtEventLoop(qapp)
    asyncio.set_event_loop(event_loop)
    yield event_loop
    event_loop.close()
    asyncio.set_event_loop(None)


def test_a_task_steps_when_qt_processes_events_between_runs(
    loop: QtEventLoop, qapp: QApplication, caplog: pytest.LogCaptureFixture
) -> None:
    steps: list[str] = []

    async def two_steps() -> str:
        steps.append("first")
        await asyncio.sleep(0)
        steps.append("second")
        # what asyncio.wait and the runner's own waits ask for: before 3.14 the step runs
        # without a running loop, and they fail ("no running event loop")
        assert asyncio.get_running_loop() is loop
        return "done"

    assert loop.run_until_complete(asyncio.sleep(0)) is None
    task = loop.create_task(two_steps())  # scheduled while asyncio has no running loop
    waited = QElapsedTimer()
    waited.start()
    while not task.done() and waited.elapsed() < 5000:
        qapp.processEvents()  # what qasync's last round and any Qt event processing do
    assert steps == ["first", "second"]
    assert task.result() == "done"
    assert not [r for r in caplog.records if "is not the running loop" in r.getMessage()]
    assert asyncio.get_event_loop() is loop
