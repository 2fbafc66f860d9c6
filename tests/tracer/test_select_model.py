"""The select model in-process: real sockets on 127.0.0.1, a fake clock, exact event sequences."""

from __future__ import annotations

import gc
import linecache
import os
import select
import selectors
import socket
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loopscope.tracer.events import Code, FakeClock
from loopscope.tracer.models import select_model
from loopscope.tracer.models.select_model import SelectInstrumentation
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder
from loopscope.tracer.trace import Event, Trace

WAIT_S = 5.0  # long enough that each poll below returns because its one event happened


@dataclass
class Recording:
    trace: Trace
    recorder: Recorder
    instrumentation: SelectInstrumentation

    def stop(self) -> Trace:
        self.instrumentation.uninstall()
        self.instrumentation.finish()
        self.recorder.close()
        return self.trace


@pytest.fixture
def recording() -> Iterator[Recording]:
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1000))
    instrumentation = SelectInstrumentation(recorder)
    instrumentation.install()
    try:
        yield Recording(trace, recorder, instrumentation)
    finally:
        instrumentation.uninstall()


def render(trace: Trace, event: Event) -> str:
    """One event as a line: 'lane: kind [from other] key=value ...'."""
    text = f"{trace.lane_name(event.lane)}: {event.kind}"
    if event.other >= 0:
        text += f" from {trace.lane_name(event.other)}"
    for key, value in event.detail.items():
        text += f" {key}={value}"
    return text


def rendered(trace: Trace) -> list[str]:
    return [render(trace, event) for event in trace.events()]


def listening_socket() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    return listener


def port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def echo_exchange() -> dict[str, int]:
    """Accept one client, echo one message, see it hang up. Each poll has one possible answer."""
    listener = listening_socket()
    client = socket.create_connection(listener.getsockname())  # completes in the backlog
    select.select([listener], [], [], WAIT_S)  # -> the listener: a connection is waiting
    conn, _ = listener.accept()
    client.sendall(b"ping")
    select.select([listener, conn], [], [], WAIT_S)  # -> conn: its data arrived
    data = conn.recv(16)
    select.select([listener, conn], [conn], [], WAIT_S)  # -> conn writable, nothing readable
    conn.send(data)
    assert client.recv(16) == b"ping"
    client_port, client_fd = port_of(client), client.fileno()
    client.close()
    select.select([listener, conn], [], [], WAIT_S)  # -> conn: end of file
    assert conn.recv(16) == b""
    names = {"listener": port_of(listener), "client": client_port,
             "lfd": listener.fileno(), "cfd": client_fd, "sfd": conn.fileno()}
    conn.close()
    listener.close()
    return names


def test_echo_exchange_is_recorded_event_by_event(recording: Recording) -> None:
    ids = echo_exchange()
    trace = recording.stop()

    loop = "select loop"
    lis, lfd = f"listener :{ids['listener']}", ids["lfd"]
    cli, cfd = f"client 127.0.0.1:{ids['client']}", ids["cfd"]
    con, sfd = f"conn 127.0.0.1:{ids['client']}", ids["sfd"]
    peer = f"127.0.0.1:{ids['client']}"

    def woken(lane: str, fd: int, mode: str) -> list[str]:
        cause = f"cause=fd fd={fd} mode={mode}"
        return [f"{lane}: wake from {loop} {cause}", f"{lane}: ready from {loop} {cause}"]

    def poll(readable: list[int], writable: list[int]) -> list[str]:
        return [f"{loop}: poll timeout_s={WAIT_S}",
                f"{loop}: annotate readable={readable} writable={writable}",
                f"{loop}: dispatch"]

    assert rendered(trace) == [
        f"{loop}: spawn name={loop} kind=loop",
        f"{loop}: dispatch",
        f"{lis}: spawn from {loop} name={lis} kind=connection fd={lfd}",
        f"{lis}: blocked on=being registered with select",
        f"{cli}: spawn from {loop} name={cli} kind=connection fd={cfd}",
        f"{cli}: running",
        # poll 1 watches the listener only; the client is open but nobody watches it
        f"{lis}: io-wait fd={lfd} mode=read",
        f"{cli}: blocked on=being registered with select",
        *poll([lfd], []),
        *woken(lis, lfd, "read"),
        f"{lis}: running",
        f"{con}: spawn from {lis} name={con} kind=connection fd={sfd}",
        f"{con}: blocked on=being registered with select",
        # handled since the last select(): nobody watches it until the loop calls select again
        f"{lis}: blocked from {loop} on=the next select() call",
        f"{cli}: running",
        # poll 2: the new connection joins the read list
        f"{lis}: io-wait fd={lfd} mode=read",
        f"{cli}: blocked on=being registered with select",
        f"{con}: io-wait fd={sfd} mode=read peer={peer}",
        *poll([sfd], []),
        *woken(con, sfd, "read"),
        f"{con}: running",
        # poll 3: the echo is queued, so the connection is watched for writing too
        f"{con}: io-wait fd={sfd} mode=read+write peer={peer}",
        *poll([], [sfd]),
        *woken(con, sfd, "write"),
        f"{con}: running",
        f"{con}: blocked from {loop} on=the next select() call",
        f"{cli}: running",
        f"{cli}: end result=None",
        # poll 4: nothing queued any more: back to reading only
        f"{con}: io-wait fd={sfd} mode=read peer={peer}",
        *poll([sfd], []),
        *woken(con, sfd, "read"),
        f"{con}: running",
        f"{con}: end result=None",
        f"{lis}: running",
        f"{lis}: end result=None",
        f"{loop}: end result=None",
    ]


def test_running_steps_and_polls_point_at_the_programs_lines(recording: Recording) -> None:
    echo_exchange()
    trace = recording.stop()
    located = [e for e in trace.events() if e.code in (Code.RUNNING, Code.POLL, Code.SPAWN)
               and e.source is not None]
    assert {e.source[2] for e in located if e.source} == {"echo_exchange", "listening_socket"}
    for event in located:
        assert event.source is not None
        line = linecache.getline(event.source[0], event.source[1])
        if event.code == Code.POLL:
            assert "select.select(" in line
        elif event.code == Code.RUNNING:
            assert any(call in line for call in (
                ".accept(", ".recv(", ".send(", ".sendall(", ".close(", "create_connection("
            )), line
    running_lines = [e.source[1] for e in located if e.code == Code.RUNNING and e.source]
    assert running_lines == sorted(running_lines)  # each step resumes further down the program


def test_selector_registration_changes_the_wait_at_once(recording: Recording) -> None:
    listener = listening_socket()
    client = socket.create_connection(listener.getsockname())
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ)
        selector.modify(client, selectors.EVENT_WRITE)
        assert [key.fd for key, _ in selector.select(WAIT_S)] == [client.fileno()]
        selector.modify(client, selectors.EVENT_READ | selectors.EVENT_WRITE)
        selector.unregister(client)
    fd = client.fileno()
    client.close()
    listener.close()
    trace = recording.stop()

    cli = f"client 127.0.0.1:{port_of_peer_of(trace)}"
    server = f"127.0.0.1:{listener_port(trace)}"
    assert [line for line in rendered(trace) if line.startswith(cli)] == [
        f"{cli}: spawn from select loop name={cli} kind=connection fd={fd}",
        f"{cli}: running",
        # registered while it was the running socket: it waits once the program moves on
        f"{cli}: io-wait fd={fd} mode=write peer={server}",
        f"{cli}: wake from select loop cause=fd fd={fd} mode=write",
        f"{cli}: ready from select loop cause=fd fd={fd} mode=write",
        f"{cli}: io-wait fd={fd} mode=read+write peer={server}",
        f"{cli}: blocked on=being registered with select",
        f"{cli}: running",
        f"{cli}: end result=None",
    ]


def listener_port(trace: Trace) -> str:
    return next(info.name for info in trace.lanes if info.name.startswith("listener"))[
        len("listener :"):]


def port_of_peer_of(trace: Trace) -> str:
    return next(info.name for info in trace.lanes if info.name.startswith("client"))[
        len("client 127.0.0.1:"):]


def test_a_reused_fd_gets_a_new_lane(recording: Recording) -> None:
    first = listening_socket()
    select.select([first], [], [], 0)
    fd = first.fileno()
    first_lane = recording.instrumentation._by_fd[fd].lane
    del first  # closed by the garbage collector: our close wrapper never runs
    gc.collect()
    second = socket.socket()
    if second.fileno() != fd:  # put the new socket at the very fd the collected one had
        os.dup2(second.fileno(), fd)
        second.close()
        second = socket.socket(fileno=fd)
    second.bind(("127.0.0.1", 0))
    second.listen()
    select.select([second], [], [], 0)
    second.close()
    trace = recording.stop()
    listeners = [info for info in trace.lanes if info.name.startswith("listener")]
    assert [info.id for info in listeners] == [first_lane, listeners[1].id]
    ends = [e.lane for e in trace.events() if e.code == Code.END]
    # the first lane ends when the second poll finds its fd belongs to someone else
    assert ends.index(first_lane) < ends.index(listeners[1].id)


def test_uninstall_puts_everything_back() -> None:
    before_select = select.select
    before_methods = {name: socket.socket.__dict__.get(name) for name in
                      ("recv", "send", "accept", "close", "connect", "listen")}
    before_selector = selectors.DefaultSelector.__dict__.get("select")
    instrumentation = SelectInstrumentation(Recorder(Trace(), clock=FakeClock()))
    instrumentation.install()
    assert select.select is not before_select
    instrumentation.uninstall()
    assert select.select is before_select
    assert {name: socket.socket.__dict__.get(name) for name in before_methods} == before_methods
    assert selectors.DefaultSelector.__dict__.get("select") is before_selector


def test_other_threads_are_not_recorded(recording: Recording) -> None:
    listener = listening_socket()
    thread = threading.Thread(target=lambda: select.select([listener], [], [], 0))
    thread.start()
    thread.join()
    listener.close()
    trace = recording.stop()
    assert Code.POLL not in {e.code for e in trace.events()}


def test_a_failing_poll_leaves_the_loop_dispatching(recording: Recording) -> None:
    sock = socket.socket()
    fd = sock.fileno()
    sock.close()
    with pytest.raises((OSError, ValueError)):
        select.select([fd], [], [], 0)
    trace = recording.stop()
    loop_kinds = [e.kind for e in trace.events() if e.lane == 0]
    assert loop_kinds == ["spawn", "dispatch", "poll", "dispatch", "end"]


def test_run_ends_every_lane_and_lets_the_programs_error_through(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(textwrap.dedent("""
        import select, socket
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        select.select([listener], [], [], 0)
        raise ValueError("the handler broke")
    """))
    trace = Trace()
    recorder = Recorder(trace, clock=FakeClock(tick_ns=1))
    with pytest.raises(ValueError, match="the handler broke"):
        select_model.run(recorder, Program(model="select", script=str(script)))
    recorder.close()
    assert select.select.__module__ == "select"  # uninstalled even though the program failed
    ends = {e.lane: e.detail for e in trace.events() if e.code == Code.END}
    assert set(ends) == {info.id for info in trace.lanes}
    assert ends[0]["error"].startswith("ValueError")
    assert "the handler broke" in ends[0]["error"]


def test_a_poll_object_is_a_poll_on_the_loop_lane_and_a_socketpair_is_named(
        recording: Recording) -> None:
    left, right = socket.socketpair()
    fd = left.fileno()
    poller = select.poll()
    poller.register(left, select.POLLIN)
    right.send(b"x")
    assert [ready_fd for ready_fd, _event in poller.poll(WAIT_S * 1000)] == [fd]
    left.recv(1)
    poller.unregister(left)
    left.close()
    right.close()
    lines = rendered(recording.stop())
    name = f"unix socket fd {fd}"
    assert f"{name}: io-wait fd={fd} mode=read" in lines
    assert "select loop: poll timeout_s=5.0" in lines
    assert f"select loop: annotate readable=[{fd}] writable=[]" in lines
    assert f"{name}: wake from select loop cause=fd fd={fd} mode=read" in lines
    assert not any("?" in line.split(":")[0] for line in lines)
