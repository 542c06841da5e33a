"""The built-in sink's event loop: one select.epoll over raw file descriptors, no Trio.

Containing accepting (in batches), connections without an answer (waiting for the
client's end), the timers (idle timeout, --close server --hold, a pause after EMFILE) and
the stop on SIGINT/SIGTERM. What an answered connection does is sink_answer.py; listeners
and worker processes are sink_server.py.

Why no Trio and no socket objects (issue 22, benchmarks/README.md): the sink shares two
cores with the driver it serves, so every microsecond it spends per connection is taken
from the load being measured. Python's ``socket.accept()`` builds a socket object (a
Python-level ``__init__``), ``setblocking()`` is an ioctl, a read of an empty socket an
exception, and a Trio task per connection waiting on ``wait_readable()`` three epoll_ctl()
calls and a scheduler pass. Here an accept is ``_accept()`` (the C method: an fd), a
connection without an answer is never an object, and one ``poll()`` over the whole batch
says which peers already ended: a RST (EPOLLHUP|EPOLLERR: tcp_done() shut both ways) is
closed unread, a FIN read (to EOF, one read) and closed, the rest wait in the epoll set.

Every accepted fd is blocking (accept4() with SOCK_CLOEXEC only): it is read only when
poll or epoll said it is readable, and read again only once the peer's FIN is in
(EPOLLRDHUP: RCV_SHUTDOWN, after which recv() never blocks).
"""

from __future__ import annotations

import _socket
import errno
import math
import os
import select
import signal
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import monotonic

from portstorm.core.scenario import CloseMode
from portstorm.engine.sink_answer import (
    DONE,
    HOLD,
    READ,
    Answering,
    SinkAnswer,
    SinkStats,
)

ACCEPT_BATCH = 256  # accept() calls per wakeup before the other events get their turn
PAUSE_S = 0.01  # after EMFILE and friends: let connections close before accepting more
_IN, _OUT, _RDHUP = select.EPOLLIN, select.EPOLLOUT, select.EPOLLRDHUP
_END = _IN | _RDHUP  # data, or the peer's FIN (poll's POLLIN/POLLRDHUP are the same bits)
_RESET = select.EPOLLHUP | select.EPOLLERR  # the peer aborted: tcp_done() after a RST
_RECV_BYTES = 65536
_SHORTAGE = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class SinkLoop:
    """Serve ``listeners`` until ``run()`` sees the stop fd readable; ``close_all()`` ends
    what is still open (each counted closed)."""

    def __init__(
        self,
        listeners: list[socket.socket],
        close: CloseMode,
        idle_timeout: float,
        answer: SinkAnswer,
        stats: SinkStats,
    ) -> None:
        self.ep = select.epoll()
        self.listeners = {ls.fileno(): ls for ls in listeners}
        self.close = close
        self.idle_timeout = idle_timeout
        self.answer = answer if answer.active else None
        self.hold_s = answer.hold_s
        self.payload = memoryview(answer.payload())
        self.stats = stats
        # every open connection, by fd: its idle deadline, in deadline order (insertion
        # order; the timeout is the same for all); answered ones also in ``conns``
        self.deadlines: dict[int, float] = {}
        self.conns: dict[int, Answering] = {}
        self.watching: dict[int, int] = {}  # answered fd -> the epoll events it waits for
        self.holding: dict[int, float] = {}  # answered fd -> end of its --hold (server)
        self.paused: dict[int, float] = {}  # listener fd -> when to accept again
        self.next_idle = self.next_hold = math.inf
        for fd in self.listeners:
            self.ep.register(fd, _IN)

    def run(self, stop_fd: int, stopping: Callable[[], bool]) -> None:
        ep, listeners, conns = self.ep, self.listeners, self.conns
        ep.register(stop_fd, _IN)
        accept = self._accept_answered if self.answer is not None else self._accept_plain
        while not stopping():
            due = min(self.next_idle, self.next_hold, min(self.paused.values(), default=math.inf))
            timeout = -1.0 if due == math.inf else max(0.0, due - monotonic())
            for fd, ev in ep.poll(timeout):
                c = conns.get(fd)
                if c is not None:
                    self._then(fd, c, c.step() if not ev & _RESET or c.reading() else c.reset())
                elif fd in listeners:
                    accept(listeners[fd])
                elif fd == stop_fd:
                    os.read(stop_fd, 512)
                else:
                    self._plain_event(fd, ev)
            if monotonic() >= due:
                self._timers()

    # -- accepting -------------------------------------------------------------------

    def _accept_fds(self, listener: socket.socket) -> list[int]:
        accept, fds = listener._accept, []  # type: ignore[attr-defined]
        try:
            for _ in range(ACCEPT_BATCH):
                fds.append(accept()[0])
        except BlockingIOError:
            pass
        except OSError as e:
            self.stats.accept_errors += 1
            if e.errno in _SHORTAGE:  # level-triggered: unwatched, or it would spin
                self.ep.modify(listener.fileno(), 0)
                self.paused[listener.fileno()] = monotonic() + PAUSE_S
        self.stats.accepted += len(fds)
        return fds

    @staticmethod
    def _readiness(fds: list[int]) -> dict[int, int]:
        """One poll() over a batch: the events of those with something in already."""
        probe = select.poll()
        for fd in fds:
            probe.register(fd, _END)
        return dict(probe.poll(0))

    def _accept_plain(self, listener: socket.socket) -> None:
        fds = self._accept_fds(listener)
        if not fds:
            return
        ready = self._readiness(fds)
        stats, close = self.stats, os.close
        if self.close is CloseMode.SERVER:  # close first: TIME_WAIT lands here
            for fd in fds:
                if ready.get(fd):
                    _drain_fd(fd, stats)  # unread data would turn our FIN into a RST
                close(fd)
            stats.closed += len(fds)
            return
        deadline = monotonic() + self.idle_timeout
        for fd in fds:
            ev = ready.get(fd, 0)
            if ev and self._ended(fd, ev):
                close(fd)
                stats.closed += 1
            else:  # wait for the client's FIN or RST
                self.ep.register(fd, _END)
                self.deadlines[fd] = deadline
                if deadline < self.next_idle:
                    self.next_idle = deadline

    def _plain_event(self, fd: int, ev: int) -> None:
        if self._ended(fd, ev):
            os.close(fd)  # leaves the epoll set with it
            del self.deadlines[fd]
            self.stats.closed += 1

    def _ended(self, fd: int, ev: int) -> bool:
        """Whether the client has ended the connection, given its poll events; what it
        sent is read (and counted) on the way, without blocking."""
        if ev & _RESET:  # the kernel knows it aborted: nothing to read
            self.stats.resets += 1
            return True
        stats = self.stats
        try:
            while True:
                data = os.read(fd, _RECV_BYTES)  # readable: returns at once
                if not data:
                    return True
                stats.bytes_received += len(data)
                if not ev & _RDHUP:  # data but no FIN yet: a second read could block
                    return False
        except OSError:  # ECONNRESET
            stats.resets += 1
            return True

    def _accept_answered(self, listener: socket.socket) -> None:
        fds = self._accept_fds(listener)
        if not fds:
            return
        ready = self._readiness(fds)
        answer, family, stats = self.answer, listener.family, self.stats
        assert answer is not None
        wants_request = answer.http or answer.request_size > 0
        deadline = monotonic() + self.idle_timeout
        for fd in fds:
            # the C socket object around the fd: no syscall (family, type, proto given)
            sock = _socket.socket(family, socket.SOCK_STREAM, 0, fd)
            c = Answering(sock, answer, self.payload, self.close, stats)
            self.conns[fd] = c
            self.deadlines[fd] = deadline
            if deadline < self.next_idle:
                self.next_idle = deadline
            self._then(fd, c, c.step() if ready.get(fd) or not wants_request else READ)

    def _then(self, fd: int, c: Answering, what: int) -> None:
        """Act on what an answered connection's step asked for."""
        if what == DONE:
            c.sock.close()
            del self.conns[fd], self.deadlines[fd]
            self.watching.pop(fd, None)
            self.holding.pop(fd, None)
            self.stats.closed += 1
            return
        was = self.watching.get(fd, 0)
        if what == HOLD:  # not watched meanwhile, as the sink slept before
            if was:
                self.ep.unregister(fd)
                del self.watching[fd]
            end = self.holding[fd] = monotonic() + self.hold_s
            if end < self.next_hold:
                self.next_hold = end
            return
        events = _END if what == READ else _OUT
        if events != was:
            if was:
                self.ep.modify(fd, events)
            else:
                self.ep.register(fd, events)
            self.watching[fd] = events

    # -- timers and the end ----------------------------------------------------------

    def _timers(self) -> None:
        now = monotonic()
        for fd, at in list(self.paused.items()):
            if at <= now:
                del self.paused[fd]
                self.ep.modify(fd, _IN)
        if now >= self.next_hold:
            due = _take_due(self.holding, now)
            self.next_hold = next(iter(self.holding.values()), math.inf)
            for fd in due:
                c = self.conns[fd]
                self._then(fd, c, c.step())
        if now >= self.next_idle:
            expired = _take_due(self.deadlines, now)
            self.next_idle = next(iter(self.deadlines.values()), math.inf)
            for fd in expired:
                self.stats.idle_timeouts += 1
                self._close(fd)

    def _close(self, fd: int) -> None:
        c = self.conns.pop(fd, None)
        if c is None:
            os.close(fd)
        else:
            c.sock.close()
            self.watching.pop(fd, None)
            self.holding.pop(fd, None)
        self.deadlines.pop(fd, None)
        self.stats.closed += 1

    def close_all(self) -> None:
        for fd in list(self.deadlines):
            self._close(fd)
        self.ep.close()


def _take_due(deadlines: dict[int, float], now: float) -> list[int]:
    """Remove and return the fds whose time has come (the dict is in deadline order)."""
    due = []
    for fd, at in deadlines.items():
        if at > now:
            break
        due.append(fd)
    for fd in due:
        del deadlines[fd]
    return due


def _drain_fd(fd: int, stats: SinkStats) -> None:
    """Read a blocking fd that poll said is readable until nothing is left."""
    os.set_blocking(fd, False)  # rare: --close server with data sent before its close
    try:
        while data := os.read(fd, _RECV_BYTES):
            stats.bytes_received += len(data)
    except OSError:  # EAGAIN: all read; ECONNRESET: gone
        pass


@contextmanager
def stop_on_signals() -> Iterator[tuple[int, Callable[[], bool]]]:
    """(an fd that turns readable, a test) once SIGINT or SIGTERM arrives: the signal's
    byte lands on the fd (signal.set_wakeup_fd), so a blocked epoll_wait() returns."""
    r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    got: list[int] = []

    def handler(signum: int, frame: object) -> None:
        got.append(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    try:
        yield r, lambda: bool(got)
    finally:
        signal.set_wakeup_fd(old_fd)
        for s, h in old.items():
            signal.signal(s, h)
        os.close(r)
        os.close(w)
