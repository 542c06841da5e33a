"""What the built-in sink does with one accepted connection: read what is queued, wait for
the client to end it, and, with an answer (``SinkAnswer``: the run's --request-size,
--response-size, --http, --hold), read its request and answer it.

Containing the per-connection steps and the counts they keep (``SinkStats``); accepting,
listeners and worker processes are sink_server.py. Received data is always drained before
close(): closing with unread data sends a RST (tcp_close() -> TCPAbortOnClose), which would
turn an intended FIN close into an abort.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import trio

from portstorm.core import http
from portstorm.core.scenario import CloseMode


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


def drain(conn: socket.socket, stats: SinkStats | None = None) -> bool:
    """Read what is queued without blocking; True when the peer has ended (EOF or reset)."""
    while True:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True
        if stats is not None:
            stats.bytes_received += len(data)


async def await_peer_end(conn: socket.socket, stats: SinkStats, idle_timeout: float) -> None:
    try:
        with trio.move_on_after(idle_timeout) as cs:
            await until_peer_end(conn, stats)
        if cs.cancelled_caught:
            stats.idle_timeouts += 1
    finally:
        conn.close()
        stats.closed += 1


async def until_peer_end(conn: socket.socket, stats: SinkStats) -> None:
    while True:
        await trio.lowlevel.wait_readable(conn)
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            continue
        except OSError:
            stats.resets += 1
            return
        if not data:
            return
        stats.bytes_received += len(data)


_AT_ONCE_BYTES = 4096  # an answer this small fits a new socket's send buffer whole
GONE = -1


def answer_now(conn: socket.socket, answer: SinkAnswer, payload: bytes, stats: SinkStats) -> int:
    """Answer without a task when the whole request is queued already (a client writes it
    right after connect(); over loopback or a veth it is often in before accept()
    returns): the bytes of ``payload`` sent, GONE when the peer reset, or 0 with nothing
    read, for answer_connection() to do it all (MSG_PEEK looks first: nothing consumed)."""
    if answer.hold_s or len(payload) > _AT_ONCE_BYTES:
        return 0
    try:
        want = answer.request_size
        if answer.http:
            want = conn.recv(http.MAX_HEAD_BYTES, socket.MSG_PEEK).find(b"\r\n\r\n") + 4
            if want < 4:
                return 0
        elif want and len(conn.recv(want, socket.MSG_PEEK)) < want:
            return 0
        if want:
            conn.recv(want)  # exactly what the peek saw
            stats.bytes_received += want
        return conn.send(payload) if payload else 1
    except BlockingIOError:
        return 0
    except OSError:
        stats.resets += 1
        return GONE


async def answer_connection(
    conn: socket.socket,
    answer: SinkAnswer,
    payload: bytes,
    close: CloseMode,
    stats: SinkStats,
    idle_timeout: float,
    read_request: bool = True,
) -> None:
    """Read one connection's request (unless read already), answer it (``payload``: what
    is still to send), then end it by the close mode."""
    try:
        with trio.move_on_after(idle_timeout) as cs:
            if read_request and not await read_whole_request(conn, answer, stats):
                return  # the peer ended (or reset) before its request was whole
            view = memoryview(payload)
            while view:
                try:
                    view = view[conn.send(view) :]
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(conn)
                except OSError:
                    stats.resets += 1
                    return
            stats.responses += 1
            if close is CloseMode.SERVER:
                if answer.hold_s:
                    await trio.sleep(answer.hold_s)
                drain(conn, stats)
                return
            await until_peer_end(conn, stats)
        if cs.cancelled_caught:
            stats.idle_timeouts += 1
    finally:
        conn.close()
        stats.closed += 1


async def read_whole_request(conn: socket.socket, answer: SinkAnswer, stats: SinkStats) -> bool:
    """True once the request is in: ``request_size`` bytes, or an HTTP head's empty line
    (RFC 9112 section 2.1; a GET has no body). False when the peer ended first."""
    left, head = answer.request_size, bytearray()
    while answer.http or left > 0:
        try:
            data = conn.recv(65536)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(conn)
            continue
        except OSError:
            stats.resets += 1
            return False
        if not data:
            return False
        stats.bytes_received += len(data)
        if not answer.http:
            left -= len(data)
            continue
        head += data
        if b"\r\n\r\n" in head:
            return True
        if len(head) > http.MAX_HEAD_BYTES:
            stats.bad_requests += 1
            return False
    return True
