"""Guessing a script's model from its source."""

from __future__ import annotations

from loopscope.tracer.models import guess_model


def test_coroutines_with_no_event_loop_library_are_hand_driven() -> None:
    trampoline = "async def fib(n):\n    return n\n\ncoro = fib(3)\ncoro.send(None)\n"
    assert guess_model(trampoline) == "generator"
    assert guess_model("import trio\n\nasync def main():\n    pass\n") == "trio"
    assert guess_model("import asyncio\n\nasync def main():\n    pass\n") == "asyncio"
    assert guess_model("print('no concurrency at all')\n") == "asyncio"
