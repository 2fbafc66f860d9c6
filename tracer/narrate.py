"""Step-by-step narration: one plain-English sentence per step of a trace.

Sentences come only from the event vocabulary and the detail keys of docs/architecture.md,
so every model narrates without model-specific code. A "step" is any event that tells a
learner something new; these are left out as noise:

- a READY that only repeats the WAKE just before it (the recorder writes them as a pair);
- a loop's DISPATCH that names no callback (it follows every poll and says nothing);
- a lane blocked on the lane it has just switched to (a generator hand-off says so itself);
- a wait state recorded next to its lane's switch to the hub, because the switch sentence
  already says what the lane waits for ("bar switches to the hub: sleeping until 1.00 s");
- a poll with a zero timeout (a loop checking in passing between callbacks) and its result
  when nothing was ready; a zero-timeout poll that finds something still says what it found.

`describe(trace, seq)` gives the sentence for one event (None when it is not a step), which
the app's stepping feature shows; `narrate(trace)` gives every step's line, time first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import PurePath
from typing import Any

from loopscope.tracer.events import NO_LANE, Code, ended_cancelled
from loopscope.tracer.source_files import source_line
from loopscope.tracer.step_lines import lane_lines
from loopscope.tracer.trace import Trace

WAIT_STATES = frozenset({Code.IO_WAIT, Code.SLEEPING, Code.BLOCKED})
# How far (in events) a hub switch and the wait state it explains may be apart.
HUB_WINDOW = 4
# How far (in events) a poll's result may follow the poll.
POLL_WINDOW = 16


def seconds(ns: int) -> str:
    return f"{ns / 1e9:.3f} s"  # to the millisecond, as each narration line's own time


def delay_text(delay: float) -> str:
    """A sleep's delay as a person reads it: "0.05 s", "1.25 s" (as the program wrote it, to
    four figures), "16 µs" below a millisecond, never "1.6e-05 s"."""
    if delay != 0 and abs(delay) < 1e-3:
        return f"{delay * 1e6:.3g} µs"
    if abs(delay) >= 1000:
        return f"{delay:,.0f} s"
    return f"{delay:.4g} s"


def program_seconds(trace: Trace, ns: int) -> str:
    """A recorded time as the program's clock reads it: from its first event, as the axis."""
    return seconds(ns - trace.first_event_ns)


def _fds(fds: list[int]) -> str:
    return f"fd {fds[0]}" if len(fds) == 1 else f"fds {fds}"


def _readiness(mode: object) -> str:
    return {"write": "writable", "read+write": "readable or writable"}.get(str(mode), "readable")


def _name(trace: Trace, lane: int) -> str:
    return trace.lane_name(lane)


# -- waits: shared by the wait states themselves and by the hub switch that explains them --


def _wait_phrase(trace: Trace, code: int, detail: dict[str, Any], other: str | None) -> str:
    """What a lane in a wait state is waiting for, as a participle phrase."""
    if code == Code.IO_WAIT:
        return f"waiting for fd {detail.get('fd', '?')} to become {_readiness(detail.get('mode'))}"
    if code == Code.SLEEPING:
        return f"sleeping {_sleep_target(trace, detail)}"
    return f"waiting on {_blocked_on(detail, other)}"


def _sleep_target(trace: Trace, detail: dict[str, Any]) -> str:
    deadline = detail.get("deadline_ns")
    if isinstance(deadline, int):
        return f"until {program_seconds(trace, deadline)}"
    delay = detail.get("delay_s")
    return f"for {delay_text(delay)}" if isinstance(delay, int | float) else "for a while"


def _blocked_on(detail: dict[str, Any], other: str | None) -> str:
    """What a blocked lane waits on: the call and, when the model named it, which primitive
    ("Lock.acquire of lock (bank.py:6)"): a program may have several."""
    on = detail.get("on")
    if on:
        primitive = detail.get("primitive")
        if not isinstance(primitive, str) or not primitive:
            return str(on)
        # "as_completed (pool.py:9)" names the call already
        return primitive if primitive.split(" (", 1)[0] == on else f"{on} of {primitive}"
    return other if other is not None else "something"


def _lane_state_near(
    trace: Trace, seq: int, lane: int, step: int, window: int = HUB_WINDOW
) -> int | None:
    """The first state event of `lane` within `window` events of `seq` in direction `step`."""
    stop = seq + step * (window + 1)
    for near in range(seq + step, stop, step):
        if near < 0 or near >= len(trace):
            return None
        if trace.lane[near] == lane and trace.code[near] < Code.SPAWN:
            return near
    return None


def _wait_explained_by_hub_switch(trace: Trace, switch_seq: int) -> int | None:
    """The wait state a hub switch hands its lane over for: its next state, else its last."""
    lane = trace.lane[switch_seq]
    for step in (1, -1):
        near = _lane_state_near(trace, switch_seq, lane, step)
        if near is not None and trace.code[near] in WAIT_STATES:
            return near
    return None


def _is_hub_switch(trace: Trace, seq: int) -> bool:
    return (
        trace.code[seq] == Code.SWITCH
        and trace.details[trace.detail[seq]].get("via") == "hub"
    )


def _absorbed_by_hub_switch(trace: Trace, seq: int) -> bool:
    lane = trace.lane[seq]
    low, high = max(0, seq - HUB_WINDOW), min(len(trace), seq + HUB_WINDOW + 1)
    return any(
        trace.lane[near] == lane
        and _is_hub_switch(trace, near)
        and _wait_explained_by_hub_switch(trace, near) == seq
        for near in range(low, high)
    )


# -- one sentence per kind of event ---------------------------------------------------------


def _spawn(trace: Trace, lane: int, other: int, detail: dict[str, Any]) -> str:
    name = _name(trace, lane)
    coro = str(detail.get("coro") or "")
    # "hello (Task-2)" already says it runs hello(); only a name that does not gets the coro.
    running = f" running {coro}" if coro and coro.split("(")[0] not in name else ""
    if other == NO_LANE:
        return f"{name} starts{running}"
    kind = detail.get("kind") or "lane"
    return f"{_name(trace, other)} spawns {kind} {name}{running}"


def _running(trace: Trace, seq: int, lane: int) -> str:
    name = _name(trace, lane)
    source_index = trace.source[seq]
    if not source_index:
        return f"{name} runs"
    # A first step resumes at the `def` line, where nothing has run yet: it is on the
    # body's first line.
    body_line = lane_lines(trace).first_body_line(lane, seq)
    inside, where = _place(trace, source_index, name, body_line)
    return f"{name} {'starts' if body_line else 'runs'}{inside} at {where}"


def _place(trace: Trace, source_index: int, name: str, line: int | None = None
           ) -> tuple[str, str]:
    """(" in f()" when the lane's name does not already say the function, and
    "producer_consumer.py:30: item = yield reply"), at the source's line or at `line`."""
    filename, source_line_number, function = trace.sources[source_index]
    line = line or source_line_number
    inside = f" in {function}()" if function and function.split(".")[-1] not in name else ""
    # only the trace's own, unchanged source files are read (tracer.source_files)
    code = source_line(trace.meta, filename, line).strip() if line else ""
    return inside, f"{PurePath(filename).name}:{line}" + (f": {code}" if code else "")


def _wake(trace: Trace, lane: int, other: int, detail: dict[str, Any]) -> str:
    woken = _name(trace, lane)
    waker = _name(trace, other) if other != NO_LANE else None
    cause = detail.get("cause")
    if detail.get("cancel"):
        return _cancel(trace, waker, woken, cause, detail)
    if cause == "fd":
        return f"fd {detail.get('fd', '?')} {_readiness(detail.get('mode'))}: wakes {woken}"
    if cause == "timer":
        deadline = detail.get("deadline_ns")
        due = f" due at {program_seconds(trace, deadline)}" if isinstance(deadline, int) else ""
        return f"timer{due} fires: wakes {woken}"
    if cause == "future":
        return f"{waker or 'a callback'} sets a future: wakes {woken}"
    if cause == "task":
        return f"{waker or 'a task'} ended: wakes {woken}"
    if cause == "ended":  # a thread's join returns
        return f"{waker or 'a thread'} ended: wakes {woken}"
    if cause == "cancel":
        return f"{waker or 'a task'} cancels what {woken} waits for: wakes {woken}"
    if cause == "blocked":
        on = detail.get("on")
        return f"{waker or 'a task'} wakes {woken}" + (f" from {on}" if on else "")
    if cause == "spawn":
        return f"{woken} is scheduled to start" + (f" by {waker}" if waker else "")
    if cause == "self":
        return f"{woken} yields to the loop and is ready to run again"
    if cause == "callback":
        callback = detail.get("callback")
        via = f" ({callback})" if callback else ""
        return f"{waker + ' runs a callback' if waker else 'a callback'}{via}: wakes {woken}"
    return f"{waker} wakes {woken}" if waker else f"{woken} wakes up"


def _cancel(trace: Trace, waker: str | None, woken: str, cause: object,
            detail: dict[str, Any]) -> str:
    """A wake that cancels what the lane waited on: task.cancel(), or a timeout firing."""
    if cause == "timer":
        deadline = detail.get("deadline_ns")
        due = f" due at {program_seconds(trace, deadline)}" if isinstance(deadline, int) else ""
        return f"timeout{due} fires: cancels {woken}"
    if cause == "task" and waker:
        return f"{waker} ended cancelled: wakes {woken}"
    return f"{waker or 'a callback'} cancels {woken}"


def _ready(trace: Trace, seq: int, lane: int, other: int) -> str | None:
    if seq > 0 and trace.code[seq - 1] == Code.WAKE and trace.lane[seq - 1] == lane:
        return None
    made_by = f" ({_name(trace, other)} made it ready)" if other not in (NO_LANE, lane) else ""
    return f"{_name(trace, lane)} is ready to run{made_by}"


def _implied_by_switch(trace: Trace, seq: int, lane: int, other: int) -> bool:
    """A lane blocked on the lane it has just switched to: the switch sentence said it all."""
    return (
        seq > 0
        and trace.code[seq - 1] == Code.SWITCH
        and trace.lane[seq - 1] == lane
        and trace.other[seq - 1] == other != NO_LANE
    )


def _wait_state(trace: Trace, seq: int, code: int, lane: int, other: int,
                detail: dict[str, Any]) -> str | None:
    if _absorbed_by_hub_switch(trace, seq):
        return None
    if code == Code.BLOCKED and _implied_by_switch(trace, seq, lane, other):
        return None
    name = _name(trace, lane)
    other_name = _name(trace, other) if other != NO_LANE else None
    if code == Code.IO_WAIT:
        peer = detail.get("peer")
        return (
            f"{name} waits for fd {detail.get('fd', '?')} to become "
            f"{_readiness(detail.get('mode'))}" + (f" (peer {peer})" if peer else "")
        )
    if code == Code.SLEEPING:
        return f"{name} sleeps {_sleep_target(trace, detail)}"
    return f"{name} waits on {_blocked_on(detail, other_name)}"


def _poll(name: str, detail: dict[str, Any]) -> str:
    if "timeout_s" not in detail:
        return f"{name} polls"
    timeout = detail["timeout_s"]
    if timeout is None:
        return f"{name} polls (no timeout: it waits until something is ready)"
    if timeout == 0:
        return f"{name} polls without waiting (timeout 0)"
    return f"{name} polls (timeout {timeout:.2f} s)"


def _annotate(name: str, detail: dict[str, Any]) -> str | None:
    if "readable" in detail or "writable" in detail:
        found = [
            f"{_fds(list(fds))} {ready}"
            for ready, fds in (("readable", detail.get("readable")),
                               ("writable", detail.get("writable")))
            if fds
        ]
        if not found:
            return f"{name}'s poll returns with nothing ready"
        return f"{name}'s poll returns {' and '.join(found)}"
    if not detail:
        return None
    return f"{name}: " + ", ".join(f"{key} {value}" for key, value in detail.items())


def _nothing_found_in_passing(trace: Trace, seq: int, lane: int, detail: dict[str, Any]) -> bool:
    """A poll result with nothing ready, of a poll that did not wait."""
    if detail.get("readable") or detail.get("writable") or not (
        "readable" in detail or "writable" in detail
    ):
        return False
    poll = _lane_state_near(trace, seq, lane, -1, window=POLL_WINDOW)
    return (
        poll is not None
        and trace.code[poll] == Code.POLL
        and trace.details[trace.detail[poll]].get("timeout_s", -1) == 0
    )


def _switch(trace: Trace, seq: int, lane: int, other: int, detail: dict[str, Any]) -> str:
    origin, target = _name(trace, lane), _name(trace, other)
    via = detail.get("via")
    value = detail.get("value")
    if via == "send":
        return f"{origin} sends {value} to {target}" if value is not None else (
            f"{origin} resumes {target}")
    if via == "next":
        return f"{origin} resumes {target} with next()"
    if via == "yield":
        return f"{origin} yields {value} back to {target}" if value is not None else (
            f"{origin} yields back to {target}")
    if via == "hub":
        wait = _wait_explained_by_hub_switch(trace, seq)
        if wait is None:
            return f"{origin} switches to the hub"
        waited = trace.other[wait]
        reason = _wait_phrase(trace, trace.code[wait], trace.details[trace.detail[wait]],
                              _name(trace, waited) if waited != NO_LANE else None)
        return f"{origin} switches to the hub: {reason}"
    if via == "close":
        return f"{origin} closes {target}"
    if via == "throw":
        return f"{origin} throws {value} into {target}" if value is not None else (
            f"{origin} throws into {target}")
    passing = f", passing {value}" if value is not None else ""
    return f"{origin} switches to {target}{passing}"


# END results that are no value's repr (a string's repr is quoted) but what became of a lane
# whose value the instrumentation never saw, recorded as bare words.
_END_FATES = {
    "closed": "is closed",
    "returned": "returns",
    "dead": "ends",
    "never finished": "never finished: it was still suspended when the run ended",
}


def _end(name: str, detail: dict[str, Any]) -> str:
    if ended_cancelled(detail):
        return f"{name} is cancelled"
    if "error" in detail:
        return f"{name} fails with {detail['error']}"
    result = detail.get("result")
    if result is None or result == "None":
        return f"{name} ends"
    fate = _END_FATES.get(result) if isinstance(result, str) else None
    if fate is not None:
        return f"{name} {fate}"
    return f"{name} ends with result {result}"


def _poll_sentence(trace: Trace, seq: int, lane: int, other: int,
                   detail: dict[str, Any]) -> str | None:
    return None if detail.get("timeout_s", -1) == 0 else _poll(_name(trace, lane), detail)


def _dispatch(trace: Trace, seq: int, lane: int, other: int,
              detail: dict[str, Any]) -> str | None:
    callback = detail.get("callback")
    return f"{_name(trace, lane)} runs callback {callback}" if callback else None


def _annotate_sentence(trace: Trace, seq: int, lane: int, other: int,
                       detail: dict[str, Any]) -> str | None:
    if _nothing_found_in_passing(trace, seq, lane, detail):
        return None
    return _annotate(_name(trace, lane), detail)


def _wait(trace: Trace, seq: int, lane: int, other: int, detail: dict[str, Any]) -> str | None:
    return _wait_state(trace, seq, trace.code[seq], lane, other, detail)


def _output(trace: Trace, seq: int, lane: int, other: int, detail: dict[str, Any]) -> str:
    text = repr(str(detail.get("text", "")))
    said = (f"{_name(trace, lane)} writes {text} to stderr" if detail.get("stream") == "stderr"
            else f"{_name(trace, lane)} prints {text}")
    source_index = trace.source[seq]
    if not source_index:  # a line only finished at the end of the run, or printed by a library
        return said
    # the file and line of the print: the printed text already says what the line does
    filename, line, _ = trace.sources[source_index]
    return f"{said} at {PurePath(filename).name}:{line}"


Narrator = Callable[[Trace, int, int, int, dict[str, Any]], str | None]
# One narrator per code (tests/test_codes.py checks that every Code has one): it gets the
# trace, the event's seq, lane, other lane and detail, and returns the sentence or None when
# the event is not a step.
NARRATORS: dict[int, Narrator] = {
    Code.SPAWN: lambda trace, seq, lane, other, detail: _spawn(trace, lane, other, detail),
    Code.RUNNING: lambda trace, seq, lane, other, detail: _running(trace, seq, lane),
    Code.READY: lambda trace, seq, lane, other, detail: _ready(trace, seq, lane, other),
    **dict.fromkeys(WAIT_STATES, _wait),
    Code.POLL: _poll_sentence,
    Code.DISPATCH: _dispatch,
    Code.WAKE: lambda trace, seq, lane, other, detail: _wake(trace, lane, other, detail),
    Code.SWITCH: _switch,
    Code.END: lambda trace, seq, lane, other, detail: _end(_name(trace, lane), detail),
    Code.ANNOTATE: _annotate_sentence,
    Code.OUTPUT: _output,
    Code.MARK: lambda trace, seq, lane, other, detail: (
        f"{_name(trace, lane)}: {detail.get('text', '')}"),
}


def describe(trace: Trace, seq: int) -> str | None:
    """The narration sentence for event `seq`, or None when that event is not a step."""
    narrator = NARRATORS.get(trace.code[seq])
    if narrator is None:
        return None
    return narrator(trace, seq, trace.lane[seq], trace.other[seq],
                    trace.details[trace.detail[seq]])


def time_prefix(trace: Trace, seq: int) -> str:
    """Event `seq`'s time on the program's clock, as the axis counts it, to start its line."""
    return f"{(trace.ts[seq] - trace.first_event_ns) / 1e9:7.3f} s  "


def narration_line(trace: Trace, seq: int) -> str | None:
    """The sentence for one event with its time in front, or None when it is not a step."""
    sentence = describe(trace, seq)
    return None if sentence is None else time_prefix(trace, seq) + sentence


def step_indices(trace: Trace) -> list[int]:
    """The sequence numbers of the events that are steps, in order."""
    return [seq for seq in range(len(trace)) if describe(trace, seq) is not None]


def narrate(trace: Trace) -> Iterator[str]:
    """Every step's line, in event order."""
    for seq in range(len(trace)):
        line = narration_line(trace, seq)
        if line is not None:
            yield line
