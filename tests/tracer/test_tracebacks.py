"""The program's tracebacks start at its own code: Loopscope's and runpy's frames left out."""

from __future__ import annotations

import runpy
from pathlib import Path

from loopscope.tracer import tracebacks
from loopscope.tracer.tracebacks import is_harness_file, program_traceback


def _raise_from_script(path: Path) -> BaseException:
    try:
        runpy.run_path(str(path), run_name="__main__")
    except BaseException as exc:  # the test inspects whatever it raised
        return exc
    raise AssertionError("the script did not raise")


def test_a_scripts_traceback_starts_at_the_script(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("def inner():\n    raise ValueError('boom')\n\ninner()\n", encoding="utf-8")
    text = program_traceback(_raise_from_script(script))
    files = [line.split('"')[1] for line in text.splitlines() if line.startswith('  File "')]
    # this test stands where the child would: the frames between it and the script are runpy's
    assert files == [__file__, str(script), str(script)]
    assert text.startswith("Traceback (most recent call last):")
    assert text.rstrip().endswith("ValueError: boom")


def test_chained_exceptions_are_trimmed_too(tmp_path: Path) -> None:
    script = tmp_path / "chained.py"
    script.write_text("try:\n    {}['key']\nexcept KeyError as exc:\n"
                      "    raise RuntimeError('lookup failed') from exc\n", encoding="utf-8")
    text = program_traceback(_raise_from_script(script))
    assert "runpy.py" not in text and "<frozen runpy>" not in text
    assert "The above exception was the direct cause" in text
    assert text.count(f'File "{script}"') == 2


def test_a_bug_raised_inside_loopscope_keeps_its_frames() -> None:
    def harness_bug() -> None:
        raise AttributeError("'coroutine' object has no attribute 'gi_frame'")

    # Pretend the function lives in the tracer: its code's file is a tracer module.
    harness_bug.__code__ = harness_bug.__code__.replace(co_filename=tracebacks.__file__)
    try:
        harness_bug()
    except AttributeError as exc:
        text = program_traceback(exc)
    assert tracebacks.__file__ in text


def test_harness_files() -> None:
    assert is_harness_file(tracebacks.__file__)
    assert is_harness_file(runpy.__file__)
    assert is_harness_file("<frozen runpy>")
    assert not is_harness_file("/home/me/project/app.py")
