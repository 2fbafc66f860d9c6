"""select-server and selectors-server, recorded in a real child: what each must show."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest

from loopscope.tracer.events import Code, LaneKind
from loopscope.tracer.narrate import narrate
from loopscope.tracer.query import SpanRow, lanes, span_rows
from loopscope.tracer.runner import RunResult
from loopscope.tracer.spans import derive_spans
from loopscope.tracer.trace import LaneInfo, Trace

SELECT_SCENARIOS = ("select-server", "selectors-server")
MESSAGES_PER_CLIENT = (2, 3, 3)  # both scenarios' CONVERSATIONS

pytestmark = pytest.mark.slow


class Server:
    """The recorded run, with its lanes sorted by role."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        self.trace: Trace = result.trace
        self.spans = derive_spans(self.trace)
        (self.loop,) = lanes(self.trace, kind=LaneKind.LOOP)
        (self.listener,) = lanes(self.trace, name="listener :")
        self.conns = lanes(self.trace, name="conn ")
        self.clients = lanes(self.trace, name="client ")
        self.polls = [row for row in self.rows(self.loop) if row.state == "poll"]

    def rows(self, lane: LaneInfo) -> list[SpanRow]:
        return span_rows(self.trace, self.spans, lane.id)

    def fd(self, lane: LaneInfo) -> int:
        fd: int = self.trace.details[self.trace.detail[lane.spawn_seq]]["fd"]
        return fd

    def first_poll_returning(self, fd: int) -> int:
        return next(i for i, poll in enumerate(self.polls) if fd in poll.detail["readable"])


@pytest.fixture(params=SELECT_SCENARIOS)
def server(request: pytest.FixtureRequest, record_scenario: Callable[..., RunResult]) -> Server:
    return Server(record_scenario(request.param))


def test_every_socket_is_a_connection_lane(server: Server) -> None:
    assert server.loop.name == "select loop"
    assert len(server.conns) == len(server.clients) == 3
    # each accepted connection pairs with the client at the other end, and comes from accept
    assert sorted(c.name.split()[1] for c in server.conns) == sorted(
        c.name.split()[1] for c in server.clients)
    assert {c.parent for c in server.conns} == {server.listener.id}
    assert all(info.kind == LaneKind.CONNECTION
               for info in (server.listener, *server.conns, *server.clients))


def test_polls_return_the_listener_on_connect_and_connections_on_data(server: Server) -> None:
    listener_fd = server.fd(server.listener)
    accepting = [p for p in server.polls if listener_fd in p.detail["readable"]]
    assert len(accepting) == 3  # one accept() per poll, as the program is written
    for conn in server.conns:
        conn_fd = server.fd(conn)
        # the connection's data can only come back after the listener announced it
        assert server.first_poll_returning(listener_fd) < server.first_poll_returning(conn_fd)
        returned = [p for p in server.polls if conn_fd in p.detail["readable"]]
        messages = len(returned) - 1  # the last readable poll brings the client's hang-up
        assert messages in MESSAGES_PER_CLIENT


def test_wake_arrows_go_from_the_loop_to_the_returned_fd(server: Server) -> None:
    trace = server.trace
    conn_ids = {info.id: server.fd(info) for info in (*server.conns, *server.clients,
                                                      server.listener)}
    wakes = [e for e in trace.events() if e.code == Code.WAKE]
    assert {e.lane for e in wakes} == set(conn_ids)
    for wake in wakes:
        assert wake.other == server.loop.id
        assert wake.detail["cause"] == "fd"
        assert wake.detail["fd"] == conn_ids[wake.lane]
        # the arrow leaves the loop just after a poll that returned that fd
        poll = max((p for p in server.polls if p.end <= wake.ts), key=lambda p: p.end)
        returned = poll.detail["readable"] + poll.detail["writable"]
        assert wake.detail["fd"] in returned


def test_each_connection_runs_its_own_handling_code(server: Server) -> None:
    module_file = server.trace.meta["target"].replace("-", "_") + ".py"
    for lane in (server.listener, *server.conns, *server.clients):
        running = [row for row in server.rows(lane) if row.state == "running"]
        assert running, lane.name
        sources = {server.trace.sources[server.spans.source[row.span]] for row in running}
        assert all(path.endswith(module_file) for path, _, _ in sources), sources
    # one thread: no two sockets' handling code ever runs at the same time
    every_running = sorted(
        (row.start, row.end) for lane in (server.listener, *server.conns, *server.clients)
        for row in server.rows(lane) if row.state == "running"
    )
    for (_, end), (next_start, _) in pairwise(every_running):
        assert end <= next_start
    # and none runs while the loop is inside select
    for start, end in every_running:
        assert not any(p.start < end and start < p.end for p in server.polls)


def test_a_connection_waits_to_write_only_while_a_reply_is_queued(server: Server) -> None:
    episodes_per_conn = []
    for conn in server.conns:
        rows = server.rows(conn)
        waits = [row for row in rows if row.state == "io-wait"]
        # nothing is queued before the first message is read, nor after the last echo
        assert waits[0].detail["mode"] == "read"
        assert waits[-1].detail["mode"] == "read"
        episodes = write_episodes(rows)
        for before, during in episodes:
            # what queued the echo: woken to read, then the handling ran (the recv)
            handled = [step for step in before if step in ("ready read", "running")]
            assert handled[-2:] == ["ready read", "running"], conn.name
            # the episode ends when writability came back and the echo went out
            handled = [step for step in during if step in ("ready write", "running")]
            assert handled[-2:] == ["ready write", "running"], (conn.name, during)
        episodes_per_conn.append(len(episodes))
    # one write wait per message: the echo server never watches writes for nothing
    assert sorted(episodes_per_conn) == sorted(MESSAGES_PER_CLIENT)


def write_episodes(rows: list[SpanRow]) -> list[tuple[list[str], list[str]]]:
    """(the steps before, the steps during) each stretch in which the lane watches writes.

    A step is "running", "ready read"/"ready write", or "wait read"/"wait write"; a stretch
    starts at a write wait and lasts until the next read-only wait.
    """
    episodes: list[tuple[list[str], list[str]]] = []
    before: list[str] = []
    during: list[str] | None = None
    for row in rows:
        mode = str(row.detail.get("mode", ""))
        step = row.state if row.state in ("running", "blocked") else (
            f"{row.state.replace('io-', '')} {'write' if 'write' in mode else 'read'}")
        if during is None and step == "wait write":
            during = [step]
            episodes.append((before, during))
        elif during is not None and step == "wait read":
            before, during = [step], None
        elif during is not None:
            during.append(step)
        else:
            before.append(step)
    return episodes


def test_narration_reads_the_polls_fds(server: Server) -> None:
    listener_fd = server.fd(server.listener)
    lines = list(narrate(server.trace))
    assert any(f"select loop's poll returns fd {listener_fd} readable" in line
               or f"select loop's poll returns fds [{listener_fd}" in line for line in lines)


def is_write_wait(detail: dict[str, Any]) -> bool:
    return "write" in str(detail.get("mode", ""))
