"""Why a run recorded nothing, or far less than the program evidently did: one line each.

A pure judgement over the received trace and the child's census (tracer.census): which lanes
the model followed against which loops ran and which generator and coroutine functions the
program has. Each note names the likely reason and the fix, e.g. "--model generator".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from loopscope.tracer.events import LaneKind
from loopscope.tracer.trace import LaneInfo, SpawnedLanes, Trace

MODEL_WORDS = {
    "asyncio": "asyncio tasks",
    "generator": "generators or hand-driven coroutines",
    "greenlet": "greenlets",
    "gevent": "greenlets",
    "select": "sockets in select/poll calls",
}
FOLLOWED_KINDS = frozenset({LaneKind.TASK, LaneKind.GENERATOR, LaneKind.GREENLET,
                            LaneKind.CONNECTION})


def _names(found: dict[str, Any]) -> str:
    names = [str(name) for name in found.get("names", [])]
    count = int(found.get("count", 0))
    shown = ", ".join(names[:4])
    more = count - min(len(names), 4)
    return f"{shown}, … ({count} in all)" if more > 0 else shown


def _count(census: dict[str, Any], key: str) -> int:
    found = census.get(key)
    return int(found.get("count", 0)) if isinstance(found, dict) else 0


def _hand_offs_missed(census: dict[str, Any]) -> str:
    """"sends values into generators (grep, printer) and ..." from the census, or ""."""
    parts = []
    sent = [str(name) for name in census.get("sent_to") or ()]
    if sent:
        parts.append(f"sends values into generators ({', '.join(sent[:4])})")
    by_hand = [str(name) for name in census.get("driven_by_hand") or ()]
    if by_hand:
        parts.append(f"drives coroutines by hand ({', '.join(by_hand[:4])})")
    return " and ".join(parts)


_LOOP = frozenset({LaneKind.LOOP})
_GENERATOR = frozenset({LaneKind.GENERATOR})
_THREAD = frozenset({LaneKind.THREAD})


def _of_kinds(trace: Trace, kinds: frozenset[str]) -> Iterator[LaneInfo]:
    """The trace's lanes of these kinds, without building the others' LaneInfo."""
    lanes = trace.lanes
    if isinstance(lanes, SpawnedLanes):
        return lanes.of_kinds(kinds)
    return (lane for lane in lanes if lane.kind in kinds)


def explain_silence(trace: Trace, census: dict[str, Any] | None, model: str) -> list[str]:
    """The notes for a run that ended on its own; [] when the recording looks complete."""
    census = census or {}
    # whether any: a run may have 100k lanes, and the first of a kind answers
    followed = any(True for _ in _of_kinds(trace, FOLLOWED_KINDS))
    asyncio_loops = any("asyncio" in lane.name for lane in _of_kinds(trace, _LOOP))
    notes: list[str] = []
    loops: dict[str, int] = census.get("loops") or {}
    libraries: list[str] = census.get("libraries") or []
    generators, coroutines = _count(census, "generators"), _count(census, "coroutines")

    if model == "asyncio" and loops and not asyncio_loops:
        if any(lane.name.endswith(" (not traced)") for lane in _of_kinds(trace, _LOOP)):
            return notes  # the model said so already, on that loop's lane and in the run's notes
        kinds = ", ".join(sorted(loops))
        notes.append(f"this program chose its own event loop ({kinds}), which loopscope did "
                     "not trace: let asyncio.run() make the loop to see its tasks")
        return notes
    if followed:
        # The model followed something; say what else the program evidently did (3.12+).
        if any(True for _ in _of_kinds(trace, _GENERATOR)):
            # its generators were followed beside the model's own lanes
            census = {**census, "sent_to": []}
        missed = _hand_offs_missed(census)
        if missed and model != "generator":
            notes.append(f"the program also {missed}, which the {model} model did not "
                         "follow in this run: run with --model generator to see those")
        return notes
    # Nothing the model follows was recorded: say what the program has instead.
    # anyio picks its backend as the program runs (`backend=` from a setting or argv), where
    # the guess, made before the run, could not see which one it would be.
    picked = " (anyio picks its backend as the program runs)"
    anyio = "anyio" in libraries
    if model == "asyncio" and anyio and not loops and "trio" in libraries:
        notes.append(f"recorded no asyncio tasks, but the program imported trio{picked} and "
                     "no asyncio loop ran: run with --model trio")
    elif model == "trio" and anyio and "asyncio" in libraries:
        # (the trio model imports trio itself; a run of trio would have made its loop lane)
        notes.append(f"recorded no trio tasks: the program never called trio.run, but did import "
                     f"asyncio{picked}: run with --model asyncio")
    elif model == "asyncio" and not loops and coroutines:
        notes.append("recorded no asyncio tasks: no event loop ran, so the program drives its "
                     f"coroutines by hand ({_names(census['coroutines'])}); run with --model "
                     "generator to follow them")
    elif model != "generator" and generators:
        notes.append(f"recorded no {MODEL_WORDS.get(model, model)}, but the program has "
                     f"generator functions ({_names(census['generators'])}); if those are its "
                     "concurrency, run with --model generator")
    elif model not in ("gevent", "greenlet") and "gevent" in libraries:
        notes.append(f"recorded no {MODEL_WORDS.get(model, model)}, but the program imports "
                     "gevent: run with --model gevent")
    elif model != "greenlet" and "greenlet" in libraries and "gevent" not in libraries:
        notes.append(f"recorded no {MODEL_WORDS.get(model, model)}, but the program imports "
                     "greenlet: run with --model greenlet")
    elif any(True for _ in _of_kinds(trace, _THREAD)):
        pass  # a thread is a lane already: the run recorded what the program did
    elif "multiprocessing" in libraries and census.get("processes_made", 1):
        notes.append(f"recorded no {MODEL_WORDS.get(model, model)}: the program hands its work "
                     "to other processes (multiprocessing), and loopscope follows only the "
                     "process it starts")
    elif census.get("thread_pool"):
        notes.append(f"recorded no {MODEL_WORDS.get(model, model)}: the program's "
                     "multiprocessing ThreadPool ran its work in threads, and loopscope records "
                     "a thread only when it prints, sleeps or waits on the program's own locks, "
                     "queues or events")
    else:
        notes.append(f"recorded no {MODEL_WORDS.get(model, model)}: the program may use "
                     "another model; name it with --model (asyncio, generator, greenlet, "
                     "gevent or select)")
    return notes
