"""Stack samples taken while a step ran long: a side table beside the events.

The child's stall sampler (tracer.sampler) reads the traced thread's stack every few
milliseconds while a step has run past its threshold. A sample is (ts, lane, stack): when it
was taken (ns, on the events' clock), the lane that was running, and an index into a table of
distinct stacks. A stack is a tuple of source locations (file, line, function), innermost
first. Samples are not events: they carry no sequence number and never change a span, so a
trace without them (every trace saved before they existed) reads exactly as before.

On the pipe and in a saved trace's header they travel as JSON:

    {"first_stack": N, "stacks": [[[file, line, function], ...], ...],
     "samples": [[ts, lane, stack], ...]}

where `stacks` are the stacks new since the last payload, numbered from `first_stack`.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from typing import Any

from loopscope.tracer.events import Source

Stack = tuple[Source, ...]


class SamplePayloadError(ValueError):
    """A samples payload that does not add up; the message says what is wrong."""


class Samples:
    """The samples of one run in columns, in the order they were taken (ts ascending)."""

    def __init__(self) -> None:
        self.ts = array("q")
        self.lane = array("i")
        self.stack = array("i")
        self.stacks: list[Stack] = []

    def __len__(self) -> int:
        return len(self.ts)

    def apply_payload(self, payload: dict[str, Any]) -> None:
        """Adds a payload's new stacks and samples; refuses one that does not follow on."""
        try:
            first = int(payload.get("first_stack", len(self.stacks)))
            new_stacks: list[Stack] = [
                tuple((str(f), int(line), str(fn)) for f, line, fn in stack)
                for stack in payload.get("stacks", [])
            ]
            rows = [(int(ts), int(lane), int(stack)) for ts, lane, stack in
                    payload.get("samples", [])]
        except (TypeError, ValueError) as exc:
            raise SamplePayloadError(f"malformed samples: {exc}") from None
        if first != len(self.stacks):
            raise SamplePayloadError(
                f"samples' stacks start at {first}, expected {len(self.stacks)}")
        known = first + len(new_stacks)
        if any(not 0 <= stack < known for _ts, _lane, stack in rows):
            raise SamplePayloadError("a sample names a stack that does not exist")
        self.stacks.extend(new_stacks)
        for ts, lane, stack in sorted(rows):
            self.ts.append(ts)
            self.lane.append(lane)
            self.stack.append(stack)

    def to_payload(self) -> dict[str, Any]:
        """Everything, as one payload (what a saved trace's header holds)."""
        return {
            "first_stack": 0,
            "stacks": [[list(frame) for frame in stack] for stack in self.stacks],
            "samples": [[self.ts[i], self.lane[i], self.stack[i]] for i in range(len(self))],
        }

    def between(self, start_ns: int, end_ns: int, lane: int | None = None) -> list[int]:
        """Indices of the samples taken in [start_ns, end_ns] (on one lane)."""
        first = bisect_left(self.ts, start_ns)
        stop = bisect_right(self.ts, end_ns)
        return [i for i in range(first, stop) if lane is None or self.lane[i] == lane]

    def dominant_stack(self, indices: list[int]) -> tuple[Stack, int] | None:
        """The stack seen most often among these samples and how often; None without any."""
        if not indices:
            return None
        # most_common keeps first-seen order among equal counts: the answer is stable
        best, count = Counter(self.stack[i] for i in indices).most_common(1)[0]
        return self.stacks[best], count


def frame_location(frame: Source) -> str:
    """`file.py:LINE`: a frame as the report and the app name it."""
    name = frame[0].replace("\\", "/").rsplit("/", 1)[-1]
    return f"{name}:{frame[1]}"
