"""The fixed cost of `loopscope trace`: an empty script traced against `python empty.py`.

    .venv/bin/python bench/bench_fixed_cost.py [--rounds N] [--script FILE] [PYTHON[@DIR] ...]

Each PYTHON (default: this one) is an interpreter with a Loopscope installed, or with DIR
put first on its PYTHONPATH (DIR holding a `loopscope` folder or link: a checkout of other
code); giving two (say main's code and a branch's) compares them side by side. Every round runs, in
turn, `python empty.py` with the first PYTHON and then `PYTHON -m loopscope trace empty.py
-o t.loopscope` with each, so a machine that slows down mid-run slows all of them. Reported
per command: the median wall time and the median CPU time of its whole process tree (user
plus system, the child's included: the parent reaps it), and each one's excess over bare
Python. Bytecode caches are written and used (an installed package has them), so
PYTHONDONTWRITEBYTECODE is unset for the runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pairs import timed_process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pythons", nargs="*", metavar="PYTHON", default=[sys.executable])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--script", help="the program to trace (default: an empty script)")
    options = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        script = Path(options.script).resolve() if options.script else directory / "empty.py"
        if not options.script:
            script.write_text("pass\n", encoding="utf-8")
        base_python = options.pythons[0].partition("@")[0]
        commands = {"python": ([base_python, str(script)], env)}
        for spec in options.pythons:
            python, _, path = spec.partition("@")
            command = [python, "-m", "loopscope", "trace", str(script),
                       "-o", str(directory / "t.loopscope")]
            commands[f"trace ({spec})"] = (command, {**env, "PYTHONPATH": path} if path
                                           else env)
        for command, command_env in commands.values():  # warm-up: disk and bytecode caches
            timed_process(command, directory, command_env)
        walls: dict[str, list[float]] = {name: [] for name in commands}
        cpus: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(options.rounds):
            for name, (command, command_env) in commands.items():
                wall, cpu = timed_process(command, directory, command_env)
                walls[name].append(wall)
                cpus[name].append(cpu)
    base_wall = statistics.median(walls["python"])
    base_cpu = statistics.median(cpus["python"])
    print(f"{options.rounds} alternating rounds, medians; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    for name in commands:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        excess = "" if name == "python" else (
            f"   +{wall - base_wall:.3f} s wall, +{cpu - base_cpu:.3f} s CPU")
        print(f"{name:60} wall {wall:.3f} s  CPU {cpu:.3f} s{excess}")


if __name__ == "__main__":
    main()
