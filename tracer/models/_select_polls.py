"""select.poll() and select.epoll objects that report to the select model like select.select.

`select.poll` is a factory of objects whose type Python code cannot subclass, so while a run
is traced it returns a `TracedPoll` that holds the real poll object and forwards to it; so
does `select.epoll` (a type that cannot be subclassed either). Both keep the registrations in
view (a registration holds between polls, as a selector's does) and bracket every `poll()`
in the model's poll span, so the loop lane shows `poll` while the program waits in them, with
the fds that came back. The selectors module keeps its own reference to the real types, so
its PollSelector and EpollSelector are traced through their `select` method instead.
"""

from __future__ import annotations

import select
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any, Protocol

_READ_BITS = select.POLLIN | select.POLLPRI
_READY_READ_BITS = _READ_BITS | select.POLLHUP | select.POLLERR
_DEFAULT_MASK = select.POLLIN | select.POLLPRI | select.POLLOUT
if hasattr(select, "epoll"):
    _EPOLL_DEFAULT = select.EPOLLIN | select.EPOLLPRI | select.EPOLLOUT
    _EPOLL_READ = select.EPOLLIN | select.EPOLLPRI
    _EPOLL_READY_READ = _EPOLL_READ | select.EPOLLHUP | select.EPOLLERR | select.EPOLLRDHUP


class PollListener(Protocol):
    """The part of the select model the poll objects report to."""

    def recording(self) -> bool: ...

    def registration_changed(self, fileobj: object, read: bool, write: bool,
                             registered: bool) -> None: ...

    def poll_span(
        self, watched: Mapping[int, tuple[object, bool, bool]], timeout: float | None,
        persistent: bool,
    ) -> AbstractContextManager[Callable[[list[int], list[int]], None]]: ...


def _fd(fileobj: object) -> int:
    if isinstance(fileobj, int):
        return fileobj
    fileno = fileobj.fileno()  # type: ignore[attr-defined]
    return int(fileno)


class _Registrations:
    """fd -> (the object the program registered, its event mask)."""

    def __init__(self, listener: PollListener, read_bits: int, write_bits: int) -> None:
        self.listener = listener
        self.read_bits = read_bits
        self.write_bits = write_bits
        self.by_fd: dict[int, tuple[object, int]] = {}

    def set(self, fileobj: object, mask: int) -> None:
        self.by_fd[_fd(fileobj)] = (fileobj, mask)
        if self.listener.recording():
            self.listener.registration_changed(
                fileobj, bool(mask & self.read_bits), bool(mask & self.write_bits), True)

    def drop(self, fileobj: object) -> None:
        self.by_fd.pop(_fd(fileobj), None)
        if self.listener.recording():
            self.listener.registration_changed(fileobj, False, False, False)

    def watched(self) -> dict[int, tuple[object, bool, bool]]:
        return {fd: (obj, bool(mask & self.read_bits), bool(mask & self.write_bits))
                for fd, (obj, mask) in self.by_fd.items()}

    def split(self, ready: list[tuple[int, int]], read_ready_bits: int
              ) -> tuple[list[int], list[int]]:
        readable = [fd for fd, event in ready if event & read_ready_bits]
        writable = [fd for fd, event in ready if event & self.write_bits]
        return readable, writable


class _Registering:
    """What a traced poll and a traced epoll share: the real object's registration calls,
    each also kept in view. `_default_mask` is register()'s default, as the real one's."""

    _default_mask: int
    _real: Any
    _registrations: _Registrations

    def register(self, fd: Any, eventmask: int | None = None) -> None:
        mask = self._default_mask if eventmask is None else eventmask
        self._real.register(fd, mask)
        self._registrations.set(fd, mask)

    def modify(self, fd: Any, eventmask: int) -> None:
        self._real.modify(fd, eventmask)
        self._registrations.set(fd, eventmask)

    def unregister(self, fd: Any) -> None:
        self._real.unregister(fd)
        self._registrations.drop(fd)


class TracedPoll(_Registering):
    """A select.poll object whose registrations and polls the select model sees."""

    _default_mask = _DEFAULT_MASK

    def __init__(self, real: Any, listener: PollListener) -> None:
        self._real = real
        self._registrations = _Registrations(listener, _READ_BITS, select.POLLOUT)

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        listener = self._registrations.listener
        if not listener.recording():
            result: list[tuple[int, int]] = self._real.poll(timeout)
            return result
        # poll() takes milliseconds; None or a negative number waits for ever
        seconds = None if timeout is None or timeout < 0 else timeout / 1000
        with listener.poll_span(self._registrations.watched(), seconds, True) as report:
            ready: list[tuple[int, int]] = self._real.poll(timeout)
            report(*self._registrations.split(ready, _READY_READ_BITS))
        return ready


def traced_poll_factory(original: Callable[[], Any], listener: PollListener
                        ) -> Callable[[], TracedPoll]:
    def poll() -> TracedPoll:
        return TracedPoll(original(), listener)

    return poll


def traced_epoll_class(base: type, listener: PollListener) -> type:
    """Stands in for select.epoll (a type Python cannot subclass): makes a real epoll object
    and forwards to it, reporting registrations and polls to `listener`."""

    class epoll(_Registering):
        _default_mask = _EPOLL_DEFAULT

        def __init__(self, sizehint: int = -1, flags: int = 0, *, _real: Any = None) -> None:
            self._real = base(sizehint, flags) if _real is None else _real
            self._registrations = _Registrations(listener, _EPOLL_READ, select.EPOLLOUT)

        @classmethod
        def fromfd(cls, fd: int) -> epoll:
            return cls(_real=base.fromfd(fd))  # type: ignore[attr-defined]

        def __getattr__(self, name: str) -> Any:  # close, closed, fileno and the rest
            return getattr(self._real, name)

        def __enter__(self) -> epoll:
            self._real.__enter__()
            return self

        def __exit__(self, *exc_info: object) -> None:
            self._real.__exit__(*exc_info)

        def poll(self, timeout: float | None = None, maxevents: int = -1
                 ) -> list[tuple[int, int]]:
            registrations = self._registrations
            if not listener.recording():
                result: list[tuple[int, int]] = self._real.poll(timeout, maxevents)
                return result
            seconds = None if timeout is None or timeout < 0 else float(timeout)
            with listener.poll_span(registrations.watched(), seconds, True) as report:
                ready: list[tuple[int, int]] = self._real.poll(timeout, maxevents)
                report(*registrations.split(ready, _EPOLL_READY_READ))
            return ready

    epoll.__qualname__ = "epoll"
    return epoll
