"""select and selectors servers: the program's own polls drive the loop lane, its sockets are lanes.

Nothing in the program changes. While it runs, `select.select`, `select.poll()` and
`select.epoll` objects (tracer.models._select_polls) and the `select` method of every
`selectors` class are wrapped, and so are the socket methods that handle a connection (accept,
recv*, send*, sendfile, connect, listen, shutdown, close):

- a poll is a POLL span on the loop lane ("select loop") carrying its timeout, annotated when it
  returns with the fds that came back readable and writable; the time between polls is DISPATCH;
- every socket the program watches or handles is a lane of kind "connection", named
  "listener :PORT" for a listening socket, "conn HOST:PORT" (its peer) for an accepted one and
  "client HOST:PORT" (its own address, so it pairs with the server's "conn" lane) for one the
  program connected itself;
- while a poll watches a socket it is IO_WAIT (fd, mode "read", "write" or "read+write"); a
  socket comes back ready with a WAKE arrow from the loop lane (cause fd) and is READY until
  the program uses it; a socket that is open but watched by no poll is BLOCKED on "being
  registered with select". A selector registration holds between polls (register, modify
  and unregister change the wait at once), but select.select() is told what to watch on every
  call, so a socket handled since the last call is BLOCKED on "the next select() call" (on the loop
  lane) until the program calls it again;
- handling code is attributed to a connection by the fd it uses: the first accept/recv/send on
  a socket after a poll makes its lane RUNNING at the program's line, and it stays running until
  the program uses another socket or polls again. What the handler does in between (printing,
  queueing) is part of that span.

Only the thread that installed the instrumentation is recorded (the recorder is single-thread);
sockets used from other threads pass through untraced.
"""

from __future__ import annotations

import select
import selectors
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from types import FrameType
from typing import Any

from loopscope.tracer.events import NO_LANE, NO_SOURCE, Code, Detail, LaneKind
from loopscope.tracer.models._select_polls import traced_epoll_class, traced_poll_factory
from loopscope.tracer.models.handoffs import ProgramCode, fd_of
from loopscope.tracer.models.toolkit import Guard, instrumented
from loopscope.tracer.program import Program
from loopscope.tracer.recorder import Recorder

LOOP_LANE_NAME = "select loop"
NOT_REGISTERED: Detail = ("on", "being registered with select")
NEXT_SELECT: Detail = ("on", "the next select() call")

# Socket methods that handle a connection: using one makes the socket's lane the running one.
HANDLING_METHODS = (
    "recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into",
    "send", "sendall", "sendto", "sendmsg", "sendfile", "shutdown",
)
SELECTOR_CLASSES = ("SelectSelector", "PollSelector", "EpollSelector", "DevpollSelector",
                    "KqueueSelector")


def _address_text(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address) if address else "?"


def _mode(read: bool, write: bool) -> str:
    return "read+write" if read and write else "write" if write else "read"


@dataclass(eq=False)
class Connection:
    """One socket's lane and what the instrumentation last recorded about it."""

    lane: int
    fd: int
    owner: weakref.ref[socket.socket] | None
    peer: str | None
    watch_mode: str | None = None  # how the latest poll watched it; None = not watched
    # True when the watch is a selector registration, which outlives the poll; select.select's
    # lists are passed anew on every call, so between its calls nobody watches the socket.
    watch_persists: bool = False
    state: tuple[int, Detail] | None = field(default=None)

    def still_open(self) -> bool:
        if self.owner is None:
            return True  # a bare fd: we cannot tell, so it lives until the run ends
        sock = self.owner()
        return sock is not None and sock.fileno() == self.fd


class SelectInstrumentation:
    """Wraps select, selectors and socket handling so a select-style program draws itself."""

    def __init__(self, recorder: Recorder, guard: Guard | None = None) -> None:
        self.recorder = recorder
        self.guard = guard if guard is not None else Guard(recorder, "select")
        self._thread = threading.get_ident()
        self._is_program = ProgramCode()
        self._by_fd: dict[int, Connection] = {}
        self._running: Connection | None = None
        self._polling = False
        self._registering = False
        self._restore: list[Callable[[], None]] = []
        self.active = False
        self.loop_lane = recorder.spawn(LOOP_LANE_NAME, LaneKind.LOOP)
        recorder.state(self.loop_lane, Code.DISPATCH)
        recorder.current = self.loop_lane

    # -- installing -----------------------------------------------------------------------

    def install(self) -> None:
        self.active = True
        original_select = select.select
        select.select = self._wrap_select(original_select)  # type: ignore[assignment]
        self._restore.append(lambda: setattr(select, "select", original_select))
        # poll and epoll objects made while the program runs report their polls here
        for name, make in (("poll", traced_poll_factory), ("epoll", traced_epoll_class)):
            original = getattr(select, name, None)
            if original is not None:
                setattr(select, name, make(original, self))
                self._restore.append(partial(setattr, select, name, original))
        for name in SELECTOR_CLASSES:
            selector_class = getattr(selectors, name, None)
            if selector_class is not None:
                self._patch(selector_class, "select", self._wrap_selector_select)
                for method in ("register", "modify", "unregister"):
                    self._patch(selector_class, method, self._wrap_registration)
        for name in HANDLING_METHODS:
            self._patch(socket.socket, name, self._wrap_handling)
        self._patch(socket.socket, "accept", self._wrap_accept)
        self._patch(socket.socket, "connect", self._wrap_connect)
        self._patch(socket.socket, "connect_ex", self._wrap_connect)
        self._patch(socket.socket, "listen", self._wrap_listen)
        self._patch(socket.socket, "close", self._wrap_close)
        self._patch(socket.socket, "detach", self._wrap_close)

    def uninstall(self) -> None:
        self.active = False
        while self._restore:
            self._restore.pop()()

    def _patch(
        self, owner: type, name: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]
    ) -> None:
        own = owner.__dict__.get(name)
        original = getattr(owner, name)
        setattr(owner, name, wrapper(original))
        if own is None:
            self._restore.append(lambda: delattr(owner, name))
        else:
            self._restore.append(lambda: setattr(owner, name, own))

    def finish(self, error: BaseException | None = None, result: object = None) -> None:
        """Ends every lane still open: the connections, then the loop."""
        for connection in list(self._by_fd.values()):
            self._end(connection)
        if error is not None:
            self.recorder.end(self.loop_lane, error=error)
        else:
            self.recorder.end(self.loop_lane, result)
        self.recorder.current = NO_LANE

    # -- the wrappers ---------------------------------------------------------------------

    def _recording(self) -> bool:
        return (not self._polling and threading.get_ident() == self._thread
                and not self.guard.detached)

    # -- what poll and epoll objects report (tracer.models._select_polls) -----------------

    def recording(self) -> bool:
        return self.active and self._recording()

    def registration_changed(self, fileobj: object, read: bool, write: bool,
                             registered: bool) -> None:
        """A poll object's interest changed: it holds from now on, until the next change."""
        connection = self._connection_of(fileobj)
        if connection is None:
            return
        connection.watch_persists = True
        connection.watch_mode = _mode(read, write) if registered else None
        if connection is not self._running:
            self._rest(connection)

    @contextmanager
    def poll_span(
        self, watched: Mapping[int, tuple[object, bool, bool]], timeout: float | None,
        persistent: bool,
    ) -> Iterator[Callable[[list[int], list[int]], None]]:
        """A poll of a poll or epoll object (tracer.models._select_polls): the block calls the
        real poll, then reports the fds it returned."""
        self.guard.call(self._poll_started, watched, timeout, persistent)
        returned: list[tuple[list[int], list[int]]] = []
        with self._polling_now():
            yield lambda readable, writable: returned.append((readable, writable))
        if returned:
            self.guard.call(self._after_poll, *returned[0])

    def _wrap_select(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def traced_select(
            rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any],
            timeout: float | None = None,
        ) -> tuple[list[Any], list[Any], list[Any]]:
            if not self._recording():
                result: tuple[list[Any], list[Any], list[Any]] = original(
                    rlist, wlist, xlist, timeout)
                return result
            rlist, wlist, xlist = list(rlist), list(wlist), list(xlist)
            self.guard.call(self._select_called, rlist, wlist, timeout)
            with self._polling_now():
                readable, writable, exceptional = original(rlist, wlist, xlist, timeout)
            self.guard.call(self._after_poll, [fd_of(o) for o in readable],
                            [fd_of(o) for o in writable])
            return readable, writable, exceptional

        return traced_select

    def _select_called(self, rlist: list[Any], wlist: list[Any], timeout: float | None) -> None:
        watched: dict[int, tuple[object, bool, bool]] = {}
        for obj in rlist:
            watched[fd_of(obj)] = (obj, True, False)
        for obj in wlist:
            fd = fd_of(obj)
            watched[fd] = (obj, fd in watched, True)
        self._poll_started(watched, timeout, persistent=False)

    def _wrap_selector_select(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def traced_selector_select(
            selector: selectors.BaseSelector, timeout: float | None = None
        ) -> list[tuple[selectors.SelectorKey, int]]:
            if not self._recording():
                result: list[tuple[selectors.SelectorKey, int]] = original(selector, timeout)
                return result
            self.guard.call(self._selector_select_called, selector, timeout)
            with self._polling_now():
                ready: list[tuple[selectors.SelectorKey, int]] = original(selector, timeout)
            self.guard.call(
                self._after_poll,
                [key.fd for key, mask in ready if mask & selectors.EVENT_READ],
                [key.fd for key, mask in ready if mask & selectors.EVENT_WRITE],
            )
            return ready

        return traced_selector_select

    def _selector_select_called(self, selector: selectors.BaseSelector,
                                timeout: float | None) -> None:
        try:
            keys = list(selector.get_map().values())
        except RuntimeError:  # a closed selector: let it raise as it would
            keys = []
        watched = {
            key.fd: (
                key.fileobj,
                bool(key.events & selectors.EVENT_READ),
                bool(key.events & selectors.EVENT_WRITE),
            )
            for key in keys
        }
        self._poll_started(watched, timeout, persistent=True)

    def _wrap_registration(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """register/modify/unregister: a selector's interest changes now, not at the next poll."""

        def traced_registration(
            selector: selectors.BaseSelector, fileobj: Any, *args: Any, **kwargs: Any
        ) -> Any:
            if self._registering or not self._recording():
                return original(selector, fileobj, *args, **kwargs)
            self._registering = True  # modify() may call register() and unregister() itself
            try:
                result = original(selector, fileobj, *args, **kwargs)
            finally:
                self._registering = False
            self.guard.call(self._registration_changed, selector, fileobj)
            return result

        return traced_registration

    def _registration_changed(self, selector: selectors.BaseSelector, fileobj: Any) -> None:
        connection = self._connection_of(fileobj)
        if connection is not None:
            key = selector.get_map().get(fileobj)
            connection.watch_persists = True
            connection.watch_mode = None if key is None else _mode(
                bool(key.events & selectors.EVENT_READ),
                bool(key.events & selectors.EVENT_WRITE),
            )
            if connection is not self._running:
                self._rest(connection)

    def _wrap_handling(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def traced_handling(sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
            if self._recording():
                self.guard.call(self._handling, sock)
            return original(sock, *args, **kwargs)

        return traced_handling

    def _handling(self, sock: socket.socket) -> None:
        connection = self._connection_of(sock)
        if connection is not None:
            self._run(connection)

    def _wrap_accept(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def traced_accept(sock: socket.socket) -> tuple[socket.socket, Any]:
            if not self._recording():
                result: tuple[socket.socket, Any] = original(sock)
                return result
            listener = self.guard.call(self._connection_of, sock)
            if listener is not None:
                self.guard.call(self._run, listener)
            conn, address = original(sock)
            self.guard.call(self._accepted, conn, address, listener)
            return conn, address

        return traced_accept

    def _accepted(self, conn: socket.socket, address: Any, listener: Connection | None) -> None:
        accepted = self._connection_of(
            conn, name=f"conn {_address_text(address)}",
            parent=listener.lane if listener is not None else NO_LANE,
        )
        if accepted is not None and accepted.state is None:
            self._rest(accepted)

    def _wrap_connect(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def traced_connect(sock: socket.socket, address: Any) -> Any:
            result = original(sock, address)
            if self._recording():
                self.guard.call(self._connected, sock, address)
            return result

        return traced_connect

    def _connected(self, sock: socket.socket, address: Any) -> None:
        try:
            own = _address_text(sock.getsockname())
        except OSError:
            own = f"fd {sock.fileno()}"
        client = self._connection_of(sock, name=f"client {own}", peer=_address_text(address))
        if client is not None:
            self._run(client)

    def _wrap_listen(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def traced_listen(sock: socket.socket, *args: Any) -> None:
            original(sock, *args)
            if self._recording():
                self.guard.call(self._listening, sock)

        return traced_listen

    def _listening(self, sock: socket.socket) -> None:
        listener = self._connection_of(sock)
        if listener is not None and listener.state is None:
            self._rest(listener)

    def _wrap_close(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def traced_close(sock: socket.socket) -> Any:
            if not self._recording():
                return original(sock)
            fd = sock.fileno()
            connection = self.guard.call(self._closing, sock, fd)
            result = original(sock)
            if connection is not None and sock.fileno() != fd:
                # really closed (makefile() handles may keep it open)
                self.guard.call(self._end, connection)
            return result

        return traced_close

    def _closing(self, sock: socket.socket, fd: int) -> Connection | None:
        """The connection of a socket the program is closing, now running; else None."""
        connection = self._by_fd.get(fd)
        if connection is not None and connection.owner is not None \
                and connection.owner() is sock:
            self._run(connection)
            return connection
        return None

    # -- lanes ----------------------------------------------------------------------------

    def _connection_of(
        self, obj: object, name: str | None = None, parent: int = NO_LANE,
        peer: str | None = None,
    ) -> Connection | None:
        """The lane of a socket (or fd), spawned the first time it is seen."""
        fd = fd_of(obj)
        if fd < 0:
            return None
        known = self._by_fd.get(fd)
        if known is not None:
            owner = known.owner() if known.owner is not None else None
            if known.owner is None or owner is obj or not isinstance(obj, socket.socket):
                return known
            # the fd now belongs to another socket: the old one was closed behind our back
            self._end(known)
        sock = obj if isinstance(obj, socket.socket) else None
        if name is None:
            name, peer = self._describe(sock, fd)
        elif peer is None and sock is not None:
            peer = self._peer_of(sock)
        if parent == NO_LANE:  # opened by the program's main flow, which the loop lane stands for
            parent = self.loop_lane
        lane = self.recorder.spawn(name, LaneKind.CONNECTION, parent, self._program_source(),
                                   ("fd", fd))
        connection = Connection(lane, fd, weakref.ref(sock) if sock is not None else None, peer)
        self._by_fd[fd] = connection
        return connection

    @staticmethod
    def _peer_of(sock: socket.socket) -> str | None:
        try:
            address = sock.getpeername()
        except OSError:
            return None
        # an unnamed unix socket (one end of a socketpair) has no address to show
        return _address_text(address) if address else None

    def _describe(self, sock: socket.socket | None, fd: int) -> tuple[str, str | None]:
        if sock is None:
            return f"fd {fd}", None
        try:
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                return f"listener :{_address_text(sock.getsockname()).rsplit(':', 1)[-1]}", None
        except OSError:
            pass
        peer = self._peer_of(sock)
        if peer:
            return f"conn {peer}", peer
        unix = getattr(socket, "AF_UNIX", None)
        return (f"unix socket fd {fd}" if sock.family == unix else f"socket fd {fd}"), None

    def _set_state(self, connection: Connection, code: int, detail: Detail,
                   source: int = NO_SOURCE, other: int = NO_LANE) -> None:
        if connection.state == (code, detail) and code != Code.RUNNING:
            return
        connection.state = (code, detail)
        self.recorder.state(connection.lane, code, detail, other, source)

    def _rest(self, connection: Connection, polling: bool = False) -> None:
        """The state a connection is in when its code is not running."""
        if connection.watch_mode is None:
            self._set_state(connection, Code.BLOCKED, NOT_REGISTERED)
        elif not polling and not connection.watch_persists:
            # handled since the last select.select(): it waits for the loop to call it again
            self._set_state(connection, Code.BLOCKED, NEXT_SELECT, other=self.loop_lane)
        else:
            detail: Detail = ("fd", connection.fd, "mode", connection.watch_mode)
            if connection.peer:
                detail += ("peer", connection.peer)
            self._set_state(connection, Code.IO_WAIT, detail)

    def _run(self, connection: Connection) -> None:
        """The program is handling this connection now."""
        if self._running is connection:
            return
        if self._running is not None:
            self._rest(self._running)
        self._running = connection
        self._set_state(connection, Code.RUNNING, (), self._program_source())
        self.recorder.current = connection.lane

    def _end(self, connection: Connection) -> None:
        if self._by_fd.get(connection.fd) is connection:
            del self._by_fd[connection.fd]
        if self._running is connection:
            self._running = None
            self.recorder.current = self.loop_lane
        self.recorder.end(connection.lane)

    # -- polls ----------------------------------------------------------------------------

    def _poll_started(
        self, watched: Mapping[int, tuple[object, bool, bool]], timeout: float | None,
        persistent: bool,
    ) -> None:
        """A poll begins: every lane rests, the loop polls."""
        recorder = self.recorder
        source = self._program_source()
        for connection in list(self._by_fd.values()):
            if not connection.still_open():
                self._end(connection)
        modes: dict[int, str] = {}
        for obj, read, write in watched.values():
            watched_connection = self._connection_of(obj)
            if watched_connection is not None:
                modes[watched_connection.fd] = _mode(read, write)
        self._running = None
        for connection in self._by_fd.values():
            connection.watch_mode = modes.get(connection.fd)
            connection.watch_persists = persistent
            self._rest(connection, polling=True)
        timeout_s = None if timeout is None else float(timeout)
        recorder.state(self.loop_lane, Code.POLL, ("timeout_s", timeout_s), source=source)
        recorder.current = self.loop_lane
        recorder.flush()

    @contextmanager
    def _polling_now(self) -> Iterator[None]:
        """Around the real poll: nothing it calls is recorded; a poll that raised returned
        nothing, and the loop goes back to dispatching."""
        self._polling = True
        try:
            yield
        except BaseException:
            self._polling = False
            self.guard.call(self.recorder.state, self.loop_lane, Code.DISPATCH)
            raise
        finally:
            self._polling = False

    def _after_poll(self, readable: list[int], writable: list[int]) -> None:
        recorder = self.recorder
        recorder.annotate(self.loop_lane, ("readable", tuple(readable),
                                           "writable", tuple(writable)))
        recorder.state(self.loop_lane, Code.DISPATCH)
        readable_set = set(readable)
        writable_set = set(writable)
        for fd in dict.fromkeys(readable + writable):
            connection = self._by_fd.get(fd)
            if connection is None:
                continue
            cause: Detail = ("cause", "fd", "fd", fd,
                             "mode", _mode(fd in readable_set, fd in writable_set))
            recorder.wake(connection.lane, self.loop_lane, cause)
            connection.state = (Code.READY, cause)

    # -- source lines ---------------------------------------------------------------------

    def _program_source(self) -> int:
        """The source index of the program's line that led here (library frames skipped)."""
        frame: FrameType | None = sys._getframe(1)
        is_program = self._is_program
        while frame is not None:
            if is_program(frame.f_code):
                return self.recorder.source_of(frame.f_code, frame.f_lineno)
            frame = frame.f_back
        return NO_SOURCE


def run(recorder: Recorder, program: Program) -> None:
    guard = Guard(recorder, "select")
    instrumentation = SelectInstrumentation(recorder, guard)
    with instrumented(guard, instrumentation.install, instrumentation.uninstall):
        try:
            result = program.run_plain()
        except SystemExit as exc:
            guard.close()
            failed = exc.code not in (None, 0)
            guard.call(instrumentation.finish, exc if failed else None)
            raise
        except BaseException as exc:
            guard.close()
            guard.call(instrumentation.finish, exc)
            raise
        guard.close()
        guard.call(instrumentation.finish, None, result)
