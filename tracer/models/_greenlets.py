"""Greenlet switches as lanes and arrows; shared by the greenlet and gevent models.

greenlet.settrace reports every switch as (origin, target) from inside the target, just after
the switch. Each greenlet becomes a lane the first time it is seen; the main greenlet is the
lane "main". The origin is left in the state its wait implies (`origin_state`, which the
gevent model refines), the target becomes RUNNING at the line it resumes at.
"""

from __future__ import annotations

import sys
from types import CodeType, FrameType
from typing import Any

import greenlet  # type: ignore[import-untyped,unused-ignore]
from greenlet import greenlet as Greenlet  # type: ignore[import-untyped,unused-ignore]

from tracer.events import NO_DETAIL, NO_LANE, Code, LaneKind
from tracer.models.generator_model import ProgramCode
from tracer.recorder import Recorder

__all__ = ["Greenlet", "GreenletTracer"]



class GreenletTracer:
    """Records greenlet switches. Subclasses say what greenlets are called and why they wait."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.is_program = ProgramCode()
        self.lanes: dict[Greenlet, int] = {}
        self.names: dict[int, str] = {}
        self._name_counts: dict[str, int] = {}
        self._switch_details: dict[tuple[str, int], int] = {}
        self._program_codes: dict[CodeType, bool] = {}
        self._sources_at: dict[tuple[CodeType, int], int] = {}
        self._blocked_details: dict[int, int] = {}
        self._previous_trace: Any = None
        self._unnamed: tuple[str, Greenlet, Greenlet] | None = None
        self._profile_before: Any = None
        self.main_lane = NO_LANE

    # -- naming -----------------------------------------------------------------------------

    def describe(self, glet: Greenlet) -> tuple[str, str] | None:
        """(name, kind) of a greenlet's lane, or None if only its first frame can tell."""
        if glet.parent is None:
            return "main", LaneKind.MAIN
        name = getattr(getattr(glet, "run", None), "__name__", None)
        return (name, LaneKind.GREENLET) if name else None

    def parent_lane(self, glet: Greenlet, origin: Greenlet) -> int:
        return self.lanes.get(origin, NO_LANE)

    def lane_of(self, glet: Greenlet, origin: Greenlet | None = None,
                name: str = "greenlet") -> int:
        lane = self.lanes.get(glet)
        if lane is None:
            name, kind = self.describe(glet) or (name, LaneKind.GREENLET)
            if kind == LaneKind.GREENLET:
                count = self._name_counts.get(name, 0) + 1
                self._name_counts[name] = count
                if count > 1:
                    name = f"{name}-{count}"
            parent = self.parent_lane(glet, origin) if origin is not None else NO_LANE
            lane = self.lanes[glet] = self.recorder.spawn(name, kind, parent)
            self.names[lane] = name
            self.on_spawn(glet, lane)
        return lane

    def on_spawn(self, glet: Greenlet, lane: int) -> None:
        """A new lane was declared for glet; subclasses set its first state."""

    def start_source(self, glet: Greenlet) -> int:
        """Where a greenlet starts running, when it can still be told."""
        return 0

    # -- switching --------------------------------------------------------------------------

    def switch_detail(self, via: str, target_lane: int) -> int:
        key = (via, target_lane)
        index = self._switch_details.get(key)
        if index is None:
            index = self._switch_details[key] = self.recorder.detail(("via", via))
        return index

    def blocked_on(self, lane: int, other: int) -> None:
        detail = self._blocked_details.get(other)
        if detail is None:
            detail = self._blocked_details[other] = self.recorder.detail(
                ("on", self.names[other]))
        self.recorder.record(lane, Code.BLOCKED, other, detail)

    def origin_state(self, origin: Greenlet, origin_lane: int, target_lane: int) -> None:
        """The origin stopped running because it switched to the target."""
        self.blocked_on(origin_lane, target_lane)

    def end_state(self, origin: Greenlet, origin_lane: int) -> None:
        # A plain greenlet's return value goes to its parent's switch(), out of our sight.
        self.recorder.record(origin_lane, Code.END, NO_LANE,
                             self.recorder.detail(("result", "returned")))

    def target_running(self, target: Greenlet, target_lane: int, origin_lane: int,
                       resumed_at: int) -> None:
        self.recorder.record(target_lane, Code.RUNNING, NO_LANE, NO_DETAIL, resumed_at)

    def on_switch(self, event: str, origin: Greenlet, target: Greenlet) -> None:
        if self._unnamed is not None:
            self._name_unknown_start()
        # The frame the target resumes in is the one that called switch(); a greenlet that
        # is only starting has none yet.
        try:
            frame: FrameType | None = sys._getframe(2)
        except ValueError:
            frame = None
        lanes = self.lanes
        target_lane = lanes.get(target)
        if target_lane is None and self.describe(target) is None:
            if frame is None:
                self._await_start(event, origin, target)
                return
            # A greenlet started before tracing began: its bottom frame is its function.
            bottom = frame
            while bottom.f_back is not None:
                bottom = bottom.f_back
            target_lane = self.lane_of(target, origin, bottom.f_code.co_name)
        origin_lane = lanes.get(origin)
        if origin_lane is None:
            origin_lane = self.lane_of(origin)
        if target_lane is None:
            target_lane = self.lane_of(target, origin)
        resumed_at = self.start_source(target) if frame is None else self._resume_source(frame)
        self._record_switch(event, origin, origin_lane, target, target_lane, resumed_at)

    def _resume_source(self, frame: FrameType) -> int:
        """Where the program itself resumes: above gevent's (and our own) wait machinery."""
        code = frame.f_code
        program = self._program_codes.get(code)
        if program is None:
            program = self._program_codes[code] = self.is_program(code)
        if program:
            # f_lineno decodes the line table on every read; the offset maps to one line.
            key = (code, frame.f_lasti)
            index = self._sources_at.get(key)
            if index is None:
                index = self._sources_at[key] = self.recorder.source_of(code, frame.f_lineno)
            return index
        resumed: FrameType | None = frame.f_back
        while resumed is not None and not self.is_program(resumed.f_code):
            resumed = resumed.f_back
        resumed = resumed or frame
        return self.recorder.source_of(resumed.f_code, resumed.f_lineno)

    def _record_switch(self, event: str, origin: Greenlet, origin_lane: int, target: Greenlet,
                       target_lane: int, resumed_at: int) -> None:
        recorder = self.recorder
        recorder.record(origin_lane, Code.SWITCH, target_lane,
                        self.switch_detail("switch" if event == "switch" else "throw",
                                           target_lane))
        if origin.dead:
            self.end_state(origin, origin_lane)
            del self.lanes[origin]
        else:
            self.origin_state(origin, origin_lane, target_lane)
        self.target_running(target, target_lane, origin_lane, resumed_at)
        recorder.current = target_lane

    # A plain greenlet forgets its `run` once it starts, and the switch trace comes after the
    # start; so the lane of a greenlet seen for the first time is declared a moment later,
    # from the first Python frame it runs, which is its run function.

    def _await_start(self, event: str, origin: Greenlet, target: Greenlet) -> None:
        self._unnamed = (event, origin, target)
        self._profile_before = sys.getprofile()
        first_frame = self._first_frame

        def profile(frame: FrameType, what: str, arg: Any) -> None:
            if what == "call" and frame.f_back is None:
                first_frame(frame)

        sys.setprofile(profile)

    def _first_frame(self, frame: FrameType) -> None:
        sys.setprofile(self._profile_before)
        self._name_unknown_start(frame)

    def _name_unknown_start(self, frame: FrameType | None = None) -> None:
        assert self._unnamed is not None
        event, origin, target = self._unnamed
        self._unnamed = None
        if frame is None:
            sys.setprofile(self._profile_before)
        name = frame.f_code.co_name if frame is not None else "greenlet"
        origin_lane = self.lanes.get(origin)
        if origin_lane is None:
            origin_lane = self.lane_of(origin)
        target_lane = self.lane_of(target, origin, name)
        resumed_at = (
            self.recorder.source_of(frame.f_code, frame.f_code.co_firstlineno) if frame else 0
        )
        self._record_switch(event, origin, origin_lane, target, target_lane, resumed_at)

    # -- installing -------------------------------------------------------------------------

    def install(self) -> None:
        main = greenlet.getcurrent()
        self.main_lane = self.lane_of(main)
        self.recorder.state(self.main_lane, Code.RUNNING)
        self.recorder.current = self.main_lane
        on_switch = self.on_switch

        def trace(event: str, args: tuple[Greenlet, Greenlet]) -> None:
            if event == "switch" or event == "throw":
                on_switch(event, args[0], args[1])

        self._previous_trace = greenlet.settrace(trace)

    def uninstall(self) -> None:
        greenlet.settrace(self._previous_trace)
        if self._unnamed is not None:
            self._name_unknown_start()
        for glet, lane in sorted(self.lanes.items(), key=lambda item: item[1]):
            if lane != self.main_lane:
                self.recorder.record(lane, Code.END, NO_LANE, self.recorder.detail(
                    ("result", "dead" if glet.dead else "never finished")))
        if self.main_lane != NO_LANE:
            self.recorder.end(self.main_lane)
        self.lanes.clear()
