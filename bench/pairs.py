"""Alternating pairs: a benchmark's untraced and traced sides run in turn, so that a machine
that slows down mid-run slows both sides of a pair, and the report gives each side's best and
the median of the pairs' ratios."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Pairs:
    untraced: list[float]  # seconds per round
    traced: list[tuple[float, int, int]]  # (seconds, events recorded, bytes encoded) per round

    @property
    def ratios(self) -> list[float]:
        return [run[0] / base for base, run in zip(self.untraced, self.traced, strict=True)]

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios)

    def report(self, count: int, unit: str, goal: str) -> str:
        """The lines every pairs benchmark prints: best times per `unit`, the spread, the
        median ratio against `goal`."""
        base = min(self.untraced)
        best, events, written = min(self.traced)
        ratios = self.ratios
        return "\n".join((
            f"untraced: {base / count * 1e9:8.1f} ns per {unit} (best)",
            f"traced:   {best / count * 1e9:8.1f} ns per {unit} (best)  "
            f"({events:,} events, {written / 1e6:.1f} MB encoded)",
            f"pair ratios: {min(ratios):.1f}x to {max(ratios):.1f}x; "
            f"best / best: {best / base:.1f}x",
            f"ratio traced/untraced, median of pairs: {self.median_ratio:.1f}x  ({goal})",
        ))


def alternate(untraced: Callable[[], float], traced: Callable[[], tuple[float, int, int]],
              rounds: int) -> Pairs:
    pairs = Pairs([], [])
    for _ in range(rounds):
        pairs.untraced.append(untraced())
        pairs.traced.append(traced())
    return pairs


def arguments(description: str, count_name: str, default_rounds: int) -> tuple[int, int]:
    """(COUNT, --rounds) from the command line: how many hand-offs a round makes, how many
    pairs to run."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(count_name, nargs="?", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=default_rounds)
    options = parser.parse_args()
    return getattr(options, count_name), options.rounds


def timed_process(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and every descendant it reaped) of one run
    of `command`; a failing run is an error that names it."""
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    child.stderr.close()
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: exit {child.returncode}: {errors[-500:]!r}")
    return elapsed, usage.ru_utime + usage.ru_stime


def alternate_commands(commands: dict[str, list[str]], rounds: int, cwd: Path,
                       env: dict[str, str]) -> dict[str, list[tuple[float, float]]]:
    """Each command's (wall, CPU) per round, the commands run in turn each round after one
    warm-up run each (disk and bytecode caches)."""
    for command in commands.values():
        timed_process(command, cwd, env)
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, command in commands.items():
            runs[name].append(timed_process(command, cwd, env))
    return runs


def median_ratio(traced: list[tuple[float, float]], untraced: list[tuple[float, float]],
                 field: int) -> float:
    """The median of the per-round ratios of wall (field 0) or CPU (field 1) times."""
    return statistics.median(run[field] / plain[field]
                             for run, plain in zip(traced, untraced, strict=True))
