"""What a user pays: whole processes, `loopscope trace prog.py -o t.loopscope` against
`python prog.py`, on programs nobody here tuned for.

    .venv/bin/python bench/bench_programs.py [--rounds N] [--only NAME ...]

The programs are pyperformance's concurrency benchmarks (their functions called directly,
no pyperf worker processes), our generator scheduler whose `run()` method sends to its tasks,
a generator pipeline whose items cost real work (plain calls between hand-offs, where 3.11's
tracing mode would show),
a gevent server with its clients, and the select server scenario. Each program runs as a
script; rounds alternate the untraced and traced process so a machine that slows down slows
both. Start-up and saving are included: this is the time between spawning the process and
its exit. Printed per program: the median untraced and traced wall time, the median of the
pairs' ratios, events recorded per second of traced run, and the parent's peak memory.
Goals (issue 11): asyncio programs <= 1.5x, `generators` under the generator model <= 6x,
the fixed start-up cost (the empty script) <= 0.10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Loads one of pyperformance's benchmark modules by its folder name, without running it. The
# module is copied beside the script first: it is the program's own code, as it would be for a
# user who wrote it (from site-packages it would be library code, which no model follows).
_PYPERFORMANCE = """
import importlib.util, pathlib, shutil, sys
import pyperformance
_root = pathlib.Path(pyperformance.__file__).parent / "data-files" / "benchmarks"
def bench_module(name):
    path = pathlib.Path(__file__).with_name(name + ".py")
    shutil.copyfile(_root / name / "run_benchmark.py", path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
"""


@dataclass(frozen=True)
class Program:
    name: str
    source: str
    model: str | None = None  # --model, where the import guess is not what the bench means
    uses_pyperformance: bool = False


def _async_tree(variant: str, task_groups: bool = False) -> str:
    return f"""
import asyncio
tree = bench_module("bm_async_tree")
cls = {{"none": tree.NoneAsyncTree, "io": tree.IOAsyncTree,
        "memoization": tree.MemoizationAsyncTree, "cpu_io_mixed": tree.CpuIoMixedAsyncTree,
        "eager": tree.EagerAsyncTree}}[{variant!r}]
asyncio.run(cls(use_task_groups={task_groups}).run())
"""


PROGRAMS = (
    Program("empty script (fixed cost)", "pass\n"),
    Program("async_tree (gather)", _async_tree("none"), uses_pyperformance=True),
    Program("async_tree io", _async_tree("io"), uses_pyperformance=True),
    Program("async_tree memoization", _async_tree("memoization"), uses_pyperformance=True),
    Program("async_tree cpu_io_mixed", _async_tree("cpu_io_mixed"), uses_pyperformance=True),
    Program("async_tree cpu_io_mixed TaskGroup", _async_tree("cpu_io_mixed", True),
            uses_pyperformance=True),
    Program("async_tree eager", _async_tree("eager"), uses_pyperformance=True),
    # pyperformance's main() listens on the fixed port 8882; this is the same main() on port
    # 0: the server takes a free port and tells the client, so two runs cannot collide
    Program("asyncio_tcp", """
import asyncio
tcp = bench_module("bm_asyncio_tcp")
async def main():
    server = await asyncio.start_server(tcp.handle_echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        asyncio.create_task(server.start_serving())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        received = 0
        while data := await reader.read(tcp.CHUNK_SIZE):
            received += len(data)
        assert received == tcp.CHUNK_SIZE * 100
        writer.close()
        await writer.wait_closed()
asyncio.run(main())
""", uses_pyperformance=True),
    Program("async_generators", """
import asyncio
asyncio.run(bench_module("bm_async_generators").bench_async_generators())
""", uses_pyperformance=True),
    Program("coroutines (send(None) trampoline)", """
bench_module("bm_coroutines").bench_coroutines(1)
""", model="generator", uses_pyperformance=True),
    Program("generators (generator model)", """
bench_module("bm_generators").bench_generators(1)
""", model="generator", uses_pyperformance=True),
    Program("generator scheduler, sends from a method", """
from collections import deque

def worker(name, steps):
    total = 0
    for step in range(steps):
        received = yield step
        total += received or 0
    return total

class Scheduler:
    def __init__(self):
        self.ready = deque()

    def spawn(self, task):
        self.ready.append((task, None))

    def run(self):
        while self.ready:
            task, value = self.ready.popleft()
            try:
                result = task.send(value)
            except StopIteration:
                continue
            self.ready.append((task, result))

scheduler = Scheduler()
for n in range(100):
    scheduler.spawn(worker(f"w{n}", 2000))
scheduler.run()
"""),
    Program("generator pipeline doing work per item", """
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)

def produce(count):
    for i in range(count):
        yield i % 12 + 8

def transform(items):
    for item in items:
        yield fib(item)

total = 0
for value in transform(produce(3000)):
    total += value
""", model="generator"),
    Program("gevent server with clients", """
from gevent import monkey
monkey.patch_all()
import gevent
from gevent.server import StreamServer
import socket

def echo(connection, address):
    with connection:
        while True:
            data = connection.recv(1024)
            if not data:
                return
            connection.sendall(data)

server = StreamServer(("127.0.0.1", 0), echo)
server.start()
port = server.address[1]

def client(n):
    with socket.create_connection(("127.0.0.1", port)) as sock:
        for _ in range(200):
            sock.sendall(b"x" * 64)
            received = 0
            while received < 64:
                received += len(sock.recv(64))

gevent.joinall([gevent.spawn(client, n) for n in range(50)])
server.stop()
"""),
    Program("select server (scenario)", """
from loopscope.scenarios.select_server import main
main()
""", model="select"),
)


def _script(directory: Path, program: Program) -> Path:
    path = directory / (program.name.split(" ")[0].replace("/", "_") + f"-{id(program)}.py")
    prelude = _PYPERFORMANCE if program.uses_pyperformance else ""
    path.write_text(textwrap.dedent(prelude) + textwrap.dedent(program.source), encoding="utf-8")
    return path


# Runs `loopscope` in this interpreter and reports its own peak memory (the parent's; the
# traced program runs in a child) next to its exit status. VmHWM, not ru_maxrss: a process
# keeps the ru_maxrss of the image it was forked from (this benchmark, after loading a big
# trace), while VmHWM starts afresh at exec.
_TRACED = """
import sys
try:  # the run's child started first, as the `loopscope` command does (ui.start)
    from loopscope.ui.start import early_child_for
except ImportError:  # a checkout from before it
    early_child_for = lambda argv: None
early = early_child_for(sys.argv[2:])
from loopscope.ui.cli import finish, main
status = main(sys.argv[2:], early) if early is not None else main(sys.argv[2:])
with open("/proc/self/status") as status_file:
    peak = next(line.split()[1] for line in status_file if line.startswith("VmHWM:"))
with open(sys.argv[1], "w") as out:
    out.write(peak)
finish(status)  # as the `loopscope` command ends
"""


def _timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=900, env=env)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{command[-1]}: exit {done.returncode}: {done.stderr[-500:]!r}")
    return elapsed


@dataclass
class Result:
    program: Program
    untraced: list[float]
    traced: list[float]
    events: int
    peak_kb: int

    @property
    def ratio(self) -> float:
        return statistics.median(t / u for u, t in zip(self.untraced, self.traced, strict=True))


def measure(program: Program, rounds: int, directory: Path,
            traced_env: dict[str, str] | None = None) -> Result:
    script = _script(directory, program)
    output = directory / "t.loopscope"
    peak_file = directory / "peak"
    traced_command = [sys.executable, "-c", _TRACED, str(peak_file), "trace", str(script),
                      "-o", str(output)]
    if program.model:
        traced_command += ["--model", program.model]
    untraced: list[float] = []
    traced: list[float] = []
    peaks: list[int] = []
    _timed([sys.executable, str(script)], directory)  # a warm-up: disk cache, bytecode caches
    _timed(traced_command, directory, traced_env)
    for _ in range(rounds):
        untraced.append(_timed([sys.executable, str(script)], directory))
        traced.append(_timed(traced_command, directory, traced_env))
        peaks.append(int(peak_file.read_text()))
    from loopscope.tracer.native import load_native

    events = len(load_native(output))
    return Result(program, untraced, traced, events, max(peaks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=None, help="programs whose name has this")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--traced-env", nargs="*", default=[], metavar="KEY=VALUE",
                        help="environment for the traced side only, e.g. "
                        "LOOPSCOPE_GENERATOR_HOOK=trace to compare 3.11's two generator hooks")
    options = parser.parse_args()
    traced_env = {key: value for key, value in os.environ.items()
                  if key != "PYTHONDONTWRITEBYTECODE"}
    traced_env.update(item.split("=", 1) for item in options.traced_env)
    chosen = [p for p in PROGRAMS
              if not options.only or any(word in p.name for word in options.only)]
    results = []
    print(f"Python {sys.version.split()[0]}, {options.rounds} alternating rounds each; "
          "medians; whole processes, start-up and saving included", flush=True)
    print(f"{'program':42} {'untraced':>9} {'traced':>9} {'ratio':>7} {'events/s':>10} "
          f"{'parent peak':>12}")
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        # Bytecode caches as an installed package has them (pip writes them at install): a
        # setting that stops Python writing them would make every start compile Loopscope.
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        for program in chosen:
            result = measure(program, options.rounds, directory, traced_env)
            results.append(result)
            base, run = statistics.median(result.untraced), statistics.median(result.traced)
            ratio = (f"+{run - base:.2f}s" if program.name.startswith("empty")
                     else f"{result.ratio:.2f}x")
            print(f"{program.name:42} {base:8.3f}s {run:8.3f}s {ratio:>7} "
                  f"{result.events / run:10,.0f} {result.peak_kb / 1024:9.0f} MB", flush=True)
    if options.json:
        Path(options.json).write_text(json.dumps([
            {"program": r.program.name, "untraced_s": statistics.median(r.untraced),
             "traced_s": statistics.median(r.traced), "ratio": r.ratio, "events": r.events,
             "parent_peak_mb": r.peak_kb / 1024} for r in results], indent=2))


if __name__ == "__main__":
    main()
