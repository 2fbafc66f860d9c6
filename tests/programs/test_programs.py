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
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loopscope.tracer.events import STATE_NAMES, Code, LaneKind
from loopscope.tracer.runner import Run, RunResult
from loopscope.tracer.target import resolve_target
from loopscope.tracer.trace import Trace

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
    assert len(seen.result.notes) == notes, seen.result.notes


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
        assert seen.kinds[name] == LaneKind.THREAD and seen.states[name] == {"running"}
        lane = next(info.id for info in trace.lanes if info.name == name)
        ends = [trace.details[trace.detail[seq]] for seq in range(len(trace))
                if trace.lane[seq] == lane and trace.code[seq] == Code.END]
        assert ends == [{"result": "0.05"}]


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
    assert seen.result.status == "ok"
    assert len(seen.lanes(r"sample \((Task-\d+|eager)\)( #\d+)?")) == 3
    if sys.version_info >= (3, 12):  # seen by a sys.monitoring census
        assert len(seen.result.notes) == 1, seen.result.notes
        assert "sends values into generators (averager)" in seen.result.notes[0]
        assert "--model generator" in seen.result.notes[0]
    else:  # 3.11 has no cheap way to see the sends: nothing is said
        assert seen.result.notes == []


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


def test_a_pipeline_guessed_as_asyncio_says_so_and_is_followed_as_generators() -> None:
    guessed = trace_program("gen_pipeline")
    assert guessed.result.trace.meta["model"] == "asyncio"
    assert_ok(guessed, notes=1)
    assert "--model generator" in guessed.result.notes[0]
    assert "numbers" in guessed.result.notes[0]
    followed = trace_program("gen_pipeline", model="generator")
    assert_ok(followed)
    assert {"numbers", "evens", "squares"} <= set(followed.kinds)
    assert followed.switches > 20


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
