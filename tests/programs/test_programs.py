"""The corpus: programs written in the styles people actually use, each traced in a real child.

Every program here is ours, written after the public examples of its kind (the asyncio
documentation, aiohttp's and gevent's examples, generator schedulers, select/poll servers
with their own clients, multiprocessing, threads), plus drivers that run four of
pyperformance's concurrency benchmarks' functions directly. Each is traced as a user would
trace it and the test asserts what its timeline must show -- lanes, states, wake causes,
output on the lane that printed it -- and what must never appear: Loopscope's own frames,
a StopRequested, two lanes sharing a name, or an empty recording nobody explained.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loopscope.tracer.events import STATE_NAMES, Code, LaneKind
from loopscope.tracer.runner import Run, RunResult
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace
from tests.conftest import about_the_program

PROGRAMS = Path(__file__).resolve().parent
FOLLOWED = {LaneKind.TASK, LaneKind.GENERATOR, LaneKind.GREENLET, LaneKind.CONNECTION}
HARNESS_MARKS = ("loopscope/tracer", "tracer/child.py", "tracer/models", "runpy",
                 "StopRequested")

pytestmark = pytest.mark.timeout(120)


@dataclass
class Seen:
    """What a trace shows, by lane name."""

    result: RunResult
    kinds: dict[str, str] = field(default_factory=dict)
    states: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    causes: set[str] = field(default_factory=set)
    cancels: set[str] = field(default_factory=set)  # the causes of wakes that cancelled
    printed: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    switches: int = 0

    @property
    def trace(self) -> Trace:
        return self.result.trace

    def lanes(self, pattern: str) -> list[str]:
        return [name for name in self.kinds if re.fullmatch(pattern, name)]

    def followed(self) -> list[str]:
        return [name for name, kind in self.kinds.items() if kind in FOLLOWED]


def summarise(result: RunResult) -> Seen:
    trace = result.trace
    seen = Seen(result)
    for lane in trace.lanes:
        seen.kinds[lane.name] = lane.kind
    for seq in range(len(trace)):
        code = trace.code[seq]
        name = trace.lane_name(trace.lane[seq])
        detail = trace.details[trace.detail[seq]]
        if code in STATE_NAMES:
            seen.states[name].add(STATE_NAMES[code])
        elif code == Code.WAKE:
            seen.causes.add(detail.get("cause", ""))
            if detail.get("cancel"):
                seen.cancels.add(detail.get("cause", ""))
        elif code == Code.SWITCH:
            seen.switches += 1
        elif code == Code.OUTPUT:
            stream = seen.errors if detail.get("stream") == "stderr" else seen.printed
            stream[name].append(detail["text"])
    return seen


def trace_program(name: str, model: str | None = None, stdin: bytes = b"",
                  env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Seen:
    """Traces tests/programs/NAME.py ARGS in a real child, its stdin fed `stdin`."""
    target = resolve_target(str(PROGRAMS / f"{name}.py"), args, model)

    async def run() -> RunResult:
        read_end, write_end = os.pipe()
        os.write(write_end, stdin)
        os.close(write_end)
        saved = {key: os.environ.get(key) for key in env or {}}
        os.environ.update(env or {})
        try:
            traced = Run(target, stdin=read_end)
            await traced.start()
        finally:
            os.close(read_end)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return await traced.wait(90)

    seen = summarise(asyncio.run(run()))
    assert_world_intact(seen)
    return seen


def assert_world_intact(seen: Seen) -> None:
    """What must hold for every program: none of Loopscope's insides shown, no shared names,
    a stream that arrived whole, and never a silent empty recording."""
    result = seen.result
    for mark in HARNESS_MARKS:
        assert mark not in result.stderr, result.stderr
    names = [lane.name for lane in seen.trace.lanes]
    assert len(names) == len(set(names)), names
    assert result.status in ("ok", "error"), (result.status, result.error, result.stderr)
    if not seen.followed():
        assert result.notes, "an empty recording must say why"


def assert_ok(seen: Seen, notes: int = 0) -> None:
    assert seen.result.status == "ok", (seen.result.error, seen.result.stderr)
    assert seen.result.exit_code == 0
    assert len(about_the_program(seen.result.notes)) == notes, seen.result.notes


# -- asyncio, after the documentation's examples ----------------------------------------------


def test_say_after_tasks_sleep_and_print_on_their_own_lanes() -> None:
    seen = trace_program("asyncio_say_after")
    assert_ok(seen)
    assert seen.kinds["asyncio loop"] == LaneKind.LOOP
    say = seen.lanes(r"say_after \(Task-\d+\)")
    assert len(say) == 2
    assert sorted(text for lane in say for text in seen.printed[lane]) == ["hello", "world"]
    for lane in say:
        assert {"running", "sleeping", "ready"} <= seen.states[lane]
    assert {"poll", "dispatch"} <= seen.states["asyncio loop"]
    assert {"timer", "task"} <= seen.causes


def test_taskgroup_tasks_keep_the_names_the_program_gave() -> None:
    seen = trace_program("asyncio_taskgroup")
    assert_ok(seen)
    assert seen.printed["first"] == ["hello"] and seen.printed["second"] == ["world"]
    main = seen.lanes(r"main \(Task-\d+\)")[0]
    assert "blocked" in seen.states[main]
    assert seen.printed[main] == ["both done: hello world"]


def test_queue_workers_block_on_the_queue_and_are_cancelled_at_the_end() -> None:
    seen = trace_program("asyncio_queue_workers")
    assert_ok(seen)
    workers = seen.lanes(r"worker \(Task-\d+\)")
    assert len(workers) == 3
    for lane in workers:
        assert {"blocked", "sleeping", "running"} <= seen.states[lane]
    assert sum(len(seen.printed[lane]) for lane in workers) == 6
    assert "future" in seen.cancels  # task.cancel() from main, narrated as a cancellation


def test_tcp_echo_server_and_clients_wait_on_their_sockets() -> None:
    seen = trace_program("asyncio_tcp_echo")
    assert_ok(seen)
    clients = seen.lanes(r"tcp_echo_client \(Task-\d+\)")
    handlers = seen.lanes(r"handle_echo \(Task-\d+\)")
    assert len(clients) == 3 and len(handlers) == 3
    for lane in clients + handlers:
        assert "io-wait" in seen.states[lane]
    assert "fd" in seen.causes
    assert sorted(text for lane in clients for text in seen.printed[lane]) == [
        f"Received: 'hello {i}'" for i in range(3)]


def test_timeouts_and_cancellations_are_told_as_such() -> None:
    seen = trace_program("asyncio_timeouts")
    assert_ok(seen)
    assert "timer" in seen.cancels  # asyncio.timeout() firing cancels main's wait
    assert "future" in seen.cancels  # victim.cancel() from main
    assert seen.printed[seen.lanes(r"main \(Task-\d+\)")[0]] == [
        "timeout() fired", "wait_for() timed out", "victim cancelled"]
    assert "victim" in seen.kinds


def test_decorated_coroutines_are_named_after_the_function_and_loops_numbered() -> None:
    seen = trace_program("asyncio_decorated")
    assert_ok(seen)
    assert seen.lanes("asyncio loop") and seen.lanes("asyncio loop #2")
    fetches = seen.lanes(r"fetch \(Task-\d+\)")
    assert len(fetches) == 6
    assert not seen.lanes(r".*wrapper.*")
    assert seen.printed[fetches[0]] == ["calling fetch(1,)"]


def test_work_handed_to_threads_runs_on_lanes_of_its_own_while_the_caller_waits() -> None:
    seen = trace_program("asyncio_to_thread")
    assert_ok(seen)
    main = seen.lanes(r"main \(Task-\d+\)")[0]
    assert "blocked" in seen.states[main]
    assert seen.printed[main] == ["threads returned [0.05, 0.05]"]
    threads = seen.lanes(r"blocking_io( #2)?")
    assert len(threads) == 2  # to_thread's and run_in_executor's
    trace = seen.trace
    for name in threads:
        # the work runs, then sleeps in time.sleep until it returns
        assert seen.kinds[name] == LaneKind.THREAD
        assert seen.states[name] == {"running", "sleeping"}
        lane = next(info.id for info in trace.lanes if info.name == name)
        sleeps = [trace.details[trace.detail[seq]] for seq in range(len(trace))
                  if trace.lane[seq] == lane and trace.code[seq] == Code.SLEEPING]
        assert [sleep["delay_s"] for sleep in sleeps] == [0.05]
        ends = [trace.details[trace.detail[seq]] for seq in range(len(trace))
                if trace.lane[seq] == lane and trace.code[seq] == Code.END]
        assert ends == [{"result": "0.05"}]
        # what the function printed in the pool's thread is on its lane, not a worker's
        assert seen.printed[name] == ["worker sleeps 0.05"]
    assert not [name for name, kind in seen.kinds.items()
                if kind == LaneKind.THREAD and name not in threads]


def test_threads_with_their_own_loops_run_untraced_with_a_note() -> None:
    seen = trace_program("asyncio_thread_loops")
    assert_ok(seen, notes=1)
    assert "left untraced" in seen.result.notes[0]
    assert seen.lanes("asyncio loop") == ["asyncio loop"]  # the main thread's, and only it
    assert "threads ticked 120" in seen.result.stdout


def test_stdin_reaches_the_program_and_its_exit_status_and_stderr_come_back() -> None:
    seen = trace_program("asyncio_stdin_exit", stdin=b"alice\nbob\n")
    assert seen.result.status == "error" and seen.result.exit_code == 3
    greeters = seen.lanes(r"greet \(Task-\d+\)")
    assert sorted(text for lane in greeters for text in seen.printed[lane]) == [
        "hello alice", "hello bob"]
    main = seen.lanes(r"main \(Task-\d+\)")[0]
    assert seen.errors[main] == ["greeted 2"]  # a stderr line, on the lane that wrote it
    assert "greeted 2" in seen.result.stderr


def test_a_program_that_also_drives_generators_says_so() -> None:
    seen = trace_program("asyncio_with_generators")
    assert_ok(seen)  # both models followed: nothing left to say
    assert len(seen.lanes(r"sample \((Task-\d+|eager)\)( #\d+)?")) == 3
    # the averager is a generator lane beside the tasks, driven by the main task's sends
    assert seen.kinds["averager"] == LaneKind.GENERATOR
    main = seen.lanes(r"main \(Task-\d+\)")[0]
    assert parent_of(seen, "averager") == main
    assert switches_between(seen, main, "averager") >= 4  # next() and three sends
    assert seen.printed[main] == ["average 1.0", "average 1.5", "average 2.0"]
    # the generator expression gather() unpacks at once is no lane
    assert not seen.lanes("<genexpr>.*")


def parent_of(seen: Seen, lane_name: str) -> str:
    """The name of the lane that spawned `lane_name`."""
    trace = seen.trace
    for seq in range(len(trace)):
        if trace.code[seq] == Code.SPAWN and trace.lane_name(trace.lane[seq]) == lane_name:
            return trace.lane_name(trace.other[seq])
    raise AssertionError(f"no spawn of {lane_name}")


def switches_between(seen: Seen, first: str, second: str) -> int:
    trace = seen.trace
    return sum(1 for seq in range(len(trace)) if trace.code[seq] == Code.SWITCH and {
        trace.lane_name(trace.lane[seq]), trace.lane_name(trace.other[seq])} == {first, second})


def test_generators_inside_asyncio_tasks_get_lanes_beside_the_tasks() -> None:
    seen = trace_program("asyncio_pipeline")
    assert_ok(seen)
    producer = seen.lanes(r"producer \(Task-\d+\)")[0]
    consumer = seen.lanes(r"consumer \(Task-\d+\)")[0]
    assert seen.kinds[producer] == seen.kinds[consumer] == LaneKind.TASK
    assert {"sleeping", "running"} <= seen.states[producer]
    assert "blocked" in seen.states[consumer]
    # the pipeline: the producer task steps through the generator expression, which pulls
    # from numbers(), which pulls from read_lines() (a module beside the script)
    for lane in ("<genexpr>", "numbers", "read_lines", "running_total"):
        assert seen.kinds[lane] == LaneKind.GENERATOR, seen.kinds
        assert {"running", "blocked"} <= seen.states[lane]
    assert parent_of(seen, "<genexpr>") == producer
    assert parent_of(seen, "numbers") == "<genexpr>"
    assert parent_of(seen, "read_lines") == "numbers"
    assert parent_of(seen, "running_total") == consumer
    assert switches_between(seen, producer, "<genexpr>") >= 8  # 4 squares and the end
    assert switches_between(seen, "numbers", "read_lines") >= 10
    assert seen.printed[consumer] == ["total 1", "total 5", "total 14", "total 30"]
    # sum() over a generator expression is one loop, not a lane
    assert seen.lanes("<genexpr>.*") == ["<genexpr>"]
    assert "checked True" in seen.result.stdout


def test_uvloop_chosen_three_ways_is_traced() -> None:
    if importlib.util.find_spec("uvloop") is None:  # only the child needs to import it
        pytest.skip("uvloop is not installed (it has no Windows wheels)")
    seen = trace_program("uvloop_three_ways")
    assert_ok(seen)
    assert seen.lanes(r"asyncio loop( #[23])?") == [
        "asyncio loop", "asyncio loop #2", "asyncio loop #3"]
    mains = seen.lanes(r"main \(Task-\d+\)")
    fetches = seen.lanes(r"fetch \(Task-\d+\)")
    assert len(mains) == 3 and len(fetches) == 6
    for lane in fetches:
        assert {"ready", "running", "sleeping"} <= seen.states[lane]
    assert "timer" in seen.causes  # the sleeps' timers woke the fetches
    for lane in mains:
        assert "blocked" in seen.states[lane]  # on gather, until the fetches ended
    assert sorted(text for lane in mains for text in seen.printed[lane]) == [
        "install True [1, 2]", "run True [1, 2]", "runner True [1, 2]"]
    # each uvloop loop lane says in one line what cannot be seen inside libuv
    trace = seen.trace
    marks = [trace.details[trace.detail[seq]]["text"] for seq in range(len(trace))
             if trace.code[seq] == Code.MARK and trace.lane_name(trace.lane[seq]).startswith(
                 "asyncio loop")]
    assert len(marks) == 3 and all("uvloop waits inside libuv" in mark for mark in marks)


def test_a_program_that_chooses_its_own_loop_is_traced_or_says_why() -> None:
    seen = trace_program("asyncio_own_loop")
    assert seen.result.status == "ok"
    if seen.followed():  # the loop it chose was traced: its tasks are there
        assert seen.lanes(r"main \(Task-\d+\)")
    else:
        assert any("chose its own event loop" in note and "CountingLoop" in note
                   for note in seen.result.notes), seen.result.notes


# -- aiohttp ---------------------------------------------------------------------------------


def test_aiohttp_handlers_overlap_and_clients_wait_on_sockets() -> None:
    seen = trace_program("aiohttp_hello")
    assert_ok(seen)
    fetches = seen.lanes(r"fetch \(Task-\d+\)")
    assert len(fetches) == 3
    for lane in fetches:
        assert "io-wait" in seen.states[lane]
    # each request's handler task is named by the request it serves and the handler it runs
    handlers = seen.lanes(r"GET /(hello/alice|hello/bob|) → hello \((Task-\d+|eager)\)( #\d+)?")
    assert sorted(name.split(" (")[0] for name in handlers) == [
        "GET / → hello", "GET /hello/alice → hello", "GET /hello/bob → hello"]
    for lane in handlers:
        assert "sleeping" in seen.states[lane]
    assert {"fd", "timer"} <= seen.causes


def test_aiohttp_websocket_echo() -> None:
    seen = trace_program("aiohttp_websocket")
    assert_ok(seen)
    main = seen.lanes(r"main \(Task-\d+\)")[0]
    assert seen.printed[main] == ["echo: one", "echo: two", "echo: three"]
    assert "io-wait" in seen.states[main]
    assert "fd" in seen.causes


# -- gevent and greenlet ------------------------------------------------------------------------


def test_gevent_joinall_tasks_sleep_through_the_hub() -> None:
    seen = trace_program("gevent_joinall")
    assert_ok(seen)
    tasks = seen.lanes(r"task(-\d)?")
    assert len(tasks) == 3
    for lane in tasks:
        assert "sleeping" in seen.states[lane]
    assert {"poll", "dispatch"} <= seen.states["gevent hub"]
    assert "timer" in seen.causes
    printed = [text for lane in tasks for text in seen.printed[lane]]
    assert sorted(printed) == ["Task 0 done", "Task 1 done", "Task 2 done"]


def test_gevent_stream_server_and_clients() -> None:
    seen = trace_program("gevent_echo_server")
    assert_ok(seen)
    clients = seen.lanes(r"client(-\d)?")
    assert len(clients) == 3 and len(seen.lanes(r"echo(-\d)?")) == 3
    for lane in clients:
        assert "io-wait" in seen.states[lane]
    assert "fd" in seen.causes


def test_a_gevent_pools_map_is_named_for_the_call_and_its_workers_for_the_function() -> None:
    seen = trace_program("gevent_pool_map")
    assert_ok(seen)
    greenlets = {name for name, kind in seen.kinds.items() if kind == LaneKind.GREENLET}
    # nine calls of square, one lane each; the greenlets that hand them out are not "square"
    assert greenlets == {"map(square)", "imap", "imap-2", "square",
                         *(f"square-{n}" for n in range(2, 10))}
    assert seen.printed["main"] == ["[0, 1, 4]"] * 3


def test_gevent_queue_workers_take_turns() -> None:
    seen = trace_program("gevent_queue")
    assert_ok(seen)
    got = [text for lane in seen.lanes(r"worker(-\d)?") for text in seen.printed[lane]]
    assert len(got) == 6


def test_monkey_patched_threads_are_named_after_their_target() -> None:
    seen = trace_program("gevent_threads")
    assert_ok(seen)
    downloads = seen.lanes(r"download(-\d)?")
    assert len(downloads) == 3 and not seen.lanes(r".*_bootstrap.*")
    for lane in downloads:
        assert {"running", "sleeping"} <= seen.states[lane]
    assert "finished in order [2, 1, 0]" in seen.result.stdout


def test_greenlets_and_their_generators_are_followed_together() -> None:
    seen = trace_program("gevent_with_generators")
    assert_ok(seen)
    workers = seen.lanes(r"worker(-\d)?")
    tickets = seen.lanes(r"tickets(-\d)?")
    assert len(workers) == 2 and len(tickets) == 2
    for worker, ticket in zip(sorted(workers), sorted(tickets), strict=True):
        assert seen.kinds[worker] == LaneKind.GREENLET
        assert seen.kinds[ticket] == LaneKind.GENERATOR
        assert parent_of(seen, ticket) == worker
        assert switches_between(seen, worker, ticket) >= 6  # three tickets and the end
        assert {"running", "sleeping"} <= seen.states[worker]
    assert sorted(text for lane in workers for text in seen.printed[lane]) == [
        f"handled {name}{number}" for name in "ab" for number in range(3)]


def test_a_gevent_spawn_is_recorded_when_it_is_called_from_the_spawning_lane() -> None:
    seen = trace_program("gevent_with_generators")
    trace = seen.trace
    order = []
    for seq in range(len(trace)):
        name = trace.lane_name(trace.lane[seq])
        if trace.code[seq] == Code.SPAWN and name.startswith("worker"):
            order.append(("spawn", name, trace.lane_name(trace.other[seq])))
        elif trace.code[seq] == Code.OUTPUT and name == "main":
            order.append(("print", trace.details[trace.detail[seq]]["text"], name))
        elif trace.code[seq] == Code.RUNNING and name.startswith("worker") and not any(
                step[0] == "runs" and step[1] == name for step in order):
            order.append(("runs", name, ""))
    # each spawn comes from main, before main's next print and before the greenlet first runs
    assert order[:4] == [("spawn", "worker", "main"), ("print", "spawned a", "main"),
                         ("spawn", "worker-2", "main"), ("print", "spawned b", "main")], order
    assert [step[0] for step in order[4:6]] == ["runs", "runs"], order


def test_wsgi_handlers_are_named_after_the_application() -> None:
    seen = trace_program("gevent_wsgi")
    assert_ok(seen)
    handlers = seen.lanes(r"hello_app(-\d)?")
    assert len(handlers) == 2 and not seen.lanes(r".*_handle_and_close.*")
    for lane in handlers:
        assert "sleeping" in seen.states[lane]
    fetches = seen.lanes(r"fetch(-\d)?")
    assert sorted(text for lane in fetches for text in seen.printed[lane]) == [
        "hello alice", "hello bob"]
    assert all("io-wait" in seen.states[lane] for lane in fetches)


def test_work_handed_to_gevents_threadpool_runs_on_lanes_of_its_own() -> None:
    seen = trace_program("gevent_threadpool")
    assert_ok(seen)
    threads = seen.lanes(r"blocking_sum( #2)?")
    assert len(threads) == 2
    for name in threads:
        assert seen.kinds[name] == LaneKind.THREAD and seen.states[name] == {"running"}
    assert sorted(line for name in threads for line in seen.printed[name]) == [
        "summed 10", "summed 100"]  # printed in the pool's threads, on the work's lanes
    assert seen.printed["ticker"] == ["tick", "tick", "tick"]  # the hub kept running
    assert seen.printed["main"] == ["sums [45, 4950]"]


def test_greenlets_switch_by_hand() -> None:
    seen = trace_program("greenlet_pingpong")
    assert_ok(seen)
    assert seen.printed["ping"] == ["ping 0", "ping 1", "ping 2"]
    assert seen.printed["pong"] == ["pong 0", "pong 1", "pong 2"]
    assert seen.switches >= 6


# -- generators and hand-driven coroutines ---------------------------------------------------


def test_a_generator_scheduler_interleaves_its_tasks() -> None:
    seen = trace_program("gen_scheduler")
    assert_ok(seen)
    assert seen.kinds["mainloop"] == LaneKind.MAIN
    assert seen.printed["countdown"] == ["foo 3", "foo 2", "foo 1"]
    assert seen.printed["countdown-2"] == ["bar 2", "bar 1"]
    order = [seen.trace.lane_name(seen.trace.lane[seq]) for seq in range(len(seen.trace))
             if seen.trace.code[seq] == Code.OUTPUT]
    assert order[:4] == ["countdown", "countdown-2", "countdown", "countdown-2"]


def test_a_pipeline_in_a_script_that_imports_asyncio_is_followed_as_generators() -> None:
    guessed = trace_program("gen_pipeline")
    assert guessed.result.trace.meta["model"] == "asyncio"
    assert_ok(guessed)  # no loop ran, the generators were followed beside it: nothing missed
    followed = trace_program("gen_pipeline", model="generator")
    assert_ok(followed)
    for seen in (guessed, followed):
        assert {"numbers", "evens", "squares"} <= set(seen.kinds)
        assert seen.kinds["main"] == LaneKind.MAIN
        assert seen.switches > 20
    assert guessed.switches == followed.switches


def test_coroutine_decorated_generators_are_driven_by_main() -> None:
    seen = trace_program("gen_coroutine_decorator")
    assert_ok(seen)
    assert seen.kinds["main"] == LaneKind.MAIN
    assert "start" not in seen.kinds
    assert seen.printed["printer"] == ["python generators", "python coroutines"]


def test_hand_driven_coroutines_are_followed_like_generators() -> None:
    seen = trace_program("hand_driven_coroutines")
    assert_ok(seen)
    assert seen.kinds["run"] == LaneKind.MAIN
    assert len(seen.lanes(r"fib(-\d+)?")) == 25  # fib(6) makes 25 calls
    assert seen.lanes(r"switch(-\d+)?")
    assert seen.printed["run"] == ["(8, 13)"]


def test_hand_driven_coroutines_guessed_as_asyncio_say_how_to_follow_them() -> None:
    seen = trace_program("pyperf_coroutines")  # imports nothing that names a model
    assert seen.result.trace.meta["model"] == "asyncio"
    assert seen.result.notes and "--model" in seen.result.notes[0]


def test_a_trio_nursery_is_followed_with_no_note_about_coroutines_driven_by_hand() -> None:
    seen = trace_program("trio_nursery")
    assert_ok(seen)
    assert seen.kinds == {"trio run": LaneKind.LOOP, "parent": LaneKind.TASK,
                          "child": LaneKind.TASK, "child-2": LaneKind.TASK}
    assert sorted(seen.printed["child"] + seen.printed["child-2"]) == [
        "first finished", "first started", "second finished", "second started"]
    assert seen.printed["parent"] == ["parent done"]
    # trio drives its tasks' coroutines: that is the model's run, not the program's hand
    assert about_the_program(seen.result.notes) == []


@pytest.mark.parametrize(("backend", "model", "follow"), [
    ("trio", None, "run with --model trio"),  # anyio: guessed asyncio
    ("asyncio", "trio", "run with --model asyncio"),
])
def test_anyio_on_a_backend_chosen_as_it_runs_says_which_model_follows_it(
        backend: str, model: str | None, follow: str) -> None:
    seen = trace_program("anyio_backend_from_argv", model=model, args=(backend,))
    assert seen.result.status == "ok"
    notes = about_the_program(seen.result.notes)
    assert len(notes) == 1 and notes[0].endswith(follow), notes
    # and on the model it names, the run is followed
    other = trace_program("anyio_backend_from_argv", model=follow.rsplit(" ", 1)[1],
                          args=(backend,))
    assert_ok(other)
    assert len(other.lanes(r".*worker.*")) == 3
    assert [line for lines in other.printed.values() for line in lines] == ["[0, 1, 4]"]


def test_a_program_that_raises_shows_a_traceback_from_its_own_code() -> None:
    seen = trace_program("raises_in_generator")
    result = seen.result
    assert result.status == "error" and result.exit_code == 1
    assert result.traceback is not None
    frames = re.findall(r'File "([^"]+)"', result.traceback)
    assert frames and all(frame.endswith("raises_in_generator.py") for frame in frames)
    assert "ValueError: invalid literal" in result.stderr


def test_the_programs_own_profiler_and_trace_function_work() -> None:
    seen = trace_program("profiled_generators")
    assert_ok(seen)
    assert "total 13 profiled calls True traced lines True" in seen.result.stdout
    assert seen.lanes(r"ticks(-\d)?")


# -- select, selectors, poll, epoll -----------------------------------------------------------


@pytest.mark.parametrize("name", ["select_echo", "selectors_echo", "selectors_poll_selector",
                                  "poll_echo", "epoll_echo"])
def test_echo_servers_poll_on_the_loop_lane_and_wake_their_connections(name: str) -> None:
    if name == "epoll_echo" and not hasattr(__import__("select"), "epoll"):
        pytest.skip("no epoll here")
    seen = trace_program(name)
    assert_ok(seen)
    assert seen.kinds["select loop"] == LaneKind.LOOP
    assert "poll" in seen.states["select loop"]
    listeners = seen.lanes(r"listener :\d+")
    conns = seen.lanes(r"conn 127\.0\.0\.1:\d+")
    assert len(listeners) == 1 and len(conns) >= 2
    for lane in listeners + conns:
        assert {"io-wait", "ready", "running"} <= seen.states[lane]
    assert seen.causes == {"fd"}


# -- processes and threads ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_process_pool_runs_and_its_workers_go_untraced(method: str) -> None:
    seen = trace_program("mp_fork_pool", args=(method,))
    assert_ok(seen)
    assert "40425" in seen.result.stdout
    assert seen.kinds["main"] == LaneKind.MAIN  # the program's flow, not multiprocessing's
    assert "numbers" in seen.kinds


def test_a_pool_of_processes_under_the_default_model_says_why_nothing_was_recorded() -> None:
    seen = trace_program("mp_pool_map")
    assert seen.result.trace.meta["model"] == "asyncio"  # it names no model: the default
    assert "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]" in seen.result.stdout
    assert not seen.followed()
    assert about_the_program(seen.result.notes) == [
        "recorded no asyncio tasks: the program hands its work to other processes "
        "(multiprocessing), and loopscope follows only the process it starts"]


def test_a_thread_pool_of_multiprocessing_is_not_taken_for_other_processes() -> None:
    # it imports multiprocessing, but its pool's workers are threads of this process
    seen = trace_program("mp_thread_pool")
    assert "499500" in seen.result.stdout
    assert not seen.followed()
    assert about_the_program(seen.result.notes) == [
        "recorded no asyncio tasks: the program's multiprocessing ThreadPool ran its work in "
        "threads, and loopscope records a thread only when it prints, sleeps or waits on the "
        "program's own locks, queues or events"]


def test_a_bare_fork_leaves_the_parent_traced_and_the_child_free() -> None:
    seen = trace_program("os_fork")
    assert_ok(seen)
    assert "child counted [3, 2, 1]" in seen.result.stdout
    assert "parent counted [2, 1] child exit 0" in seen.result.stdout
    assert list(seen.lanes(r"countdown(-\d)?")) == ["countdown"]  # the parent's only


def test_threads_and_a_pool_beside_traced_generators() -> None:
    seen = trace_program("threads_and_pool")
    assert_ok(seen)
    assert "4950 [45, 190, 435]" in seen.result.stdout
    assert "chunks" in seen.kinds


def test_prints_from_plain_threads_land_on_lanes_of_those_threads() -> None:
    seen = trace_program("threads_printing")
    assert_ok(seen)
    trace = seen.trace
    assert seen.kinds["heartbeat"] == LaneKind.THREAD
    assert {seen.kinds[name] for name in ("worker", "worker #2")} == {LaneKind.THREAD}
    beats = seen.printed["heartbeat"]
    assert beats and beats == [f"beat {n}" for n in range(1, len(beats) + 1)]
    assert sorted(seen.printed["worker"] + seen.printed["worker #2"]) == [
        "left step 0", "left step 1", "right step 0", "right step 1"]
    main = seen.lanes(r"main \(Task-\d+\)")[0]
    assert seen.printed[main] == ["loop done"]
    # each line keeps the time it was printed: beats come while the loop waits in its poll,
    # and in the order each thread printed them, before its lane ends
    printed_at = {}
    polls = []
    for seq in range(len(trace)):
        name = trace.lane_name(trace.lane[seq])
        if trace.code[seq] == Code.OUTPUT:
            printed_at[trace.details[trace.detail[seq]]["text"]] = trace.ts[seq]
        elif name == "asyncio loop" and trace.code[seq] in (Code.POLL, Code.DISPATCH):
            polls.append((trace.code[seq], trace.ts[seq]))
    waits = [(start, end) for (code, start), (_, end) in itertools.pairwise(polls)
             if code == Code.POLL]
    assert any(start < printed_at[beat] < end for beat in beats for start, end in waits)
    ends = {trace.lane_name(trace.lane[seq]): trace.ts[seq] for seq in range(len(trace))
            if trace.code[seq] == Code.END}
    for lane in ("worker", "worker #2"):
        first, second = seen.printed[lane]
        assert printed_at[first] < printed_at[second] <= ends[lane]
    assert printed_at[beats[-1]] <= ends["heartbeat"]


def loop_polls(seen: Seen, loop: str) -> list[tuple[float | None, int]]:
    """(recorded timeout, how long it lasted in ns) of each poll of the loop lane `loop`."""
    trace = seen.trace
    states = [(trace.code[seq], trace.ts[seq], trace.details[trace.detail[seq]])
              for seq in range(len(trace))
              if trace.lane_name(trace.lane[seq]) == loop and trace.code[seq] in STATE_NAMES]
    return [(detail["timeout_s"], end - start)
            for (code, start, detail), (_, end, _) in itertools.pairwise(states)
            if code == Code.POLL]


def test_select_poll_with_timeout_zero_is_short_and_a_blocked_poll_is_long() -> None:
    seen = trace_program("poll_timeouts")
    assert_ok(seen)
    assert "busy polls many b'x'" in seen.result.stdout
    polls = loop_polls(seen, "select loop")
    busy = [lasted for timeout, lasted in polls if timeout == 0.0]
    blocked = [lasted for timeout, lasted in polls if timeout is None]
    timed = [lasted for timeout, lasted in polls if timeout == 0.05]
    assert len(busy) > 1 and len(blocked) == 1 and len(timed) == 1, polls
    # the blocked poll waited for the thread's send, which came 0.3 s after the thread started
    # (a loaded machine may take a while to get from starting the thread into the poll)
    assert blocked[0] >= 50_000_000
    assert timed[0] >= 40_000_000  # its own 50 ms
    assert max(busy) < blocked[0]  # a poll that never waits is never shown as waiting


def test_gevent_polls_are_not_cut_short_by_another_threads_hub() -> None:
    seen = trace_program("gevent_poll_timeouts")
    assert_ok(seen)
    polls = loop_polls(seen, "gevent hub")
    # the longest wait is the one for the pool's write after its real 0.2 s sleep: no timer
    # of the traced thread bounds it (the pool's own hub slept on a timer earlier)
    timeout, longest = max(polls, key=lambda poll: poll[1])
    assert timeout is None and longest >= 100_000_000, polls
    # the busy loop's polls (gevent's poll(0) waits on a zero Timeout) say 0.0 and are short
    busy = [lasted for timeout, lasted in polls if timeout == 0.0]
    assert len(busy) > 1 and max(busy) < longest
    assert all(timeout is None or timeout >= 0.0 for timeout, _ in polls)


# -- pyperformance's concurrency benchmarks, their functions run directly ---------------------


def _benchmarks_env() -> dict[str, str]:
    pyperformance = pytest.importorskip("pyperformance")
    folder = Path(pyperformance.__file__).resolve().parent / "data-files" / "benchmarks"
    # the benchmarks are installed among the libraries: name them as the program's own
    return {"LOOPSCOPE_PROGRAM_PATHS": str(folder)}


def test_pyperformance_async_tree() -> None:
    seen = trace_program("pyperf_async_tree", env=_benchmarks_env())
    assert_ok(seen)
    assert seen.lanes("asyncio loop") and seen.lanes("asyncio loop #2")
    gathers = seen.lanes(r"AsyncTree\.recurse_with_gather \(Task-\d+\)")
    groups = seen.lanes(r"AsyncTree\.recurse_with_task_group \(Task-\d+\)")
    assert len(gathers) == 39 and len(groups) == 39  # 3 + 9 + 27 below each root
    for lane in gathers + groups:
        assert "running" in seen.states[lane]
    assert any("sleeping" in seen.states[lane] for lane in gathers)
    assert {"timer", "task"} <= seen.causes


def test_pyperformance_coroutines() -> None:
    seen = trace_program("pyperf_coroutines", model="generator", env=_benchmarks_env())
    assert_ok(seen)
    # fibonacci(7) makes 41 calls; the 40 awaited ones return without ever suspending, so they
    # are calls in the one the trampoline drives, not lanes
    assert seen.lanes(r"fibonacci(-\d+)?") == ["fibonacci"]
    assert seen.printed["main"] == ["fibonacci(7) = 13"]


def test_pyperformance_generators() -> None:
    seen = trace_program("pyperf_generators", model="generator", env=_benchmarks_env())
    assert_ok(seen)
    assert len(seen.lanes(r"__iter__(-\d+)?")) == 15  # one per tree node
    assert seen.switches >= 2 * 15


def test_pyperformance_async_generators() -> None:
    seen = trace_program("pyperf_async_generators", env=_benchmarks_env())
    assert_ok(seen)
    task = seen.lanes(r"bench_async_generators \(Task-\d+\)")
    assert len(task) == 1 and "running" in seen.states[task[0]]


def test_the_corpus_has_at_least_25_programs() -> None:
    programs = [path for path in PROGRAMS.glob("*.py")
                if not path.name.startswith(("test_", "_"))]
    assert len(programs) >= 25


def test_the_programs_own_settrace_sees_no_loopscope_frames() -> None:
    seen = trace_program("asyncio_settrace")
    assert_ok(seen)
    assert "total 3 saw child True foreign frames []" in seen.result.stdout


def test_tasks_made_by_task_factories_are_named_as_asyncio_names_them() -> None:
    # 3.13.0's create_task calls set_name(None) after any task factory, and libraries pass
    # name=None on to set_name: asyncio then calls the task "None" (get_name(), its repr),
    # and so does its lane, in the "<coroutine> (<task name>)" of every unnamed task.
    seen = trace_program("asyncio_task_factory_names")
    assert_ok(seen)
    named = {}
    for lane in seen.lanes(r"child \(.*\)( #\d+)?"):
        for line in seen.printed[lane]:
            label, task_name = line.split(": ")
            named[label] = (re.sub(r" #\d+$", "", lane), task_name)
    expected_labels = {"plain", "set_name(None)"} | (
        {"eager"} if hasattr(asyncio, "eager_task_factory") else set())
    assert set(named) == expected_labels
    for lane, task_name in named.values():
        assert lane == f"child ({task_name})"
    assert named["set_name(None)"][1] == "None"
