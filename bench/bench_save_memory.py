"""Memory and time while saving and exporting a big trace: the native save and the Chrome JSON
export of a synthetic generator-model trace of 10 M events over 100,000 lanes (the size of
pyperformance's `generators` under the generator model), side by side with the code before it
streamed.

    .venv/bin/python bench/bench_save_memory.py [EVENTS] [--rounds N] [--before REV]
                                                [--only save|chrome] [--check]

Each measurement runs in a fresh process that builds the trace, notes its resident size, resets
the peak (/proc/self/clear_refs) and runs one operation: "held" is what the trace itself takes
(the resident size after building it, less the interpreter's before), "peak extra" how far the
resident size rose above that during the operation. Goals (issue 11): the save peaks at no more
than 1.5x what is held (peak extra <= 0.5x held); the Chrome export takes <= 300 MB extra and at
least twice the speed of before. "Before" is the code at REV (git; by default the commit before
the streaming save and export), loaded from git into the measuring process; each round runs the
before and now sides in turn (alternating pairs), and the report gives medians. Linux only
(/proc). The outputs of both sides are compared: the native files byte for byte, the Chrome
JSON by its parsed events.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from types import ModuleType

from loopscope.tracer.events import Code, LaneKind
from loopscope.tracer.trace import DetailTable, Trace
from loopscope.tracer.values import VALUE_ROW, ValueRows

EVENTS = 10_000_000
LANES = 100_000
BEFORE = "013604c"  # main before the streaming save and export
CHECK_LIMIT = 2_000_000  # events: --check parses both Chrome files whole
REPOSITORY = Path(__file__).resolve().parent.parent
MODULES = {"native": "tracer/native.py", "chrome": "tracer/export_chrome.py",
           "spans": "tracer/spans.py"}


def synthetic_trace(events: int = EVENTS, lanes: int = LANES) -> Trace:
    """A generator-model trace: `lanes` generators spawned, then hand-offs (a SWITCH carrying
    the value handed over as a value row, the origin BLOCKED, the target RUNNING at one of 99
    source lines) along a chain that visits the lanes in a scattered order."""
    details: list[dict[str, object]] = [{}]
    spawn_first = len(details)
    details.extend({"name": f"gen-{lane}", "kind": LaneKind.GENERATOR}
                   for lane in range(lanes))
    switch_detail = len(details)
    details.append({"via": "send"})
    blocked_detail = len(details)
    details.append({"via": "send", "waiting": "yield"})
    handoffs = (events - lanes) // 3
    # the value handed over at hand-off k reads str(k % 1000): built by the thousand
    whole, part = divmod(handoffs, 1000)
    texts = [str(k).encode() for k in range(1000)]
    values = ValueRows()
    values.bases = array("i", [switch_detail]) * handoffs
    values.texts = bytearray(b"".join(texts) * whole + b"".join(texts[:part]))
    values.lengths = array("I", map(len, texts)) * whole + array("I", map(len, texts[:part]))
    targets = array("i", ((k * 7919 + 1) % lanes for k in range(handoffs)))
    origins = array("i", [0]) + targets[:-1]
    count = 3 * handoffs

    def interleave(typecode: str, first: array[int], second: array[int],
                   third: array[int]) -> array[int]:
        column = array(typecode, bytes(array(typecode).itemsize * count))
        column[0::3], column[1::3], column[2::3] = first, second, third
        return column

    nothing = array("i", [-1]) * handoffs
    zeros = array("i", [0]) * handoffs
    lane = interleave("i", origins, origins, targets)
    other = interleave("i", targets, targets, nothing)
    detail = interleave("i", array("i", range(VALUE_ROW, VALUE_ROW + handoffs)),
                        array("i", [blocked_detail]) * handoffs, zeros)
    source = interleave("i", zeros, zeros, array("i", (1 + k % 99 for k in range(handoffs))))
    del nothing, zeros, origins, targets
    code = array("b", [Code.SWITCH, Code.BLOCKED, Code.RUNNING]) * handoffs
    trace = Trace(details=DetailTable(details, values),
                  sources=[("", 0, ""),
                           *(("/src/gens.py", line, "walk") for line in range(1, 100))],
                  meta={"target": "synthetic generators", "model": "generator"})
    spawns = lanes
    trace.extend_columns(0, (
        array("q", range(0, 100 * (spawns + count), 100)),
        array("i", range(lanes)) + lane,
        array("b", [Code.SPAWN]) * spawns + code,
        array("i", [-1]) * spawns + other,
        array("i", range(spawn_first, spawn_first + lanes)) + detail,
        array("i", [0]) * spawns + source,
    ))
    return trace


def _resident_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


def _load_before(name: str, revision: str) -> ModuleType:
    """The module `name` as it was at `revision`, loaded beside the current one; the export's
    span fold (tracer.spans) is the one of `revision` too."""
    text = subprocess.run(["git", "show", f"{revision}:{MODULES[name]}"], cwd=REPOSITORY,
                          capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader(f"_before_{name}", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    current_spans = sys.modules.get("loopscope.tracer.spans")
    if name == "chrome":
        sys.modules["loopscope.tracer.spans"] = _load_before("spans", revision)
    try:
        exec(compile(text, f"{revision}:{MODULES[name]}", "exec"), module.__dict__)
    finally:
        if current_spans is not None:
            sys.modules["loopscope.tracer.spans"] = current_spans
    return module


def measure(operation: str, side: str, events: int, output: str, revision: str) -> None:
    """In a fresh process: builds the trace, runs one operation, prints a JSON line."""
    baseline_kb = _resident_kb("VmRSS:")
    if side == "before":
        module = _load_before("native" if operation == "save" else "chrome", revision)
    else:
        from loopscope.tracer import export_chrome, native
        module = native if operation == "save" else export_chrome
    trace = synthetic_trace(events)
    held_kb = _resident_kb("VmRSS:")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # VmHWM starts again from what is resident now
    began, began_cpu = time.perf_counter(), time.process_time()
    if operation == "save":
        module.save_native(trace, output)
    else:
        module.save_chrome_json(trace, output)
    seconds, cpu = time.perf_counter() - began, time.process_time() - began_cpu
    peak_kb = _resident_kb("VmHWM:")
    print(json.dumps({"held_mb": (held_kb - baseline_kb) / 1024,
                      "extra_mb": (peak_kb - held_kb) / 1024, "seconds": seconds, "cpu": cpu,
                      "events": len(trace), "bytes": os.path.getsize(output)}))


def _run(operation: str, side: str, events: int, output: Path, revision: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--measure", operation, side,
                           str(events), str(output), revision],
                          capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{operation} ({side}) failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def _chrome_events(path: Path) -> list[str]:
    """The Chrome file's events, each as canonical JSON, sorted (the streamed export writes
    them in another order, which the format leaves free, but must write the same events)."""
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    return sorted(json.dumps(event, sort_keys=True) for event in document["traceEvents"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", nargs="?", type=int, default=EVENTS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", default=BEFORE, help="the git revision to compare with")
    parser.add_argument("--check", action="store_true",
                        help="compare the outputs of both sides (slow for the Chrome JSON)")
    parser.add_argument("--only", choices=("save", "chrome"), help="one of the two operations")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for operation, suffix in (("save", ".loopscope"), ("chrome", ".json")):
            if options.only not in (None, operation):
                continue
            results: dict[str, list[dict[str, float]]] = {"before": [], "now": []}
            outputs = {side: Path(folder) / f"{side}{suffix}" for side in results}
            for _round in range(options.rounds):
                for side in results:
                    results[side].append(_run(operation, side, options.events, outputs[side],
                                              options.before))
            held = statistics.median(run["held_mb"] for run in results["now"])
            print(f"{operation}: {results['now'][0]['events']:,.0f} events, "
                  f"{held:.0f} MB held by the trace")
            for side, runs in results.items():
                extra = statistics.median(run["extra_mb"] for run in runs)
                seconds = statistics.median(run["seconds"] for run in runs)
                cpu = statistics.median(run["cpu"] for run in runs)
                print(f"  {side:6} ({options.before if side == 'before' else 'this tree'}): "
                      f"peak extra {extra:6.0f} MB ({extra / held:.2f}x held, peak "
                      f"{(held + extra) / held:.2f}x), {seconds:6.2f} s ({cpu:.2f} s CPU), "
                      f"{runs[0]['bytes'] / 1e6:.0f} MB written")
            # CPU time as well as wall time: on a shared machine the wall time of a run that
            # waits for a core says more about the others than about the code
            for measure in ("seconds", "cpu"):
                speed = statistics.median(
                    before[measure] / now[measure]
                    for before, now in zip(results["before"], results["now"], strict=True))
                print(f"  now is {speed:.2f}x the speed of before by "
                      f"{'wall' if measure == 'seconds' else 'CPU'} time (median of pairs)")
            if options.check and options.events > CHECK_LIMIT:
                print(f"  outputs not compared: past {CHECK_LIMIT:,} events the Chrome JSON "
                      f"is too big to parse whole here")
            elif options.check:
                if operation == "save":
                    same = outputs["before"].read_bytes() == outputs["now"].read_bytes()
                else:
                    same = _chrome_events(outputs["before"]) == _chrome_events(outputs["now"])
                print(f"  outputs {'identical' if same else 'DIFFER'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        measure(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        main()
