"""What the timeline writes on itself: the words on arrows, spans and lane names, and which
lanes are a library's plumbing rather than the program's own code.

No Qt here, so the layout stays a pure function. The facts that need a pass over the events
(which lane owns which fd, which lanes ran the user's code) are gathered by `TraceNotes`,
incrementally, so a live trace costs only its new events per frame.
"""

from __future__ import annotations

import bisect
import re
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from loopscope.tracer.events import NO_LANE, Code, LaneKind
from loopscope.tracer.narrate import delay_text
from loopscope.tracer.spans import Spans
from loopscope.tracer.trace import Trace

# Path fragments of code that is not the program's own: the standard library and installed
# packages. Loopscope's own scenarios are installed as a package too, but they are the
# learner's program.
_LIBRARY_MARKERS = ("/site-packages/", "/dist-packages/", "/lib/python3", "<frozen ",
                    "\\site-packages\\", "\\Lib\\")
_PROGRAM_MARKERS = ("/loopscope/scenarios/", "\\loopscope\\scenarios\\")

# Library coroutines that run the program's own callbacks (aiohttp calls a request handler
# inside this task), so their lanes are where the program's code happens even though the
# task's top frame is the library's.
HOSTS_PROGRAM_CODE = frozenset({"RequestHandler._handle_request"})

def _column(values: Sequence[int], dtype: type[np.generic], start: int, stop: int
            ) -> np.ndarray:
    """values[start:stop] as a numpy copy (an array cannot grow while a view of it lives)."""
    view = np.frombuffer(values, dtype=dtype)  # type: ignore[call-overload]
    part: np.ndarray = view[start:stop].copy()
    del view
    return part


_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?=:\d+\b)")


def is_library_file(filename: str) -> bool:
    if any(marker in filename for marker in _PROGRAM_MARKERS):
        return False
    return any(marker in filename for marker in _LIBRARY_MARKERS)


def short_lane_name(name: str) -> str:
    """A lane name for a crowded place: "conn 127.0.0.1:40604" -> "conn :40604"."""
    return _ADDRESS.sub("", name)


class TraceNotes:
    """Facts about a trace's lanes, brought up to date with `update` as the trace grows."""

    def __init__(self) -> None:
        self.scanned = 0
        # fd -> times it was taken by a lane and by which lane, in time order (fds are reused)
        self._fd_times: dict[int, list[int]] = {}
        self._fd_lanes: dict[int, list[int]] = {}
        self.lane_fd: dict[int, int] = {}  # the first fd each lane waited on or was made with
        self.program_lanes: set[int] = set()  # lanes that ran code in the program's files
        self.library_source_lanes: set[int] = set()  # lanes that ran library code
        self.hosting_lanes: set[int] = set()
        self._source_is_library: dict[int, bool] = {}
        # The words of finished spans, by span index, for the one Spans object they were
        # made for: a frame asks for the same few hundred again and again.
        self._words_of: weakref.ref[Spans] | None = None
        self._words: dict[int, Any] = {}
        self._arrow_words: dict[int, str] = {}  # by event; an event's words never change

    def words_cache(self, spans: Spans) -> dict[int, Any]:
        """Span index -> its words, kept while `spans` is the spans object asked about."""
        if self._words_of is None or self._words_of() is not spans or len(self._words) > 50_000:
            self._words_of = weakref.ref(spans)
            self._words = {}
        return self._words

    def arrow_words(self, trace: Trace, seq: int) -> str:
        """arrow_text of event `seq`, made once: a frame asks for the same arrows' again."""
        words = self._arrow_words.get(seq)
        if words is None:
            if len(self._arrow_words) > 50_000:
                self._arrow_words.clear()
            words = self._arrow_words[seq] = arrow_text(trace, seq)
        return words

    def update(self, trace: Trace) -> None:
        """Takes in the events added since the last call: column-wise, then a Python step per
        distinct (lane, source) pair and per change of an fd's owner, not per event."""
        start, stop = self.scanned, len(trace)
        if stop <= start:
            return
        codes = _column(trace.code, np.int8, start, stop)
        lanes = _column(trace.lane, np.int32, start, stop).astype(np.int64)
        running = np.nonzero(codes == Code.RUNNING)[0]
        if len(running):
            sources = _column(trace.source, np.int32, start, stop)[running].astype(np.int64)
            ran = sources != 0
            pairs = np.unique(lanes[running][ran] * (1 << 32) + sources[ran])
            for pair in pairs.tolist():
                self._note_source(trace, pair >> 32, pair & 0xFFFFFFFF)
        self._note_fds(trace, start, stop, codes, lanes)
        self.scanned = stop

    def _note_fds(self, trace: Trace, start: int, stop: int, codes: np.ndarray,
                  lanes: np.ndarray) -> None:
        spawns = codes == Code.SPAWN
        waits = np.nonzero(spawns | (codes == Code.IO_WAIT))[0]
        if not len(waits):
            return
        for seq in (waits[spawns[waits]] + start).tolist():
            info = trace.details[trace.detail[seq]]
            # a pool's work is the program's or a library's by the line that handed it over
            if info.get("kind") == LaneKind.THREAD and trace.source[seq]:
                self._note_source(trace, trace.lane[seq], trace.source[seq])
            if str(info.get("coro", "")) in HOSTS_PROGRAM_CODE:
                self.hosting_lanes.add(trace.lane[seq])
        details = _column(trace.detail, np.int32, start, stop)[waits].astype(np.int64)
        kinds, where = np.unique(details, return_inverse=True)
        fd_of_detail = np.array([self._fd_of(trace, int(d)) for d in kinds.tolist()],
                                dtype=np.int64)
        fds = fd_of_detail[where]
        has = fds >= 0
        waits, fds = waits[has], fds[has]
        if not len(waits):
            return
        wait_lanes = lanes[waits]
        # Each lane's first fd, in time order.
        _, first = np.unique(wait_lanes, return_index=True)
        for at in np.sort(first).tolist():
            self.lane_fd.setdefault(int(wait_lanes[at]), int(fds[at]))
        taken = spawns[waits]
        times = _column(trace.ts, np.int64, start, stop)[waits]
        # In each fd's own time order, keep the events where its owner changes (or a spawn
        # takes it anew): the rest say nothing new.
        order = np.lexsort((np.arange(len(fds)), fds))
        fds, wait_lanes, times, taken = fds[order], wait_lanes[order], times[order], taken[order]
        new_owner = np.ones(len(fds), dtype=bool)
        new_owner[1:] = (fds[1:] != fds[:-1]) | (wait_lanes[1:] != wait_lanes[:-1])
        keep = np.nonzero(new_owner | taken)[0]
        for fd, lane, ts, spawn in zip(fds[keep].tolist(), wait_lanes[keep].tolist(),
                                       times[keep].tolist(), taken[keep].tolist(), strict=True):
            self._note_fd(lane, fd, ts, taken=spawn)

    @staticmethod
    def _fd_of(trace: Trace, detail: int) -> int:
        fd = trace.details[detail].get("fd")
        return fd if isinstance(fd, int) and fd >= 0 else -1

    def _note_source(self, trace: Trace, lane: int, source: int) -> None:
        library = self._source_is_library.get(source)
        if library is None:
            library = self._source_is_library[source] = is_library_file(trace.sources[source][0])
        (self.library_source_lanes if library else self.program_lanes).add(lane)

    def _note_fd(self, lane: int, fd: int, ts: int, *, taken: bool) -> None:
        owners = self._fd_lanes.setdefault(fd, [])
        if taken or not owners or owners[-1] != lane:
            self._fd_times.setdefault(fd, []).append(ts)
            owners.append(lane)

    def lane_of_fd(self, fd: int, at_ns: float) -> int:
        """The lane that held `fd` at that time (the last to take it before), or NO_LANE."""
        times = self._fd_times.get(fd)
        if not times:
            return NO_LANE
        found = bisect.bisect_right(times, at_ns) - 1
        return self._fd_lanes[fd][max(found, 0)]

    def library_sources(self) -> frozenset[int]:
        """The source locations (indices into trace.sources) of library code that ran."""
        return frozenset(index for index, library in self._source_is_library.items()
                         if library)

    def library_lanes(self, trace: Trace) -> frozenset[int]:
        """Lanes whose code is all a library's (asyncio's or aiohttp's plumbing): they ran
        code, none of it in the program's files, and they host none of its callbacks."""
        loops = {info.id for info in trace.lanes if info.kind in LaneKind.LOOP_KINDS}
        return frozenset(self.library_source_lanes - self.program_lanes - self.hosting_lanes
                         - loops)


_notes_cache: dict[int, tuple[weakref.ref[Trace], TraceNotes]] = {}


def trace_notes(trace: Trace) -> TraceNotes:
    """The notes on this trace, cached per trace and brought up to date."""
    cached = _notes_cache.get(id(trace))
    if cached is None or cached[0]() is not trace:
        for stale in [key for key, (ref, _) in _notes_cache.items() if ref() is None]:
            del _notes_cache[stale]
        cached = _notes_cache[id(trace)] = (weakref.ref(trace), TraceNotes())
    cached[1].update(trace)
    return cached[1]


# -- words ----------------------------------------------------------------------------------


def lane_tag(trace: Trace, lane: int, kind: str, notes: TraceNotes) -> str:
    """The word beside a lane's name: its fd for a socket's lane in a select or gevent
    program (so a poll's "readable: [3, 7]" can be matched to lanes), else its kind."""
    fd = notes.lane_fd.get(lane)
    if fd is not None and (kind == LaneKind.CONNECTION
                           or trace.meta.get("model") in ("select", "gevent")):
        return f"fd {fd}"
    return kind


_READINESS = {"read": "readable", "write": "writable", "read+write": "readable/writable"}
_WAKE_WORDS = {"timer": "timer", "future": "future set", "task": "task ended",
               "ended": "ended", "callback": "callback", "spawn": "start"}


def arrow_text(trace: Trace, seq: int) -> str:
    """What a wake or switch arrow carries, in a few words: send(1), '200 OK', fd 7 readable."""
    detail = trace.details[trace.detail[seq]]
    if trace.code[seq] == Code.WAKE:
        cause = detail.get("cause")
        if cause == "fd":
            return f"fd {detail.get('fd', '?')} {_READINESS.get(str(detail.get('mode')), 'ready')}"
        return _WAKE_WORDS.get(str(cause), "")
    via, value = detail.get("via"), detail.get("value")
    if via == "send":
        return f"send({value if value is not None else ''})"
    if via == "next":
        return "next()"
    if via in ("close", "throw"):
        return f"{via}()"
    if value is not None:
        return str(value)
    return ""  # a switch through the hub: the arrow's ends already say so


def span_text(trace: Trace, spans: Spans, index: int, notes: TraceNotes) -> str:
    """The words inside a wide span: its state and what it waits for or found."""
    cache = notes.words_cache(spans)
    words = cache.get(index)
    if words is None:
        state = spans.state[index]
        detail = spans.detail_of(index, trace)
        words = cache[index] = state_text(trace, state, detail, spans.end[index], notes)
    return str(words)


def span_poll_texts(trace: Trace, spans: Spans, index: int, notes: TraceNotes) -> list[str]:
    """poll_texts of poll span `index`, made once per span."""
    cache = notes.words_cache(spans)
    key = -1 - index  # beside span_text's entries, apart from them
    texts = cache.get(key)
    if texts is None:
        texts = cache[key] = poll_texts(trace, spans.detail_of(index, trace), spans.end[index],
                                        notes)
    return list(texts)


def state_text(trace: Trace, state: int, detail: dict[str, Any], end_ns: float,
               notes: TraceNotes) -> str:
    if state == Code.POLL:
        return poll_texts(trace, detail, end_ns, notes)[0]
    if state == Code.IO_WAIT:
        mode = _READINESS.get(str(detail.get("mode")), "ready")
        return f"io-wait: fd {detail.get('fd', '?')} {mode}"
    if state == Code.SLEEPING:
        delay = detail.get("delay_s")
        return f"sleeping {delay_text(delay)}" if isinstance(delay, int | float) else "sleeping"
    if state == Code.BLOCKED:
        on = detail.get("on")
        return f"blocked on {on}" if on else "blocked"
    if state == Code.DISPATCH:
        callback = detail.get("callback")
        return f"dispatch {callback}" if callback else "dispatch"
    names: dict[int, str] = {Code.RUNNING: "running", Code.READY: "ready"}
    return names.get(state, "")


def poll_texts(trace: Trace, detail: dict[str, Any], at_ns: float, notes: TraceNotes
               ) -> list[str]:
    """What a poll found, longest first: the lanes that came back ("ready: listener,
    conn :42444"), their fds ("ready: fd 3, 9"), or just "poll" when nothing was ready."""
    fds: list[int] = []
    for key in ("readable", "writable", "ready"):
        value = detail.get(key)
        if isinstance(value, list):
            fds += [fd for fd in value if isinstance(fd, int) and fd not in fds]
    if not fds:
        return ["poll"]
    names = []
    for fd in fds:
        lane = notes.lane_of_fd(fd, at_ns)
        names.append(short_lane_name(trace.lane_name(lane)) if lane != NO_LANE else f"fd {fd}")
    numbers = ", ".join(str(fd) for fd in fds)
    return [f"ready: {', '.join(names)}", f"ready: fd {numbers}", f"fd {numbers}"]


__all__ = [
    "HOSTS_PROGRAM_CODE",
    "TraceNotes",
    "arrow_text",
    "is_library_file",
    "lane_tag",
    "poll_texts",
    "short_lane_name",
    "span_poll_texts",
    "span_text",
    "state_text",
    "trace_notes",
]
