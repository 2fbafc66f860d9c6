"""Two Loopscopes side by side on bench_programs' programs: which tracer costs less, measured
in one run so that a machine under load slows both alike.

    .venv/bin/python bench/compare_tracers.py BASELINE_PYTHON [--rounds N] [--only NAME ...]

BASELINE_PYTHON is another checkout's interpreter (e.g. /work/main/.venv/bin/python); this
interpreter runs the untraced program and this checkout's tracer. Each round runs, in turn,
the untraced program, the baseline's `loopscope trace` and this checkout's. Printed per program:
the medians of the per-round wall ratios and of the CPU ratios, CPU being the time both of a
traced run's processes spent (the parent and the child), which moves far less with the
machine's load than wall time does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_programs
from pairs import alternate_commands, median_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", help="the other checkout's Python")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=None, help="programs whose name has this")
    options = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    chosen = [p for p in bench_programs.PROGRAMS
              if not options.only or any(word in p.name for word in options.only)]
    print(f"Python {sys.version.split()[0]}, {options.rounds} alternating rounds; medians of "
          "the per-round ratios", flush=True)
    print(f"{'program':42} {'untraced':>9} {'wall: base':>10} {'this':>6} "
          f"{'CPU: base':>9} {'this':>6}")
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        for program in chosen:
            script = bench_programs._script(directory, program)
            model = ["--model", program.model] if program.model else []
            commands = {
                "untraced": [sys.executable, str(script)],
                "base": [options.baseline, "-m", "loopscope", "trace", str(script), "-o",
                         str(directory / "base.loopscope"), *model],
                "this": [sys.executable, "-m", "loopscope", "trace", str(script), "-o",
                         str(directory / "this.loopscope"), *model],
            }
            runs = alternate_commands(commands, options.rounds, directory, env)
            untraced = runs["untraced"]
            wall = statistics.median(w for w, _ in untraced)
            print(f"{program.name:42} {wall:8.2f}s "
                  f"{median_ratio(runs['base'], untraced, 0):9.2f}x "
                  f"{median_ratio(runs['this'], untraced, 0):5.2f}x "
                  f"{median_ratio(runs['base'], untraced, 1):8.2f}x "
                  f"{median_ratio(runs['this'], untraced, 1):5.2f}x", flush=True)


if __name__ == "__main__":
    main()
