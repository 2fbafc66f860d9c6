"""Generator coroutines: every send()/next()/yield hand-off becomes a SWITCH between two lanes.

Each generator created by the traced program is a lane (kind "generator", named after its
function); the code that drives it is the lane of the nearest generator up the call stack, or
the program's main flow (kind "main", named after the function that first drove a generator).
An `async def` coroutine awaited by a followed coroutine is a call in its awaiter's lane until
it first suspends, and a lane from then on (GeneratorTracer.calls, _promote).
The program's code is not changed: on 3.12+ sys.monitoring reports generator starts, resumes,
yields and returns, restricted to the program's own code objects. On 3.11, with the C hooks
built, the frame evaluation hook follows generator frames (falling back to a C trace
function); without them sys.settrace does, with line events switched off in generator frames
(docs/architecture.md, "How generators are followed"). Everything but a plain hand-off goes
to GeneratorTracer under the model's guard (tracer.models.toolkit).

What was sent and how (send/next/close/throw) is read from the driver's call site: the
bytecode at the driver's current instruction names the method, and a call with one plain
argument (a local, global or constant) lets us read the value handed over.
"""

from __future__ import annotations

import contextlib
import dis
import importlib.util
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, FrameType
from typing import Any, NamedTuple

from loopscope.tracer.events import NO_DETAIL, NO_LANE, Code, LaneKind, short_repr
from loopscope.tracer.models._plain_loads import (
    READ_CONSTANT,
    READ_NAME,
    plain_loads,
    read_kind,
)
from loopscope.tracer.models.handoffs import HandoffLanes, ProgramCode, c_handoffs
from loopscope.tracer.models.toolkit import Guard, instrumented
from loopscope.tracer.naming import past_wrappers
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.threads import os_thread_ident

CO_GENERATOR = 0x20
CO_COROUTINE = 0x80
# The frames followed: generators, and `async def` coroutines, which a program may drive by
# hand with send() (a trampoline) exactly as it drives generators.
FOLLOWED_FLAGS = CO_GENERATOR | CO_COROUTINE
_MISSING = object()
_VIA_METHODS = frozenset({"send", "throw", "close"})


class ValueRead(NamedTuple):
    """How to read, from the driver's frame, the one plain argument its call site hands over.

    A tuple so that the C hooks read its fields without attribute lookups; calling it is the
    pure-Python read (the C hooks call it too for kinds they do not read themselves).
    """

    kind: int
    operand: Any  # the constant, or the variable's name
    slot: int  # the variable's index among the frame's fast locals (READ_LOCAL, READ_CELL)

    def __call__(self, frame: FrameType) -> Any:
        if self.kind == READ_CONSTANT:
            return self.operand
        if self.kind == READ_NAME:
            for namespace in (frame.f_locals, frame.f_globals, frame.f_builtins):
                if self.operand in namespace:
                    return namespace[self.operand]
            return _MISSING
        return frame.f_locals.get(self.operand, _MISSING)


ValueGetter = ValueRead | None
# Its fields' names, in order: tracer/loopscope.h reads them by the same names (VALUE_READ_*).
VALUE_READ_FIELDS = ValueRead._fields
# (via, how to read the value handed over, whether the instruction is a `yield from` / `await`
# passing its driver's send on to its delegate)
CallSite = tuple[str, ValueGetter, bool]


# -- reading the driver's call site ---------------------------------------------------------


def _value_getter(instruction: dis.Instruction, code: CodeType) -> ValueGetter:
    kind = read_kind(instruction, code)
    if kind is None:
        return None
    if kind in (READ_CONSTANT, READ_NAME):
        return ValueRead(kind, instruction.argval, -1)
    slot = instruction.arg if instruction.arg is not None else -1
    return ValueRead(kind, instruction.argval, slot)


def _call_site(code: CodeType, offset: int) -> CallSite:
    """(via, how to read the value handed over) for the instruction the driver is executing."""
    instructions = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    index = max((n for n, i in enumerate(instructions) if i.offset <= offset), default=-1)
    if index < 0:
        return "next", None, False
    current = instructions[index]
    if current.opname == "SEND":
        return "send", None, True  # `yield from` / `await` passing on what its driver sent
    if not current.opname.startswith("CALL"):
        return "next", None, False  # FOR_ITER and friends
    found = _callable_load(instructions, index)
    if found is None:
        return "next", None, False
    position, first_argument = found
    callable_load = instructions[position]
    attribute = callable_load.argval
    if callable_load.opname in plain_loads().method_loads and attribute in _VIA_METHODS:
        getter: ValueGetter = None
        if (current.arg or 0) == 1 and first_argument == position + 1:
            getter = _value_getter(instructions[first_argument], code)
        return attribute, getter, False
    return "next", None, False


def _callable_load(instructions: list[dis.Instruction], index: int) -> tuple[int, int] | None:
    """For the CALL at `index`: (the position of the instruction that loaded the callable,
    the position of its first argument's load), or None when the stack cannot be followed."""
    argc = instructions[index].arg or 0
    prefixes = plain_loads().call_prefixes
    position = index - 1
    while position >= 0 and instructions[position].opname in prefixes:
        position -= 1
    first_argument = position
    remaining = argc
    while remaining > 0 and position >= 0:
        instruction = instructions[position]
        try:
            remaining -= dis.stack_effect(instruction.opcode, instruction.arg, jump=False)
        except ValueError:
            return None
        position -= 1
    if position < 0:
        return None
    return position, first_argument


def steps_through(code: CodeType, offset: int) -> bool:
    """Whether the instruction at `offset` takes one item at a time from a generator: a for
    loop, `yield from`, or a call of next(), send(), throw() or close(). Not so for a call
    that consumes a whole generator at once (sum(), list(), gather(*...)) or an unpacking."""
    instructions = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    index = max((n for n, i in enumerate(instructions) if i.offset <= offset), default=-1)
    if index < 0:
        return False
    current = instructions[index]
    if current.opname in ("FOR_ITER", "SEND"):
        return True
    if not current.opname.startswith("CALL") or current.opname == "CALL_FUNCTION_EX":
        return False
    found = _callable_load(instructions, index)
    if found is None:
        return False
    callable_load = instructions[found[0]]
    if callable_load.opname in plain_loads().method_loads:
        return callable_load.argval in _VIA_METHODS
    return bool(callable_load.argval == "next")


def _generator_start(code: CodeType) -> int:
    """The offset of the RESUME where a generator's body starts: the first one after
    RETURN_GENERATOR (3.15 runs a RESUME and the genexpr's GET_ITER before it). A throw into
    a generator that has not started comes at an earlier offset, any resume or throw after a
    yield at a later one."""
    made = False
    first_resume = None
    for instruction in dis.get_instructions(code):
        if instruction.opname == "RETURN_GENERATOR":
            made = True
        elif instruction.opname == "RESUME":
            if made:
                return instruction.offset
            if first_resume is None:
                first_resume = instruction.offset
    return first_resume or 0


def _passing_yields(code: CodeType) -> dict[int, int]:
    """For each `yield from` / `await` of `code`: the offset of the YIELD_VALUE that passes its
    delegate's values up, and of the RESUME right after it, where the frame resumes to pass
    its driver's send on down (RESUME's argument says "after yield from" or "after await")."""
    found: dict[int, int] = {}
    previous: dis.Instruction | None = None
    for instruction in dis.get_instructions(code):
        if instruction.opname == "CACHE":
            continue
        if (instruction.opname == "RESUME" and (instruction.arg or 0) & 3 in (2, 3)
                and previous is not None and previous.opname == "YIELD_VALUE"
                and instruction.offset == previous.offset + 2):
            found[previous.offset] = instruction.offset
        previous = instruction
    return found


class LaneCode(NamedTuple):
    """What a generator's code tells about each of its lanes (a tuple: the C hooks read its
    fields by position, LANE_CODE_* in tracer/loopscope.h)."""

    start: int  # the offset of the RESUME where its body starts (_generator_start)
    source: int  # the source index of its first line, where its lanes are spawned
    # the source index of each offset its frames resume at: where a frame resumes depends on
    # its code only, so every lane of the code shares this table (tracer.resume_sources)
    resume_sources: dict[int, int]
    # Where a lane passes values through its `yield from` / `await` (_passing_yields): a
    # resume there that goes on to a delegate lane records nothing (the delegate's resume
    # does), so on 3.12+ sys.monitoring switches that location's PY_RESUME off; unless a lane
    # has yielded there with no delegate lane (a list, a library generator), which keeps it
    # (passing_resumes: those RESUME offsets; kept_resumes: the ones kept).
    passing_yields: dict[int, int]
    passing_resumes: frozenset[int]
    kept_resumes: set[int]


# Its fields' names, in order (tests/tracer/test_c_contract.py holds them to loopscope.h).
LANE_CODE_FIELDS = LaneCode._fields


# How a lane was last resumed, reused while its driver resumes it from the same frame and
# instruction (a send() in a loop): (driver frame, driver instruction offset or -1 when the
# site must be looked up again, driver lane, value getter, switch detail without a value,
# how it was resumed ("send", "next"), driver's BLOCKED detail, lane's BLOCKED detail, source the
# driver resumes at).
#
# A driver that is a plain function called afresh for every hand-off (a scheduler's
# `step(task)` that calls `task.send()`) has a new frame each time; its site then also matches
# on (the driver's code, the frame that called the driver): the same instruction of the same
# function, called from the same frame, resumes from the same driver lane. The last two
# fields hold those, or a sentinel that matches nothing when only the frame itself may match.
Site = tuple[Any, int, int, ValueGetter, int, str, int, int, int, Any, Any]
# Its fields' names, in order: tracer/loopscope.h reads them by the same names (SITE_*), and
# tests/tracer/test_c_contract.py holds the two together.
SITE_FIELDS = ("driver_frame", "driver_offset", "driver_lane", "value_read", "switch_detail",
               "via", "driver_blocked", "lane_blocked", "driver_source", "driver_code",
               "driver_caller")
_NOTHING = object()
_NO_SITE: Site = (_NOTHING, -1, NO_LANE, None, NO_DETAIL, "", NO_DETAIL, NO_DETAIL, 0,
                  _NOTHING, _NOTHING)


class CachedValue(NamedTuple):
    """The last value handed to or by a lane and the detail it got: only values whose repr
    cannot change are kept, so an identity match means the same detail."""

    value: object
    via: str
    detail: int


# Its fields' names, in order: tracer/loopscope.h reads them by the same names (CACHED_*).
CACHED_FIELDS = CachedValue._fields
ValueCache = CachedValue | None

# A hand-off passing down a chain of `yield from` / `await` is recorded once, from the driver
# of the outermost generator to the innermost one; the generators in between stay BLOCKED on
# their delegate (docs/architecture.md, "Delegation"). While the resume travels down the chain,
# tracer.pending holds the hand-off not yet recorded: the lane expected to resume next (NO_LANE
# when nothing is pending), the driver, the outermost lane, the switch detail, the driver's
# BLOCKED detail and the source the outermost lane resumes at. Its fields' names, in order:
# tracer/loopscope.h reads them by the same names (PENDING_*).
PENDING_FIELDS = ("expected_lane", "driver_lane", "outer_lane", "switch_detail",
                  "driver_blocked", "outer_source")
_NO_PENDING = (NO_LANE, NO_LANE, NO_LANE, NO_DETAIL, NO_DETAIL, 0)
# Types whose repr never changes for a given object. (It can raise: an int too long to print
# under sys.set_int_max_str_digits; the hot paths fall back to short_repr then.)
STABLE_REPR_TYPES = frozenset({str, int, float, bool, bytes, complex, type(None)})
REPR_LIMIT = 40  # short_repr's default
# generators, coroutines, async generators: frames that a later resume may call from elsewhere
_SUSPENDABLE_FLAGS = 0x20 | 0x80 | 0x100 | 0x200


class Host(NamedTuple):
    """Another model the generators are followed beside (asyncio, gevent)."""

    # The lane of that model whose code runs now (a task, a greenlet): it drives the
    # generators no generator lane drives. NO_LANE while the model runs its own code (a
    # loop's callbacks); the main lane drives them then.
    lane: Callable[[], int]
    # A lane's name, for what a generator that yields back to it is blocked on.
    name: Callable[[int], str]


class GeneratorTracer:
    """Turns generator resumes, yields and returns into lanes, switches and states.

    The backends handle the common hand-off (a lane resumed from the same call site as last
    time, or yielding) inline, from the per-lane tables below; everything else comes here.
    """

    def __init__(self, recorder: Recorder, is_program: Callable[[CodeType], bool],
                 host: Host | None = None, followed_flags: int = FOLLOWED_FLAGS) -> None:
        self.recorder = recorder
        self.host = host
        self.followed_flags = followed_flags
        # Beside another model, generator expressions that a call consumes whole (sum(...),
        # gather(*(...))) are one loop, not hand-offs: their code is left alone from then on.
        self.one_shot_codes: set[CodeType] = set()
        self.is_program: Callable[[CodeType], bool] = (
            is_program if host is None
            else lambda code: code not in self.one_shot_codes and is_program(code))
        self.lanes: dict[FrameType, int] = {}
        self.handoff_lanes = HandoffLanes(recorder, blocked_rows=True)
        self.names = self.handoff_lanes.names
        self.main_lane = NO_LANE
        # Per lane, indexed by lane id: how it was last resumed, the last values handed to it
        # and by it, and its source index per resume offset. Where a frame resumes depends
        # on its code only, so every lane of one code shares that code's table (set when the
        # lane is spawned): a new lane finds its resume sources known already.
        table = self.handoff_lanes.table
        self.sites: list[Site] = table(lambda: _NO_SITE)
        self.sent_values: list[ValueCache] = table(lambda: None)
        self.yielded_values: list[ValueCache] = table(lambda: None)
        self.resume_sources: list[dict[int, int] | None] = table(lambda: None)
        # Per lane: the lane it delegates to with `yield from` / `await` (or NO_LANE), and the
        # lane delegating to it; and the hand-off passing down a delegation chain
        # (PENDING_FIELDS), mutated in place because the C hooks hold it too.
        self.delegates: list[int] = table(lambda: NO_LANE)
        self.delegators: list[int] = table(lambda: NO_LANE)
        self.pending: list[int] = list(_NO_PENDING)
        # The base of every yielded value's row (tracer.values): {"via": "yield"}.
        self.yield_detail = self.handoff_lanes.via_detail("yield")
        # Per code object, keyed by id(code) (handoff_lanes.codes keeps them alive): the call
        # site at each instruction, and a generator's code's LaneCode.
        self._codes = self.handoff_lanes.codes
        self._call_sites: dict[tuple[int, int], CallSite] = {}
        self._lane_codes: dict[int, LaneCode] = {}
        # The last non-generator frame that drove a generator, and its lane: a loop driving
        # a generator asks about the same frame every time.
        self._last_caller: FrameType | None = None
        self._last_driver = NO_LANE
        self._closing: set[int] = set()
        # Coroutines awaited by a followed coroutine that have not suspended yet: a call in
        # their awaiter's lane, not a lane (as in asyncio, where an awaited coroutine runs in
        # its task). One that suspends becomes a lane then (_promote); most return first.
        self.calls: dict[FrameType, bool] = {}
        self._pending_close: dict[int, FrameType] = {}
        # By id(code), the program's followed codes that a backend has seen start and set up
        # (3.13's close watch), with their LaneCode (self._codes holds the code): the C hooks
        # take a new frame of one of these without asking the backend again. Alone only:
        # beside another model a code may become one-shot later.
        self.started_codes: dict[int, LaneCode] = {}
        # A lane's site before its first resume and after its end (tracer/_generator_hooks.c
        # starts and ends lanes too: lane_start and lane_end, the twins of _resumed and _end).
        self.no_site = _NO_SITE
        # Set by a backend whose delegators may not report their resumes where they only pass
        # a send on down (MonitoringBackend, LaneCode.passing_resumes): a delegate resuming
        # through them then takes their part (hot_paths' chain_resume, _pass_down), with the
        # backend's common resume path (hot_paths), kept here for that.
        self.quiet_delegators = False
        self.hot_resume: Callable[[FrameType, int, int], bool] | None = None

    def code_started(self, code: CodeType) -> None:
        """A backend has seen `code`, a followed code of the program, start."""
        if self.host is None:
            self.started_codes[id(code)] = self._lane_code(code)

    # -- lanes ------------------------------------------------------------------------------

    def _new_lane(self, name: str, kind: str, parent: int, source: int) -> int:
        return self.handoff_lanes.spawn(name, kind, parent, source)

    def _ensure_main(self, frame: FrameType | None) -> int:
        if self.main_lane == NO_LANE:
            # named after the program's own function that drives it: neither a decorator's
            # wrapper (a @coroutine's priming `start`) nor library code (multiprocessing's
            # map consuming the program's generator)
            named = past_wrappers(frame)
            while named is not None and not self.is_program(named.f_code):
                named = past_wrappers(named.f_back)
            name = named.f_code.co_name if named is not None else "main"
            if name.startswith("<"):
                name = "main"
            source = self._source(frame)
            self.main_lane = self._new_lane(name, LaneKind.MAIN, NO_LANE, source)
            self.recorder.state(self.main_lane, Code.RUNNING, source=source)
        return self.main_lane

    def _driver_of(self, frame: FrameType) -> tuple[int, FrameType | None]:
        lanes = self.lanes
        caller = frame.f_back
        immediate = caller
        if caller is not None and caller is self._last_caller:
            return self._last_driver, caller
        while caller is not None:
            lane = lanes.get(caller)
            if lane is not None:
                return lane, immediate
            caller = caller.f_back
        lane = self._host_or_main(immediate)
        self._last_caller, self._last_driver = immediate, lane
        return lane, immediate

    def _host_or_main(self, frame: FrameType | None) -> int:
        """The driver of a generator no generator lane drives: the other model's running lane
        (a task, a greenlet) when there is one, else the main lane."""
        if self.host is not None:
            lane = self.host.lane()
            if lane != NO_LANE:
                if lane not in self.names:
                    self.names[lane] = self.host.name(lane)
                return lane
        return self._ensure_main(frame)

    def _consumed_whole(self, frame: FrameType, driver_frame: FrameType | None) -> bool:
        """Beside another model: a generator expression that a call consumes at once."""
        code = frame.f_code
        if (self.host is None or code.co_name != "<genexpr>" or driver_frame is None
                or driver_frame in self.lanes):
            return False
        if steps_through(driver_frame.f_code, driver_frame.f_lasti):
            return False
        self.one_shot_codes.add(code)
        return True

    def _lane_code(self, code: CodeType) -> LaneCode:
        facts = self._lane_codes.get(id(code))
        if facts is None:
            self._codes[id(code)] = code
            passing = _passing_yields(code)
            facts = self._lane_codes[id(code)] = LaneCode(
                _generator_start(code), self.recorder.source_of(code, code.co_firstlineno), {},
                passing, frozenset(passing.values()), set())
        return facts

    def _spawn_generator(self, frame: FrameType, driver: int) -> int:
        code = frame.f_code
        name = self.handoff_lanes.unique_name(code.co_name)
        facts = self._lane_code(code)
        lane = self._new_lane(name, LaneKind.GENERATOR, driver, facts.source)
        self.lanes[frame] = lane
        self.resume_sources[lane] = facts.resume_sources
        return lane

    def _source(self, frame: FrameType | None) -> int:
        return 0 if frame is None else self.handoff_lanes.source_at(frame)

    def resume_source(self, lane: int, frame: FrameType) -> int:
        """The source index of where the lane's frame resumes, cached per instruction."""
        index = self._source(frame)
        sources = self.resume_sources[lane]
        if sources is not None:
            sources[frame.f_lasti] = index
        return index

    def _blocked_detail(self, other: int) -> int:
        return self.handoff_lanes.blocked_detail(other)

    # -- hand-offs --------------------------------------------------------------------------

    def resumed(self, frame: FrameType, via: str | None = None) -> bool:
        """The generator whose frame this is starts or resumes running (the general case).

        False when the frame is not followed: a generator this tracer did not see start.
        """
        lane = self.lanes.get(frame)
        if lane is None:
            # (inline, as every coroutine a program awaits comes here once)
            code = frame.f_code
            facts = self._lane_codes.get(id(code))
            if facts is None:
                facts = self._lane_code(code)
            if frame.f_lasti > facts[0]:
                # Past its start: it began running before this tracer was installed (left
                # over by earlier code in the same process). Its resumes are not the traced
                # program's hand-offs, and neither is its close: the collector finalises such
                # leftovers whenever it happens to run, from whatever frame is executing (an
                # importlib one, while the program's module is imported), which would
                # otherwise become its driver and name the main lane.
                return False
            if self.host is not None and self._consumed_whole(frame, frame.f_back):
                return False
            if via is None and code.co_flags & CO_COROUTINE:
                # awaited by a lane or by such a call: it runs as a call in its awaiter
                # until it first suspends (_promote)
                caller = frame.f_back
                if caller is not None and (caller in self.lanes or caller in self.calls):
                    site = self._call_sites.get((id(caller.f_code), caller.f_lasti))
                    if site is None:
                        site = self._site_of(caller)
                    if site[2]:
                        self.calls[frame] = True
                        return True
        elif (via is None and self.quiet_delegators and self.delegators[lane] != NO_LANE
              and self.pending[0] != lane):
            self._pass_down(frame, lane)
        return self._resumed(frame, lane, via)

    def _pass_down(self, frame: FrameType, lane: int) -> None:
        """`lane` resumes inside the delegation chain its delegators form. Their own resumes,
        which passed the send on down to it, may not have been reported (MonitoringBackend
        switches them off): take them now, outermost first, as they would have come -- each
        delegator whose frame is on the stack above this one, up to the lane a pending
        hand-off expects."""
        chain: list[tuple[FrameType, int]] = []
        expected = self.pending[0]
        above, delegator = frame.f_back, self.delegators[lane]
        while delegator != NO_LANE and above is not None and self.lanes.get(above) == delegator:
            chain.append((above, delegator))
            if delegator == expected or len(chain) > len(self.delegators):
                break
            above, delegator = above.f_back, self.delegators[delegator]
        hot_resume = self.hot_resume
        for passing_frame, passing_lane in reversed(chain):
            if hot_resume is None or not hot_resume(passing_frame, passing_lane,
                                                    passing_frame.f_lasti):
                self._resumed(passing_frame, passing_lane, None)

    def _promote(self, frame: FrameType) -> int:
        """A coroutine that ran as a call in its awaiter suspends: it becomes a lane now, and
        so does every call awaiting it up to the nearest lane, outermost first, each started
        from its awaiter as the lane it would have been from its start."""
        chain = [frame]
        caller = frame.f_back
        while caller is not None and caller in self.calls:
            chain.append(caller)
            caller = caller.f_back
        lane = NO_LANE
        for call in reversed(chain):
            del self.calls[call]
            self._resumed(call, None, None)
            lane = self.lanes[call]
        return lane

    def _resumed(self, frame: FrameType, lane: int | None, via: str | None) -> bool:
        if self.pending[0] != NO_LANE and self.pending[0] != lane:
            self._flush_pending()
        if lane is None and self.calls:
            # started by a coroutine running as a call (or by code it calls): that coroutine
            # drives a lane now, so it is one from here on
            caller = frame.f_back
            while caller is not None and caller not in self.lanes:
                if caller in self.calls:
                    self._promote(caller)
                    break
                caller = caller.f_back
        driver, driver_frame = self._driver_of(frame)
        if lane is None:
            lane = self._spawn_generator(frame, driver)
        value: Any = _MISSING
        getter: ValueGetter = None
        delegating = False
        # Who the hand-off comes from: the driver, or -- for a throw or close that delegators
        # pass down their `yield from` without running (3.11 links their frames all the same)
        # -- whoever threw into or closed the outermost of them.
        origin, origin_frame, outermost = driver, driver_frame, lane
        if driver_frame is not None:
            site_via, getter, delegating = self._site_of(driver_frame)
            while origin_frame is not None and (not delegating or via in ("throw", "close")):
                delegator = self.lanes.get(origin_frame)
                if delegator is None or self.delegates[delegator] != outermost:
                    break
                outermost, origin_frame = delegator, origin_frame.f_back
                site_via, getter, delegating = (
                    self._site_of(origin_frame) if origin_frame is not None
                    else ("next", None, False))
            if origin_frame is not driver_frame:
                origin = self._lane_of(origin_frame) if origin_frame is not None else driver
                delegating = False
                if site_via not in ("throw", "close"):  # the thrower's frame is not at the call
                    site_via, getter = "throw", None
            if via is None or site_via in ("close", "throw"):
                via = site_via
            if getter is not None and origin_frame is not None:
                value = getter(origin_frame)
        elif via is None:
            via = "next"
        if via == "close":
            self._closing.add(lane)
        recorder = self.recorder
        plain_detail = self.handoff_lanes.via_detail(via)
        if value is _MISSING:
            detail = plain_detail
        else:
            detail = self.value_detail(value, via, self.sent_values, lane)
        # The next resume from this very instruction of this very frame comes from the same
        # driver lane, unless the driver frame is a suspendable one that is not a lane (its
        # callers change between its own resumes); close and throw are rare enough to redo.
        driver_is_lane = driver_frame is not None and driver_frame in self.lanes
        reusable = (
            driver_frame is not None and via in ("send", "next")
            and (driver_is_lane or not driver_frame.f_code.co_flags & _SUSPENDABLE_FLAGS)
        )
        # The caller must itself keep its callers while it lives: a lane, or a plain function
        # (a generator that is not a lane may be resumed from elsewhere between hand-offs).
        caller = driver_frame.f_back if reusable and driver_frame is not None else None
        by_caller = caller is not None and not driver_is_lane and (
            caller in self.lanes or not caller.f_code.co_flags & _SUSPENDABLE_FLAGS)
        lane_blocked = self._blocked_detail(lane)
        self.sites[lane] = (
            driver_frame if reusable else _NOTHING,
            driver_frame.f_lasti if reusable and driver_frame is not None else -1,
            driver, getter, plain_detail, via,
            lane_blocked, self._blocked_detail(driver), self._source(driver_frame),
            driver_frame.f_code if by_caller and driver_frame is not None else _NOTHING,
            caller if by_caller else _NOTHING,
        )
        if driver_is_lane and delegating:
            self._delegate(driver, lane)
        elif via in ("send", "next") and origin_frame is driver_frame:
            self._undelegate(lane)  # driven directly now, not through its delegator
        source = self.resume_source(lane, frame)
        pending = self.pending
        delegate = self.delegates[lane] if via in ("send", "next") else NO_LANE
        if pending[0] == NO_LANE:
            if delegate != NO_LANE:
                pending[:] = (delegate, driver, lane, detail, lane_blocked, source)
                return True
            recorder.handoff(origin, lane, detail, Code.BLOCKED,
                             lane_blocked if outermost == lane
                             else self._blocked_detail(outermost), source)
        elif delegate != NO_LANE:
            pending[0] = delegate
            return True
        else:
            recorder.handoff(pending[1], lane, pending[3], Code.BLOCKED, pending[4], source)
            pending[0] = NO_LANE
        recorder.current = lane
        return True

    def _site_of(self, frame: FrameType) -> CallSite:
        code = frame.f_code
        key = (id(code), frame.f_lasti)
        site = self._call_sites.get(key)
        if site is None:
            self._codes[key[0]] = code
            site = self._call_sites[key] = _call_site(code, key[1])
        return site

    # -- delegation -------------------------------------------------------------------------

    def _delegate(self, delegator: int, lane: int) -> None:
        """`delegator` is suspended in `yield from` / `await` of `lane`."""
        delegates, delegators = self.delegates, self.delegators
        old = delegates[delegator]
        if old != NO_LANE and old != lane and delegators[old] == delegator:
            delegators[old] = NO_LANE
        previous = delegators[lane]
        if previous != NO_LANE and previous != delegator and delegates[previous] == lane:
            delegates[previous] = NO_LANE
        delegates[delegator] = lane
        delegators[lane] = delegator

    def _undelegate(self, lane: int) -> None:
        """`lane` is no longer the delegate of the lane that delegated to it."""
        delegator = self.delegators[lane]
        if delegator != NO_LANE:
            if self.delegates[delegator] == lane:
                self.delegates[delegator] = NO_LANE
            self.delegators[lane] = NO_LANE

    def _outermost(self, lane: int) -> int:
        """The outermost lane of the delegation chain `lane` is in: whoever drives that one
        receives what `lane` yields."""
        delegators = self.delegators
        while delegators[lane] != NO_LANE:
            lane = delegators[lane]
        return lane

    def _flush_pending(self) -> None:
        """A hand-off was passing down a delegation chain but something else happened first:
        record it as far as it got, the driver resuming the outermost lane."""
        pending = self.pending
        if pending[0] == NO_LANE:
            return
        self.recorder.handoff(pending[1], pending[2], pending[3], Code.BLOCKED, pending[4],
                              pending[5])
        self.recorder.current = pending[2]
        pending[0] = NO_LANE

    def value_detail(self, value: object, via: str, cache: list[ValueCache], lane: int) -> int:
        """The detail index of a switch handing `value` over; remembered for the next one."""
        if value is _MISSING:
            return self.handoff_lanes.via_detail(via)
        detail = self.recorder.value_row(self.handoff_lanes.via_detail(via),
                                         short_repr(value, REPR_LIMIT))
        if type(value) in STABLE_REPR_TYPES:
            cache[lane] = CachedValue(value, via, detail)
        return detail

    def yielded(self, frame: FrameType, value: object) -> None:
        lane = self.lanes.get(frame)
        if lane is None:
            if frame not in self.calls:
                return
            self._flush_pending()
            lane = self._promote(frame)
        self._flush_pending()
        if self.delegates[lane] != NO_LANE:
            return  # passing its delegate's value up: recorded when the delegate yielded it
        cached = self.yielded_values[lane]
        if cached is not None and cached[0] is value:
            detail = cached[2]
        else:
            detail = self.value_detail(value, "yield", self.yielded_values, lane)
        site = self.sites[self._outermost(lane)]
        driver = site[2] if site[2] != NO_LANE else self.main_lane
        self.recorder.handoff(lane, driver, detail, Code.BLOCKED, self._blocked_detail(driver),
                              site[8])
        self.recorder.current = driver

    def finished(self, frame: FrameType, result: object = None,
                 error: BaseException | None = None) -> None:
        lane = self.lanes.pop(frame, None)
        if lane is None:
            self.calls.pop(frame, None)  # a call returning: nothing to record
            return
        self._flush_pending()
        self._end(lane, result, error)

    def close_called(self, generator: types.GeneratorType[Any, Any, Any]) -> None:
        """The driver is calling close(); Python 3.13+ may finish it without resuming it."""
        frame = generator.gi_frame
        if frame is not None and frame in self.lanes:
            self._pending_close[id(generator)] = frame

    def close_returned(self, generator: types.GeneratorType[Any, Any, Any],
                       driver_frame: FrameType) -> None:
        frame = self._pending_close.pop(id(generator), None)
        lane = self.lanes.pop(frame, None) if frame is not None else None
        if lane is None:
            return  # close() resumed it, and the resume/unwind events told the story
        self._flush_pending()
        driver = self._lane_of(driver_frame)
        self.sites[lane] = (_NOTHING, -1, driver, None, NO_DETAIL, "close", NO_DETAIL,
                            NO_DETAIL, self._source(driver_frame), _NOTHING, _NOTHING)
        self.recorder.record(driver, Code.SWITCH, lane, self.handoff_lanes.via_detail("close"))
        self._end(lane, None, GeneratorExit())

    def _lane_of(self, frame: FrameType) -> int:
        caller: FrameType | None = frame
        while caller is not None:
            lane = self.lanes.get(caller)
            if lane is not None:
                return lane
            caller = caller.f_back
        return self._host_or_main(frame)

    def _end(self, lane: int, result: object, error: BaseException | None) -> None:
        recorder = self.recorder
        site = self.sites[lane]
        # the lane is over: drop what it holds on to (its driver's frame, its last values)
        self.sites[lane] = _NO_SITE
        self.sent_values[lane] = self.yielded_values[lane] = None
        self._undelegate(lane)
        delegate = self.delegates[lane]
        if delegate != NO_LANE:
            self.delegators[delegate] = NO_LANE
            self.delegates[lane] = NO_LANE
        driver = site[2] if site[2] != NO_LANE else self.main_lane
        closing = lane in self._closing
        self._closing.discard(lane)
        if isinstance(error, GeneratorExit) or (closing and error is None and result is None):
            recorder.record(lane, Code.END, NO_LANE, recorder.detail(("result", "closed")))
        elif isinstance(error, StopIteration):
            recorder.end(lane, result=error.value)
        else:
            recorder.end(lane, result, error)
        if driver != NO_LANE:
            recorder.record(driver, Code.RUNNING, NO_LANE, NO_DETAIL, site[8])
            recorder.current = driver

    def finish(self) -> None:
        """The run is over: lanes still open end here (suspended generators never finished)."""
        self._flush_pending()
        self.calls.clear()
        for lane in sorted(set(self.lanes.values())):
            self.recorder.record(lane, Code.END, NO_LANE,
                                 self.recorder.detail(("result", "never finished")))
        self.lanes.clear()
        if self.main_lane != NO_LANE:
            self.recorder.end(self.main_lane)



def hot_paths(tracer: GeneratorTracer) -> tuple[Callable[[FrameType, int, int], bool],
                                                Callable[[int, object], bool]]:
    """(resume, yield_): the common hand-offs, which both backends' callbacks run inline.

    resume(frame, lane, offset) records a lane resumed from the same call site as last time;
    yield_(lane, value) a lane yielding. Each returns False for anything unusual, which the
    caller hands to the tracer. Everything they need is a local, a list indexed by lane or a
    dict lookup; tracer/_generator_hooks.c is their C twin.
    """
    recorder = tracer.recorder
    handoff = recorder.handoff
    value_row = recorder.value_row
    yield_detail = tracer.yield_detail
    sites = tracer.sites
    sent_values = tracer.sent_values
    yielded_values = tracer.yielded_values
    resume_sources = tracer.resume_sources
    delegates = tracer.delegates
    delegators = tracer.delegators
    pending = tracer.pending
    resume_source = tracer.resume_source
    lanes_get = tracer.lanes.get
    quiet_delegators = tracer.quiet_delegators
    blocked = Code.BLOCKED
    no_lane = NO_LANE

    def value_detail(value: object, base: int, via: str, cache: list[ValueCache],
                     lane: int) -> int:
        if type(value) in STABLE_REPR_TYPES:
            try:
                text = repr(value)
            except ValueError:  # an int too long to print
                text = short_repr(value, REPR_LIMIT)
            if len(text) > REPR_LIMIT:
                text = short_repr(value, REPR_LIMIT)
            detail = value_row(base, text)
            cache[lane] = CachedValue(value, via, detail)
            return detail
        if value is _MISSING:
            return base
        return value_row(base, short_repr(value, REPR_LIMIT))

    def same_site(site: Site, driver_frame: FrameType | None) -> bool:
        return (driver_frame is site[0] or (
            driver_frame is not None and driver_frame.f_code is site[9]
            and driver_frame.f_back is site[10])) and driver_frame.f_lasti == site[1]

    def sent_detail(site: Site, driver_frame: FrameType, lane: int) -> int:
        getter = site[3]
        if getter is None:
            return site[4]
        value = getter(driver_frame)
        cached = sent_values[lane]
        if cached is not None and cached[0] is value and cached[1] is site[5]:
            return cached[2]
        return value_detail(value, site[4], site[5], sent_values, lane)

    def chain_resume(frame: FrameType, lane: int, offset: int, expected: int) -> bool:
        # `lane` resumes through its delegators, whose own resumes may not have been
        # reported: walk up their frames to the outermost lane (or to the one a pending
        # hand-off expects) and record the hand-off from its driver (tracer._pass_down
        # otherwise, as when the lane's own site has changed)
        if delegates[lane] != no_lane or not same_site(sites[lane], frame.f_back):
            return False  # (a lane passing the send on further down: tracer._pass_down)
        at: FrameType | None = frame
        outer = lane
        steps = len(delegators)
        while True:
            delegator = delegators[outer]
            if delegator == no_lane:
                break
            steps -= 1
            if steps < 0:
                raise RuntimeError("tracer.delegators has a cycle")
            at = at.f_back if at is not None else None
            if at is None or lanes_get(at) != delegator:
                return False
            outer = delegator
            if outer == expected:
                break
        if expected != no_lane:
            if outer != expected:
                return False
            origin, detail, origin_blocked = pending[1], pending[3], pending[4]
        else:
            site = sites[outer]
            driver_frame = at.f_back if at is not None else None
            if driver_frame is None or not same_site(site, driver_frame):
                return False
            detail = sent_detail(site, driver_frame, outer)
            origin, origin_blocked = site[2], site[6]
        sources = resume_sources[lane]
        source = sources.get(offset) if sources is not None else None
        if source is None:
            source = resume_source(lane, frame)
        if expected != no_lane:
            pending[0] = no_lane
        handoff(origin, lane, detail, blocked, origin_blocked, source)
        recorder.current = lane
        return True

    def resume(frame: FrameType, lane: int, offset: int) -> bool:
        expected = pending[0]
        if quiet_delegators and delegators[lane] != no_lane and expected != lane:
            return chain_resume(frame, lane, offset, expected)
        driver_frame = frame.f_back
        site = sites[lane]
        if driver_frame is None or not same_site(site, driver_frame):
            return False
        if expected == no_lane:
            detail = sent_detail(site, driver_frame, lane)
        elif expected != lane:
            return False
        delegate = delegates[lane]
        if expected != no_lane and delegate != no_lane:
            pending[0] = delegate  # passing on down a chain: nothing recorded here
            return True
        sources = resume_sources[lane]
        source = sources.get(offset) if sources is not None else None
        if source is None:
            source = resume_source(lane, frame)
        if expected == no_lane:
            if delegate != no_lane:
                pending[:] = (delegate, site[2], lane, detail, site[6], source)
                return True
            handoff(site[2], lane, detail, blocked, site[6], source)
        else:
            handoff(pending[1], lane, pending[3], blocked, pending[4], source)
            pending[0] = no_lane
        recorder.current = lane
        return True

    def yield_(lane: int, value: object) -> bool:
        if pending[0] != no_lane:
            return False
        if delegates[lane] != no_lane:
            return True  # passing its delegate's value up: recorded when the delegate yielded
        cached = yielded_values[lane]
        if cached is not None and cached[0] is value:
            detail = cached[2]
        else:
            detail = value_detail(value, yield_detail, "yield", yielded_values, lane)
        outer = lane
        while delegators[outer] != no_lane:
            outer = delegators[outer]
        site = sites[outer]
        driver = site[2]
        handoff(lane, driver, detail, blocked, site[7], site[8])
        recorder.current = driver
        return True

    if quiet_delegators:
        tracer.hot_resume = resume  # (a cycle through the tracer: uninstall breaks it)
    return resume, yield_


# -- 3.12+: sys.monitoring ------------------------------------------------------------------


class MonitoringBackend:
    """Generator events from sys.monitoring, disabled at every location outside the program."""

    # The spare ids first, then OPTIMIZER_ID: never the profiler's, debugger's or coverage's,
    # so a program's own cProfile, debugger or coverage tool still gets its id.
    TOOL_CANDIDATES = (4, 3, 5)

    def __init__(self, tracer: GeneratorTracer) -> None:
        self.tracer = tracer
        self.tool = -1
        # the program's code objects seen starting, by id (a code's hash is not cached)
        self._program_codes: dict[int, CodeType] = {}
        self._watch_close = sys.version_info >= (3, 13)

    def install(self) -> None:
        monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        for tool in self.TOOL_CANDIDATES:
            if monitoring.get_tool(tool) is None:
                self.tool = tool
                break
        else:
            raise RuntimeError("no free sys.monitoring tool id for the generator tracer")
        monitoring.use_tool_id(self.tool, "loopscope-generators")
        events = monitoring.events
        tracer = self.tracer
        disable = monitoring.DISABLE
        is_program = tracer.is_program
        followed = tracer.followed_flags
        program_codes = self._program_codes
        lanes = tracer.lanes
        get_frame = sys._getframe
        watch_close = self._watch_close
        call_events = events.CALL | events.C_RETURN | events.C_RAISE
        tool = self.tool
        # sys.monitoring reports every thread; like sys.settrace on 3.11, follow only this one
        # (the recorder has one writer).
        # (the OS thread's id: gevent's patched get_ident names a greenlet, not a thread)
        get_ident = os_thread_ident
        traced_thread = get_ident()

        def on_start(code: CodeType, offset: int) -> Any:
            if not is_program(code):
                return disable
            if watch_close and id(code) not in program_codes:
                program_codes[id(code)] = code
                monitoring.set_local_events(tool, code, call_events)
            if not code.co_flags & followed:
                return disable
            if alone and id(code) not in started_codes:
                tracer.code_started(code)
            if get_ident() == traced_thread:
                tracer.resumed(get_frame(1))
            return None

        recorder = tracer.recorder
        lanes_get = lanes.get
        calls = tracer.calls
        started_codes = tracer.started_codes
        alone = tracer.host is None  # (code_started keeps nothing beside another model)
        tracer.quiet_delegators = True
        resume, yield_ = hot_paths(tracer)

        delegates = tracer.delegates
        restart_events = monitoring.restart_events

        def on_resume(code: CodeType, offset: int) -> Any:
            if get_ident() != traced_thread:
                return None
            frame = get_frame(1)
            lane = lanes_get(frame)
            if lane is not None:
                if delegates[lane] != NO_LANE:
                    facts = started_codes.get(id(code))
                    if (facts is not None and offset in facts.passing_resumes
                            and offset not in facts.kept_resumes):
                        # passing a send on down to a delegate lane, whose resume records it
                        # (tracer._pass_down): no need to hear of this location again
                        return disable
                if resume(frame, lane, offset):
                    return None
            elif not code.co_flags & followed or not is_program(code):
                return disable
            tracer.resumed(frame)
            return None

        def on_throw(code: CodeType, offset: int, exception: BaseException) -> Any:
            if (code.co_flags & followed and is_program(code)
                    and get_ident() == traced_thread):
                tracer.resumed(get_frame(1), "throw")
            return None

        def on_yield(code: CodeType, offset: int, value: object) -> Any:
            if get_ident() != traced_thread:
                return None
            frame = get_frame(1)
            lane = lanes_get(frame)
            if lane is None:
                if not code.co_flags & followed or not is_program(code):
                    return disable
                if frame in calls:
                    tracer.yielded(frame, value)
                return None
            if delegates[lane] == NO_LANE:
                facts = started_codes.get(id(code))
                resumes_at = None if facts is None else facts.passing_yields.get(offset)
                if (facts is not None and resumes_at is not None
                        and resumes_at not in facts.kept_resumes):
                    # a `yield from` passing values up from something that is not a lane:
                    # its resumes record the hand-offs, so they must be reported again (this
                    # yield comes before any resume of the frame there)
                    facts.kept_resumes.add(resumes_at)
                    restart_events()
            if not yield_(lane, value):
                tracer.yielded(frame, value)
            return None

        def on_return(code: CodeType, offset: int, value: object) -> Any:
            if not code.co_flags & followed or not is_program(code):
                return disable
            if get_ident() == traced_thread:
                frame = get_frame(1)
                if calls and calls.pop(frame, False):
                    return None  # a coroutine that ran as a call returns: nothing to record
                tracer.finished(frame, value)
            return None

        def on_unwind(code: CodeType, offset: int, exception: BaseException) -> Any:
            frame = get_frame(1)
            if (frame in lanes or frame in calls) and get_ident() == traced_thread:
                tracer.finished(frame, None, exception)
            return None

        # With tracer._handoffs built, its C twins of on_start, on_resume, on_yield and
        # on_return take the hand-offs and the coroutines running as calls, and call the
        # Python ones above for everything else.
        start_callback: Callable[..., Any] = on_start
        resume_callback: Callable[..., Any] = on_resume
        yield_callback: Callable[..., Any] = on_yield
        return_callback: Callable[..., Any] = on_return
        handoffs = c_handoffs(recorder)
        if handoffs is not None:
            hooks = handoffs.GeneratorHooks(tracer, recorder, on_resume, on_yield, short_repr,
                                            _MISSING, on_start, on_return)
            start_callback, resume_callback = hooks.on_start, hooks.on_resume
            yield_callback, return_callback = hooks.on_yield, hooks.on_return

        generator_close = types.GeneratorType.close

        def on_call(code: CodeType, offset: int, function: object, arg0: object) -> Any:
            generator = _closed_generator(function, arg0, generator_close)
            if generator is None:
                return disable
            if get_ident() == traced_thread:
                tracer.close_called(generator)
            return None

        def on_c_return(code: CodeType, offset: int, function: object, arg0: object) -> Any:
            generator = _closed_generator(function, arg0, generator_close)
            if generator is not None and get_ident() == traced_thread:
                tracer.close_returned(generator, get_frame(1))
            return None

        for event, callback in (
            (events.PY_START, start_callback), (events.PY_RESUME, resume_callback),
            (events.PY_THROW, on_throw), (events.PY_YIELD, yield_callback),
            (events.PY_RETURN, return_callback), (events.PY_UNWIND, on_unwind),
            (events.CALL, on_call), (events.C_RETURN, on_c_return),
            (events.C_RAISE, on_c_return),
        ):
            monitoring.register_callback(self.tool, event, callback)
        monitoring.set_events(
            self.tool,
            events.PY_START | events.PY_RESUME | events.PY_THROW | events.PY_YIELD
            | events.PY_RETURN | events.PY_UNWIND,
        )

    def uninstall(self) -> None:
        self.tracer.hot_resume = None
        if self.tool < 0:
            return
        monitoring = sys.monitoring  # type: ignore[attr-defined,unused-ignore]
        monitoring.set_events(self.tool, 0)
        for code in self._program_codes.values():
            monitoring.set_local_events(self.tool, code, 0)
        for event in monitoring.events.__dict__.values():
            if isinstance(event, int) and event and not event & (event - 1):
                monitoring.register_callback(self.tool, event, None)
        monitoring.free_tool_id(self.tool)
        self.tool = -1


def _closed_generator(function: object, arg0: object,
                      generator_close: object) -> types.GeneratorType[Any, Any, Any] | None:
    """The generator a CALL closes, if it is `gen.close()` in either spelling."""
    if function is generator_close and isinstance(arg0, types.GeneratorType):
        return arg0
    owner = getattr(function, "__self__", None)
    if isinstance(owner, types.GeneratorType) and getattr(function, "__name__", "") == "close":
        return owner
    return None


# -- 3.11: sys.settrace ---------------------------------------------------------------------


class SettraceBackend:
    """Generator events from sys.settrace: a call event on every resume, return on every yield
    (with the C hooks, the same events played from the frame evaluation hook)."""

    def __init__(self, tracer: GeneratorTracer) -> None:
        self.tracer = tracer
        self._previous: Any = None
        self._hooks: Any = None

    def install(self) -> None:
        tracer = self.tracer
        is_program = tracer.is_program
        followed = tracer.followed_flags
        # by id(code), each holding its code object (a code's hash is not cached): the
        # followed codes' instructions, and the codes not followed
        generator_codes: dict[int, tuple[CodeType, bytes]] = {}
        not_generators: dict[int, CodeType] = {}
        # frame -> (exception, the instruction it was raised at), to tell an exception leaving
        # the frame (the 'return' event comes at the same instruction) from a yield after an
        # exception the generator caught itself
        errors: dict[FrameType, tuple[BaseException, int]] = {}
        yield_op = dis.opmap["YIELD_VALUE"]
        return_op = dis.opmap["RETURN_VALUE"]
        # Line events cost a call each under sys.settrace; the evaluation hook leaves them to
        # the program's own trace function.
        lines_off = True

        recorder = tracer.recorder
        lanes_get = tracer.lanes.get
        calls = tracer.calls
        resume, yield_ = hot_paths(tracer)

        # `local` and the top of `on_call` run on every hand-off; they mirror the sys.monitoring
        # callbacks.

        def local(frame: FrameType, event: str, arg: Any) -> Any:
            if event == "return":
                opcode = generator_codes[id(frame.f_code)][1][frame.f_lasti]
                if not errors and opcode == return_op and calls and calls.pop(frame, False):
                    return local  # a coroutine that ran as a call returns: nothing to record
                if not errors and opcode == yield_op:
                    lane = lanes_get(frame)
                    if lane is None:
                        tracer.yielded(frame, arg)  # a call suspending becomes a lane
                        return local
                    if not yield_(lane, arg):
                        tracer.yielded(frame, arg)
                    return local
                error = errors.pop(frame, None)
                # An exception leaving the frame reports 'return' with no value; a value means
                # the generator caught it and got back to a yield, possibly the very one it was
                # thrown into (a handler that loops).
                if error is not None and (error[1] != frame.f_lasti or arg is not None):
                    error = None if opcode in (yield_op, return_op) else error
                if error is None and opcode == yield_op:
                    tracer.yielded(frame, arg)
                elif error is None and opcode == return_op:
                    tracer.finished(frame, arg)
                else:
                    tracer.finished(frame, None, error[0] if error else None)
            elif event == "exception":
                errors[frame] = (arg[1], frame.f_lasti)
            return local

        def on_call(frame: FrameType, event: str, arg: Any) -> Any:
            lane = lanes_get(frame)
            if lane is not None:
                if errors:
                    errors.pop(frame, None)
                if not resume(frame, lane, frame.f_lasti):
                    tracer.resumed(frame)
                return local
            code = frame.f_code
            if id(code) in not_generators:
                return None
            if id(code) not in generator_codes:
                if not code.co_flags & followed or not is_program(code):
                    not_generators[id(code)] = code
                    return None
                generator_codes[id(code)] = (code, code.co_code)
                tracer.code_started(code)
            if lines_off:
                frame.f_trace_lines = False
            errors.pop(frame, None)
            return local if tracer.resumed(frame) else None

        self._previous = sys.gettrace()
        handoffs = c_handoffs(recorder)
        if handoffs is None:
            sys.settrace(on_call)
            return
        # The C hooks take the hand-offs and call on_call and local above for everything
        # else (tracer/_handoffs.c). They follow generator frames from the interpreter's frame
        # evaluation hook, which spares the program 3.11's tracing mode (every instruction
        # unspecialised); a C trace function is the fallback if another tool holds that hook,
        # or if LOOPSCOPE_GENERATOR_HOOK=trace asks for it.
        hooks = handoffs.GeneratorHooks(tracer, recorder, on_call, local, short_repr, _MISSING)
        if os.environ.get("LOOPSCOPE_GENERATOR_HOOK", "") == "trace":
            hooks.install_trace(on_call, local, errors)
            return
        try:
            hooks.install_eval(on_call, local, errors)
        except RuntimeError:
            hooks.install_trace(on_call, local, errors)
        else:
            self._hooks = hooks
            lines_off = False

    def uninstall(self) -> None:
        hooks, self._hooks = self._hooks, None
        if hooks is not None and not hooks.uninstall_eval():
            return  # the evaluation hook never needed the trace function: sys.settrace as it was
        sys.settrace(self._previous)


def make_backend(tracer: GeneratorTracer) -> MonitoringBackend | SettraceBackend:
    if sys.version_info >= (3, 12):
        return MonitoringBackend(tracer)
    return SettraceBackend(tracer)


_YIELD = re.compile(r"\byield\b")
_IMPORTS = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w., ]+))", re.MULTILINE)


def declares_generators(program: Program) -> bool:
    """Whether the program's own source defines a generator function: the script (or the
    scenario) and the modules beside it that it imports.

    Beside another model, following generators is free on 3.12+ (sys.monitoring, disabled
    wherever there is nothing to follow) but not on 3.11, whose frame evaluation hook slows
    every call; there a program gets it only when it evidently has generators of its own.
    """
    if program.script is not None:
        script = Path(program.script)
    else:
        spec = importlib.util.find_spec(program.scenario_module or "")
        if spec is None or spec.origin is None:
            return False
        script = Path(spec.origin)
    try:
        source = script.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if _YIELD.search(source):
        return True
    folder = script.resolve().parent
    for found in _IMPORTS.finditer(source):
        names = [found.group(1)] if found.group(1) else found.group(2).split(",")
        for name in names:
            top = name.strip().split(" ")[0].split(".")[0]
            for candidate in (folder / f"{top}.py", folder / top / "__init__.py"):
                try:
                    if _YIELD.search(candidate.read_text(encoding="utf-8", errors="replace")):
                        return True
                except OSError:
                    continue
    return False


@contextlib.contextmanager
def following_generators(recorder: Recorder, host: Host | None = None) -> Iterator[None]:
    """Follows the program's generators for the duration of the with-block.

    Alone (`host` None) it follows generators and hand-driven coroutines. Beside another
    model it follows generators only (that model drives the coroutines), and a generator that
    no generator lane drives is driven by the other model's running lane, `host.lane()`.
    """
    guard = Guard(recorder, "generator")
    tracer = GeneratorTracer(recorder, ProgramCode(), host,
                             FOLLOWED_FLAGS if host is None else CO_GENERATOR)
    # Every hook hands whatever is not a plain hand-off to these methods: under the guard, a
    # failure in one detaches the hooks instead of raising in the program.
    for method, default in (("resumed", False), ("yielded", None), ("finished", None),
                            ("close_called", None), ("close_returned", None)):
        setattr(tracer, method, guard.shield(getattr(tracer, method), default))
    backend = make_backend(tracer)
    with instrumented(guard, backend.install, backend.uninstall):
        try:
            yield
        finally:
            guard.close()
            guard.call(tracer.finish)


def run(recorder: Recorder, program: Program) -> None:
    # The compiler's plain loads are learned here, before the program's first line, when
    # generators are the model: learned at the first hand-off (as beside asyncio, where most
    # programs never make one) their few milliseconds would be that hand-off's time.
    plain_loads()
    with following_generators(recorder):
        if program.scenario_module is not None:
            program.scenario_main()()
        else:
            program.run_script()
