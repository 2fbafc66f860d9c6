"""Greenlet switches as lanes and arrows; shared by the greenlet and gevent models.

greenlet.settrace reports every switch as (origin, target) from inside the target, just after
the switch. Each greenlet becomes a lane the first time it is seen; the main greenlet is the
lane "main". The origin is left in the state its wait implies (`origin_state`, which the
gevent model refines), the target becomes RUNNING at the line it resumes at.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

import greenlet  # type: ignore[import-untyped,unused-ignore]
from greenlet import greenlet as Greenlet  # type: ignore[import-untyped,unused-ignore]

from loopscope.tracer.events import NO_DETAIL, NO_LANE, Code, LaneKind
from loopscope.tracer.models.handoffs import HandoffLanes, ProgramCode, c_handoffs
from loopscope.tracer.models.toolkit import Guard
from loopscope.tracer.recorder import Recorder

__all__ = ["Greenlet", "GreenletTracer"]

# How the last plain switch to a lane arrived: (the frame it resumed in, that frame's
# instruction offset, the source index there, the switch detail, the BLOCKED detail of a lane
# waiting on it). Reused while it resumes at the same place.
Arrival = tuple[Any, int, int, int, int]
# Its fields' names, in order, as tracer/loopscope.h reads them (ARRIVAL_*).
ARRIVAL_FIELDS = ("frame", "offset", "source", "switch_detail", "blocked_detail")
_NO_ARRIVAL: Arrival = (object(), -1, 0, 0, 0)
# A greenlet's key in GreenletTracer.lanes: its plain weak reference
_key = weakref.ref


class GreenletTracer:
    """Records greenlet switches. Subclasses say what greenlets are called and why they wait."""

    # A plain switch is one hand-off: SWITCH, the origin BLOCKED on the target, the target
    # RUNNING. Subclasses that decide states per switch (gevent) set this to False and get
    # every switch through on_switch.
    plain_switches = True
    model = "greenlet"

    def __init__(self, recorder: Recorder, guard: Guard | None = None) -> None:
        self.recorder = recorder
        self.guard = guard if guard is not None else Guard(recorder, self.model)
        self.is_program = ProgramCode()
        # weakref.ref(greenlet) -> its lane. Held weakly, so that a greenlet the program drops
        # while it is parked is killed then (its `finally` runs, its locals die), as untraced,
        # not kept alive to the end of the run. The key is the greenlet's one plain weak
        # reference, which weakref.ref() hands back while the greenlet lives: a lookup finds
        # its row by identity. A dead greenlet's key equals no live greenlet's.
        self.lanes: dict[weakref.ref[Greenlet], int] = {}
        self.handoff_lanes = HandoffLanes(recorder)
        self.names = self.handoff_lanes.names
        self._program_codes: dict[CodeType, bool] = {}
        self._previous_trace: Any = None
        self._unnamed: tuple[str, Greenlet, Greenlet] | None = None
        self._profile_before: Any = None
        self.main_lane = NO_LANE
        # Per lane, indexed by lane id: how the last plain switch to it arrived.
        self._arrivals: list[Arrival] = self.handoff_lanes.table(lambda: _NO_ARRIVAL)

    # -- naming -----------------------------------------------------------------------------

    def describe(self, glet: Greenlet) -> tuple[str, str] | None:
        """(name, kind) of a greenlet's lane, or None if only its first frame can tell."""
        if glet.parent is None:
            return "main", LaneKind.MAIN
        name = getattr(getattr(glet, "run", None), "__name__", None)
        return (name, LaneKind.GREENLET) if name else None

    def parent_lane(self, glet: Greenlet, origin: Greenlet) -> int:
        return self.lanes.get(_key(origin), NO_LANE)

    def known_lane(self, glet: Greenlet) -> int | None:
        """The lane of a greenlet that has one, else None."""
        return self.lanes.get(_key(glet))

    def lane_of(self, glet: Greenlet, origin: Greenlet | None = None,
                name: str = "greenlet") -> int:
        lane = self.lanes.get(_key(glet))
        if lane is None:
            name, kind = self.describe(glet) or (name, LaneKind.GREENLET)
            if kind == LaneKind.GREENLET:
                name = self.handoff_lanes.unique_name(name)
            parent = self.parent_lane(glet, origin) if origin is not None else NO_LANE
            lane = self.lanes[_key(glet)] = self.handoff_lanes.spawn(name, kind, parent, 0)
            self.on_spawn(glet, lane)
        return lane

    def on_spawn(self, glet: Greenlet, lane: int) -> None:
        """A new lane was declared for glet; subclasses set its first state."""

    def start_source(self, glet: Greenlet) -> int:
        """Where a greenlet starts running, when it can still be told."""
        return 0

    # -- switching --------------------------------------------------------------------------

    def switch_detail(self, via: str, target_lane: int) -> int:
        return self.handoff_lanes.via_detail(via)

    def blocked_detail(self, other: int) -> int:
        return self.handoff_lanes.blocked_detail(other)

    def blocked_on(self, lane: int, other: int) -> None:
        self.recorder.record(lane, Code.BLOCKED, other, self.blocked_detail(other))


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
        target_lane = lanes.get(_key(target))
        if target_lane is None and self.describe(target) is None:
            if frame is None:
                self._await_start(event, origin, target)
                return
            # A greenlet started before tracing began: its bottom frame is its function.
            bottom = frame
            while bottom.f_back is not None:
                bottom = bottom.f_back
            target_lane = self.lane_of(target, origin, bottom.f_code.co_name)
        origin_lane = lanes.get(_key(origin))
        if origin_lane is None:
            origin_lane = self.lane_of(origin)
        if target_lane is None:
            target_lane = self.lane_of(target, origin)
        resumed_at = self.start_source(target) if frame is None else self._resume_source(frame)
        self._record_switch(event, origin, origin_lane, target, target_lane, resumed_at)

    def arrival(self, lane: int, frame: FrameType) -> Arrival:
        """How a plain switch to `lane`, resuming in `frame`, is recorded; remembered when the
        frame is the program's own (it resumes at the same line whenever it is at the same
        instruction; above a library frame the program's frame is found by a walk each time).
        """
        try:
            arrival = (frame, frame.f_lasti, self._resume_source(frame),
                       self.switch_detail("switch", lane), self.blocked_detail(lane))
        except Exception as error:
            # The C switch trace records the hand-off it asked about whatever happens: it gets
            # one without detail or source, and the hooks are gone before the next switch.
            self.guard.fail(error)
            return (frame, -1, 0, 0, 0)
        if self._program_codes.get(frame.f_code):
            self._arrivals[lane] = arrival
        return arrival

    def _resume_source(self, frame: FrameType) -> int:
        """Where the program itself resumes: above gevent's (and our own) wait machinery."""
        code = frame.f_code
        program = self._program_codes.get(code)
        if program is None:
            program = self._program_codes[code] = self.is_program(code)
        if program:
            return self.handoff_lanes.source_at(frame)
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
            del self.lanes[_key(origin)]
            self._arrivals[origin_lane] = _NO_ARRIVAL
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
        try:
            self._name_unknown_start(frame)
        except Exception as error:
            self.guard.fail(error)

    def _name_unknown_start(self, frame: FrameType | None = None) -> None:
        assert self._unnamed is not None
        event, origin, target = self._unnamed
        self._unnamed = None
        if frame is None:
            sys.setprofile(self._profile_before)
        name = frame.f_code.co_name if frame is not None else "greenlet"
        origin_lane = self.lanes.get(_key(origin))
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
        fail = self.guard.fail

        def trace(event: str, args: tuple[Greenlet, Greenlet]) -> None:
            if event == "switch" or event == "throw":
                try:
                    on_switch(event, args[0], args[1])
                except Exception as error:
                    fail(error)

        self._previous_trace = greenlet.settrace(
            self._plain_switch_trace() if self.plain_switches else trace)

    def _plain_switch_trace(self) -> Callable[[str, tuple[Greenlet, Greenlet]], None]:
        """The switch callback, with a plain switch between two known live greenlets inline:
        two dict lookups, the arrival found by the resumed frame's identity, one hand-off.
        Anything else (a new or dying greenlet, throw) goes to on_switch. With tracer._handoffs
        built, its C SwitchTrace does the same without a Python call per switch."""
        recorder = self.recorder
        handoff = recorder.handoff
        lanes_get = self.lanes.get
        arrivals = self._arrivals
        arrival_of = self.arrival
        on_switch = self.on_switch
        get_frame = sys._getframe
        blocked = Code.BLOCKED
        fail = self.guard.fail

        def trace(event: str, args: tuple[Greenlet, Greenlet]) -> None:
            try:
                if event == "switch":
                    origin, target = args
                    origin_lane = lanes_get(_key(origin))
                    target_lane = lanes_get(_key(target))
                    # While a new greenlet waits for its name it has no lane, and the next
                    # switch comes from it: that switch goes to on_switch, which names it first.
                    if origin_lane is not None and target_lane is not None and not origin.dead:
                        # the frame that called switch() in the target, where it resumes now
                        try:
                            frame = get_frame(1)
                        except ValueError:
                            on_switch(event, origin, target)
                            return
                        arrival = arrivals[target_lane]
                        if frame is not arrival[0] or frame.f_lasti != arrival[1]:
                            arrival = arrival_of(target_lane, frame)
                        handoff(origin_lane, target_lane, arrival[3], blocked, arrival[4],
                                arrival[2])
                        recorder.current = target_lane
                        return
                    on_switch(event, origin, target)
                elif event == "throw":
                    on_switch(event, args[0], args[1])
            except Exception as error:
                fail(error)

        handoffs = c_handoffs(recorder)
        if handoffs is not None:
            # on_switch reads the resumed frame at a fixed depth below `trace`, so the C
            # callback hands it everything but a plain switch through `trace` itself
            switch_trace: Callable[[str, tuple[Greenlet, Greenlet]], None] = (
                handoffs.SwitchTrace(self, recorder, trace))
            return switch_trace
        return trace

    def uninstall(self) -> None:
        """Removes the switch trace (and a profile hook waiting to name a greenlet)."""
        greenlet.settrace(self._previous_trace)
        if self._unnamed is not None:
            sys.setprofile(self._profile_before)

    def finish(self) -> None:
        """Ends every lane still open (after `uninstall`, when tracing did not detach)."""
        if self._unnamed is not None:
            self._name_unknown_start()
        for key, lane in sorted(self.lanes.items(), key=lambda item: item[1]):
            if lane != self.main_lane:
                glet = key()
                dead = glet is None or glet.dead
                self.recorder.record(lane, Code.END, NO_LANE, self.recorder.detail(
                    ("result", "dead" if dead else "never finished")))
        if self.main_lane != NO_LANE:
            self.recorder.end(self.main_lane)
        self.lanes.clear()
