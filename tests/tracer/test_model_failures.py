"""The failure policy every model shares (tracer.models.toolkit.Guard): a hook of the
instrumentation that raises is removed, the trace says so, and the program goes on untraced.

Each model runs a small program in a real child with one of its hooks broken.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loopscope.tracer.events import Code
from loopscope.tracer.runner import record_sync
from loopscope.tracer.target import Target
from loopscope.tracer.trace import Trace

BROKEN = "tests.tracer.broken_models"

PROGRAMS = {
    "asyncio": """
import asyncio

async def worker(n):
    await asyncio.sleep(0.001)
    await asyncio.sleep(0)
    return n * 2

async def main():
    print("first", await asyncio.gather(*(worker(n) for n in range(3))))
    print("second", await asyncio.gather(*(worker(n) for n in range(3))))

asyncio.run(main())
""",
    "generator": """
def countdown(n):
    while n:
        yield n
        n -= 1
    return "done"

print("first", list(countdown(3)))
print("second", list(countdown(2)))
""",
    "greenlet": """
from greenlet import greenlet

def ping():
    for _ in range(3):
        pong_glet.switch()
    return "ping done"

def pong():
    for _ in range(3):
        main.switch()

main = greenlet.getcurrent()
ping_glet, pong_glet = greenlet(ping), greenlet(pong)
ping_glet.switch()
print("first", ping_glet.dead)
print("second", pong_glet.switch())
""",
    "gevent": """
import gevent

def sleeper(n):
    gevent.sleep(0.001 * n)
    return n

jobs = [gevent.spawn(sleeper, n) for n in range(3)]
gevent.joinall(jobs)
print("first", [job.value for job in jobs])
print("second", gevent.spawn(sleeper, 5).get())
""",
    "trio": """
import trio

async def worker(n):
    await trio.sleep(0.001)
    return n * 2

async def main():
    async with trio.open_nursery() as nursery:
        for n in range(3):
            nursery.start_soon(worker, n)

trio.run(main)
print("first", "done")
trio.run(main)
print("second", "done")
""",
    "select": """
import select
import socket

left, right = socket.socketpair()
left.sendall(b"ping")
readable, _, _ = select.select([right], [], [], 1.0)
print("first", readable[0].recv(4))
right.sendall(b"pong")
readable, _, _ = select.select([left], [], [], 1.0)
print("second", readable[0].recv(4))
left.close()
right.close()
""",
}


def _run_broken(model: str, source: str, tmp_path: Path) -> tuple[list[str], list[str], Trace]:
    script = tmp_path / f"{model}_program.py"
    script.write_text(source, encoding="utf-8")
    result = record_sync(Target("script", str(script), (), BROKEN), timeout=60)
    assert result.status == "ok", f"{result.error}\n{result.stderr}"
    failures = [line for line in result.stderr.splitlines() if line.startswith("loopscope:")]
    return result.stdout.splitlines(), failures, result.trace


@pytest.mark.parametrize("model", sorted(PROGRAMS))
def test_a_raising_hook_detaches_the_model_and_the_program_goes_on(
    model: str, tmp_path: Path
) -> None:
    stdout, failures, trace = _run_broken(model, PROGRAMS[model], tmp_path)

    # the program ran to its end, undisturbed
    assert [line.split()[0] for line in stdout] == ["first", "second"], stdout
    # said once on stderr, once in the trace
    assert failures == [
        f"loopscope: the {model} instrumentation failed (RuntimeError: hook fell over); "
        "tracing stopped, the program goes on"
    ]
    marks = [e for e in trace.events() if e.code == Code.MARK]
    assert [mark.detail["text"] for mark in marks] == failures
    # and nothing of the program is recorded after it: no lane, no output, no step
    after = [e for e in trace.events() if e.seq > marks[0].seq]
    assert [(e.kind, trace.lane_name(e.lane)) for e in after] == []
