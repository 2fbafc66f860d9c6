"""One line on why a run recorded nothing, or far less than the program evidently did."""

from __future__ import annotations

from typing import Any

from loopscope.tracer.events import LaneKind
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.silence import explain_silence
from loopscope.tracer.trace import Trace


def _trace(*lanes: tuple[str, str]) -> Trace:
    trace = Trace()
    recorder = Recorder(trace)
    for name, kind in lanes:
        recorder.spawn(name, kind)
    recorder.close()
    return trace


def _census(**found: Any) -> dict[str, Any]:
    census: dict[str, Any] = {"loops": {}, "libraries": [], "thread_loops": 0}
    for key in ("generators", "coroutines", "async_generators"):
        names = found.get(key, [])
        census[key] = {"count": len(names), "names": names}
    census.update({key: value for key, value in found.items() if key in ("loops", "libraries")})
    return census


def test_a_recording_with_followed_lanes_needs_no_note() -> None:
    trace = _trace(("asyncio loop", LaneKind.LOOP), ("main (Task-1)", LaneKind.TASK))
    assert explain_silence(trace, _census(generators=["helper"]), "asyncio") == []


def test_generators_under_the_asyncio_guess_point_at_the_generator_model() -> None:
    notes = explain_silence(_trace(), _census(generators=["numbers", "evens"]), "asyncio")
    assert notes == ["recorded no asyncio tasks, but the program has generator functions "
                     "(numbers, evens); if those are its concurrency, run with --model generator"]


def test_hand_driven_coroutines_with_no_loop_say_so() -> None:
    notes = explain_silence(_trace(), _census(coroutines=["fib"]), "asyncio")
    assert len(notes) == 1
    assert "drives its coroutines by hand (fib)" in notes[0] and "--model generator" in notes[0]


def test_a_loop_the_program_chose_is_named() -> None:
    census = _census(loops={"uvloop.Loop": 1})
    notes = explain_silence(_trace(), census, "asyncio")
    assert len(notes) == 1 and "chose its own event loop (uvloop.Loop)" in notes[0]
    # once the loop it chose is traced (a loop lane exists), nothing to say
    traced = _trace(("asyncio loop", LaneKind.LOOP), ("main (Task-1)", LaneKind.TASK))
    assert explain_silence(traced, census, "asyncio") == []


def test_a_loop_the_model_already_noted_is_not_noted_twice() -> None:
    # the asyncio model leaves a "(not traced)" loop lane and a run note as the loop starts
    census = _census(loops={"__main__.CountingLoop": 1})
    noted = _trace(("__main__.CountingLoop (not traced)", LaneKind.LOOP))
    assert explain_silence(noted, census, "asyncio") == []


def test_an_imported_gevent_points_at_its_model() -> None:
    notes = explain_silence(_trace(), _census(libraries=["gevent", "greenlet"]), "select")
    assert notes == ["recorded no sockets in select/poll calls, but the program imports gevent: "
                     "run with --model gevent"]


def test_anyio_on_the_backend_the_guess_did_not_pick_points_at_the_other_model() -> None:
    # anyio.run(main, backend=sys.argv[1]): guessed asyncio, ran trio (and the other way)
    ran_trio = _census(libraries=["asyncio", "trio", "anyio"], coroutines=["main", "worker"])
    assert explain_silence(_trace(), ran_trio, "asyncio") == [
        "recorded no asyncio tasks, but the program imported trio (anyio picks its backend as "
        "the program runs) and no asyncio loop ran: run with --model trio"]
    ran_asyncio = _census(libraries=["asyncio", "trio", "anyio"], coroutines=["main", "worker"])
    assert explain_silence(_trace(), ran_asyncio, "trio") == [
        "recorded no trio tasks: the program never called trio.run, but did import asyncio "
        "(anyio picks its backend as the program runs): run with --model asyncio"]


def test_a_program_without_anyio_that_imports_both_libraries_is_not_sent_to_the_other() -> None:
    census = _census(libraries=["asyncio", "trio"], coroutines=["main"])
    notes = explain_silence(_trace(), census, "asyncio")
    assert len(notes) == 1 and "by hand (main)" in notes[0] and "trio" not in notes[0]


def test_nothing_to_go_on_still_says_something() -> None:
    notes = explain_silence(_trace(("select loop", LaneKind.LOOP)), None, "select")
    assert len(notes) == 1 and "--model" in notes[0]


def test_a_threaded_program_whose_threads_were_recorded_is_not_told_to_try_another_model(
        ) -> None:
    trace = _trace(("worker", LaneKind.THREAD), ("main thread", LaneKind.THREAD))
    assert explain_silence(trace, _census(), "asyncio") == []
    # what the program evidently has besides its threads is still pointed at
    assert explain_silence(trace, _census(libraries=["gevent"]), "asyncio") == [
        "recorded no asyncio tasks, but the program imports gevent: run with --model gevent"]


def test_a_program_that_hands_its_work_to_other_processes_is_told_so() -> None:
    notes = explain_silence(_trace(), _census(libraries=["multiprocessing"]), "asyncio")
    assert notes == ["recorded no asyncio tasks: the program hands its work to other processes "
                     "(multiprocessing), and loopscope follows only the process it starts"]
    # a process pool's futures give the main thread a lane: that run recorded what it did
    waited = _trace(("main thread", LaneKind.THREAD))
    assert explain_silence(waited, _census(libraries=["multiprocessing"]), "asyncio") == []


def test_many_names_are_shortened() -> None:
    names = [f"g{i}" for i in range(8)]
    notes = explain_silence(_trace(), _census(generators=names), "greenlet")
    assert "g0, g1, g2, g3, … (8 in all)" in notes[0]


def test_what_else_the_program_evidently_did_is_said_beside_a_full_recording() -> None:
    trace = _trace(("asyncio loop", LaneKind.LOOP), ("main (Task-1)", LaneKind.TASK))
    census = {**_census(), "sent_to": ["averager"], "driven_by_hand": ["fib"]}
    assert explain_silence(trace, census, "asyncio") == [
        "the program also sends values into generators (averager) and drives coroutines by "
        "hand (fib), which the asyncio model did not follow in this run: run with --model "
        "generator to see those"]
