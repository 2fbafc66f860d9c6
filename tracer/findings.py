"""What a report can point at: the finding record and the catalogue of rules.

Every rule has an id (what `--fail-on` names), a one-line explanation of why it matters and
how it is usually fixed, and, where one exists, the built-in scenario that shows the concept.
The rules themselves live in tracer.stalls (long steps) and tracer.lints (everything else).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from loopscope.tracer.events import Source
from loopscope.tracer.samples import Stack, frame_location


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    explanation: str
    scenario: str | None = None  # a built-in scenario that teaches it


RULES: dict[str, Rule] = {rule.id: rule for rule in (
    Rule("stall", "step too long",
         "A step ran this long without giving control back, so the scheduler could not poll, "
         "fire timers or run anyone else: every lane that was due waited for it. Move the "
         "blocking call off the loop (asyncio.to_thread, an executor, an async client) or "
         "break the CPU work into pieces that yield.", "blocking-call"),
    Rule("pending-at-exit", "task still pending at exit",
         "The program finished while this lane was still waiting: its work was cut short "
         "(asyncio.run cancels such tasks; other runtimes drop them). Await it, cancel it on "
         "purpose, or keep a reference and shut it down before returning.", None),
    Rule("destroyed-pending", "task destroyed while pending",
         "Python collected a task that had not finished: nothing held a reference to it, so "
         "it vanished mid-way. Keep the task (a set, a TaskGroup) until it is done.", None),
    Rule("exception-never-retrieved", "exception never retrieved",
         "A task failed and nobody looked at its result, so the exception went unnoticed "
         "until the task was collected. Await the task, gather it, or add a done callback "
         "that reads the exception.", None),
    Rule("never-awaited", "coroutine never awaited",
         "A coroutine object was created and thrown away: its body never ran. Put `await` in "
         "front of the call, or hand it to create_task.", None),
    Rule("self-wake-storm", "self-waking loop",
         "The lane kept making itself ready (asyncio.sleep(0), a tiny sleep, busy polling): "
         "each round trip goes through the whole loop and burns the thread while there is "
         "nothing to do. Wait on the thing itself (an Event, a Queue, a future) instead.",
         None),
    Rule("contention", "heavy contention",
         "Several lanes spent a long time queued on one lock, semaphore or full queue: the "
         "work is serialised behind whoever holds it. Hold it for less time (no awaits while "
         "holding it), split it, or allow more holders.", None),
    Rule("zero-timeout-spin", "poll spinning with a zero timeout",
         "The loop polled with a zero timeout over and over while nothing was ready and no "
         "lane ran: it spins, using a whole core to wait. Give select/poll a timeout (or "
         "None) so the kernel wakes it when something happens.", "select-server"),
    Rule("overloaded-loop", "loop overloaded",
         "Timers fired long after they were due while the loop ran steps nearly all the "
         "time, though no single step was long enough to be a stall: there was more work "
         "than one thread could do on time, so every lane took its turn late. Do less per "
         "step, move CPU-heavy work to a process pool (run_in_executor with a "
         "ProcessPoolExecutor), or run fewer tasks at once.", None),
    Rule("idle-on-thread-pool", "loop idle while work waits in a thread pool",
         "The loop had nothing to do for most of the time work it handed to a thread pool "
         "(asyncio.to_thread, run_in_executor) ran: the program waited on the pool one call "
         "at a time. Run independent calls side by side (asyncio.gather, a TaskGroup), give "
         "the pool more workers if calls queue behind each other, or use an async client "
         "for I/O so the work stays on the loop.", None),
)}


class Delay(NamedTuple):
    """A lane a stall held up: its time spent ready but not run, and how late its timers
    fired. (A named tuple: a stall over a thousand lanes makes a thousand of them, and a
    frozen dataclass took seconds to make millions.)"""

    lane: int
    name: str
    ready_ns: int
    late_timer_ns: int

    @property
    def total_ns(self) -> int:
        return self.ready_ns + self.late_timer_ns


@dataclass(frozen=True)
class Finding:
    rule: str
    title: str  # one line saying what happened, with the figures
    lane: int | None
    lane_name: str | None
    ts_ns: int | None  # when it happened (a stall: when the step began)
    duration_ns: int  # how long (a stall: the step; contention: all the waiting); 0 for none
    location: Source | None  # the line to look at
    stack: Stack = ()  # innermost first, from the stall sampler
    samples: int = 0  # how many stack samples back the location
    seq: int | None = None  # the event that began the span it is about, for the app
    delayed: tuple[Delay, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)  # the rule's own figures

    @property
    def where(self) -> str | None:
        return None if self.location is None else frame_location(self.location)

    @property
    def explanation(self) -> str:
        return RULES[self.rule].explanation

    @property
    def scenario(self) -> str | None:
        return RULES[self.rule].scenario
