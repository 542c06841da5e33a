"""What the built-in sink does with one accepted connection that it answers: read its
request, send the answer, then end it by the close mode (``SinkAnswer``: the run's
--request-size, --response-size, --http, --hold), and the counts every connection keeps
(``SinkStats``).

Containing the per-connection steps, as a small state machine over a raw socket that
never blocks (``Answering``); the event loop that drives it, accepting, and connections
without an answer are sink_loop.py; listeners and worker processes sink_server.py.
Received data is always drained before close(): closing with unread data sends a RST
(tcp_close() -> TCPAbortOnClose), which would turn an intended FIN close into an abort.

The socket is a bare ``_socket.socket`` around the accepted fd, in blocking mode: every
call passes MSG_DONTWAIT instead of an fcntl() per connection, and the event loop only
calls a step when epoll said the socket is ready, so EAGAIN (an exception in Python, ~1 us)
is rare.
"""

from __future__ import annotations

import _socket
import socket
from dataclasses import dataclass

from portstorm.core import http
from portstorm.core.scenario import CloseMode

_DONTWAIT = socket.MSG_DONTWAIT
_RECV_BYTES = 65536


@dataclass
class SinkStats:
    accepted: int = 0
    closed: int = 0
    resets: int = 0
    idle_timeouts: int = 0
    accept_errors: int = 0
    bytes_received: int = 0
    responses: int = 0  # answers sent whole (with a SinkAnswer)
    bad_requests: int = 0  # an HTTP request head past http.MAX_HEAD_BYTES: closed unanswered


@dataclass(frozen=True, slots=True)
class SinkAnswer:
    """What the sink reads and answers on each connection before the close mode applies."""

    request_size: int = 0  # bytes to read first (without http)
    response_size: int = 0  # bytes to answer (with http: the body's)
    http: bool = False  # read an HTTP request head, answer 200 OK
    # --hold: with --close server the seconds between the answer and the sink's FIN (else
    # the client holds, and ends it); with http, the answer says keep-alive
    hold_s: float = 0.0

    @property
    def active(self) -> bool:
        return bool(self.request_size or self.response_size or self.http or self.hold_s)

    def payload(self) -> bytes:
        body = bytes(self.response_size)
        return http.answer(self.response_size, self.hold_s > 0) + body if self.http else body


NO_ANSWER = SinkAnswer()  # connect and close: nothing read, nothing answered


def drain(conn: _socket.socket, stats: SinkStats | None = None) -> bool:
    """Read what is queued without blocking; True when the peer has ended (EOF or reset)."""
    while True:
        try:
            data = conn.recv(_RECV_BYTES, _DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True
        if stats is not None:
            stats.bytes_received += len(data)


# What an answered connection waits for next, as the event loop reads it: READ (readable,
# or the peer's end), WRITE (room in the send buffer), HOLD (a timer: --close server
# --hold, then ``step()`` once more), DONE (close it now).
READ, WRITE, HOLD, DONE = 1, 2, 3, 4
# its stages: the request being read, the answer being sent, waiting for the client to end
# it (client, rst), held before the sink's FIN (server), to be closed unanswered
_REQUEST, _SENDING, _ENDING, _HOLDING, _UNANSWERED = 1, 2, 3, 4, 5


class Answering:
    """One connection being answered: its request read (``left`` bytes, or an HTTP head
    gathered in ``head``), then ``out`` sent, then the close mode. The event loop calls
    ``step()`` when the socket is ready for what the previous step asked for."""

    __slots__ = ("close", "head", "hold", "left", "out", "sock", "stage", "stats")

    def __init__(
        self,
        sock: _socket.socket,
        spec: SinkAnswer,
        payload: memoryview,
        close: CloseMode,
        stats: SinkStats,
    ) -> None:
        self.sock = sock
        self.close = close
        self.stats = stats
        self.hold = spec.hold_s > 0
        self.left = -1 if spec.http else spec.request_size  # -1: an HTTP head still due
        self.head = bytearray()
        self.out = payload
        self.stage = _REQUEST if self.left else _SENDING

    def step(self) -> int:
        """Go as far as the socket allows without waiting; what to wait for next."""
        stats = self.stats
        try:
            if self.stage == _REQUEST:
                if not self._read_request():
                    return DONE if self.stage == _UNANSWERED else READ
                self.stage = _SENDING
            if self.stage == _SENDING:
                if self.out:
                    self.out = self.out[self.sock.send(self.out, _DONTWAIT) :]
                    if self.out:
                        return WRITE
                stats.responses += 1
                if self.close is not CloseMode.SERVER:
                    self.stage = _ENDING
                    return READ  # the client ends it: epoll says when
                if self.hold:
                    self.stage = _HOLDING
                    return HOLD
            # _ENDING woken by epoll, _HOLDING at its timer, or server close just answered
            ended = drain(self.sock, stats)  # unread data would turn a FIN into a RST
            return DONE if ended or self.stage != _ENDING else READ
        except BlockingIOError:
            return WRITE if self.stage == _SENDING else READ
        except OSError:  # ECONNRESET, EPIPE: the peer aborted
            stats.resets += 1
            return DONE

    def reading(self) -> bool:
        """Whether a request is still being read (bytes it sent before a reset count)."""
        return self.stage == _REQUEST

    def reset(self) -> int:
        """The peer aborted (epoll: EPOLLHUP|EPOLLERR) once the request was in: nothing
        is left to read or answer."""
        self.stats.resets += 1
        return DONE

    def _read_request(self) -> bool:
        """Read what has arrived; True once the request is whole. False with more due, or
        with the stage _UNANSWERED when the peer ended first or its HTTP head broke the
        size limit."""
        stats = self.stats
        while True:
            data = self.sock.recv(_RECV_BYTES if self.left < 0 else self.left, _DONTWAIT)
            if not data:
                self.stage = _UNANSWERED
                return False
            stats.bytes_received += len(data)
            if self.left > 0:
                self.left -= len(data)
                if not self.left:
                    return True
                continue
            head = self.head
            head += data
            # RFC 9112 section 2.1: the head ends at its empty line (a GET has no body)
            if b"\r\n\r\n" in head:
                return True
            if len(head) > http.MAX_HEAD_BYTES:
                stats.bad_requests += 1
                self.stage = _UNANSWERED
                return False
