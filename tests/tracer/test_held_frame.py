"""The held program's paused frame: its place and local variables, read in the child while
the step gate holds it, sent on the event pipe and checked by the parent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from loopscope.tracer.held_frame import (
    MAX_LOCALS,
    MAX_REPR,
    HeldView,
    held_view,
    held_view_of,
    safe_repr,
)
from loopscope.tracer.runner import Run
from loopscope.tracer.stepping import Stepper
from loopscope.tracer.stream import FrameDecoder, StreamError, encode_held, encode_hello
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


class Chatty:
    def __repr__(self) -> str:
        return "x" * 10_000


def test_reprs_are_short_and_a_raising_repr_is_reported_not_raised() -> None:
    assert safe_repr(Hostile()) == "<Hostile: repr raised RuntimeError>"
    assert len(safe_repr(Chatty())) <= MAX_REPR
    assert len(safe_repr(list(range(10_000)))) <= MAX_REPR
    assert safe_repr("200 OK") == "'200 OK'"


def test_a_frame_of_the_program_is_read_with_its_locals() -> None:
    # This test file is the program's as far as the child's rules go (not a library path).
    item, reply, broken = 3, "200 OK", Hostile()
    view = held_view(7, 2)
    assert view["seq"] == 7 and view["lane"] == 2
    filename, _line, function = view["where"]
    assert filename == __file__ and function.endswith("test_a_frame_of_the_program_is_read_"
                                                       "with_its_locals")
    shown = dict(view["locals"])
    assert shown["item"] == "3" and shown["reply"] == "'200 OK'"
    assert shown["broken"] == "<Hostile: repr raised RuntimeError>"
    assert (item, reply, broken) is not None


def _decoded(view: dict[str, Any]) -> FrameDecoder:
    decoder = FrameDecoder(Trace())
    decoder.feed(encode_hello({"version": 2, "python": None}) + encode_held(view))
    return decoder


def test_the_parent_keeps_the_last_held_view_and_refuses_a_malformed_one() -> None:
    decoder = _decoded({"seq": 4, "lane": 1, "where": ["/p/x.py", 9, "consumer"],
                        "locals": [["item", "1"], ["reply", "''"]]})
    assert decoder.held == HeldView(4, 1, ("/p/x.py", 9, "consumer"),
                                    (("item", "1"), ("reply", "''")))
    for bad in ({"seq": "4", "lane": 1}, {"seq": 4, "lane": 1, "where": ["x", "9", "f"]},
                {"seq": 4, "lane": 1, "locals": [["item", 1]]},
                {"seq": 4, "lane": 1, "locals": [["a", "b"]] * (MAX_LOCALS + 1)}):
        with pytest.raises(StreamError):
            _decoded(bad)
    with pytest.raises(ValueError):
        held_view_of({"seq": True, "lane": 0})


def test_a_stepped_child_sends_the_consumers_locals_when_held_in_it() -> None:
    async def step() -> list[HeldView]:
        run = Run(resolve_target("producer-consumer"), paused=True)
        stepper = Stepper(run)
        await run.start()
        views = []
        try:
            for _ in range(16):
                if await stepper.step("step") is None:
                    break
                view = run.held_view
                assert view is not None and view.seq == len(run.trace)
                views.append(view)
            await stepper.resume()
            result = await run.wait(30)
            assert result.ok, result.error
        finally:
            run.kill()
        return views

    views = asyncio.run(step())
    in_consumer = [view for view in views if view.where and view.where[2] == "consumer"]
    assert in_consumer, "never held inside the consumer"
    assert any(dict(view.locals).get("item") == "1" for view in in_consumer)
    in_producer = [view for view in views if view.where and view.where[2] == "produce"]
    assert any("worker" in dict(view.locals) for view in in_producer)
