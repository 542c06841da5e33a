"""A connection's life after connect(): write the request, read the response (raw bytes or
HTTP), hold the connection open, wait for the server's FIN.

Containing the socket I/O of that phase as small functions the driver (driver.py) awaits,
and nothing that counts: each returns what happened and the driver records it. What is
sent and how the options combine is core/exchange.py; HTTP's framing core/http.py.

A run without a request, a response, --http or --hold never comes here: its hot path is
driver.py's alone (connect and close in one synchronous call). Sockets are the driver's
non-blocking stdlib sockets; waits are trio.lowlevel.wait_readable/wait_writable, bounded
by a trio deadline the driver gives (the response timeout, and never past the run's time
bound).

Why the response is read whole even when the status is an error: closing a socket with
unread received data sends a RST (tcp_close(): TCPAbortOnClose), which would turn the
close mode's FIN into an abort and move TIME_WAIT (KERNEL.md, "Who holds TIME_WAIT").
"""

from __future__ import annotations

import _socket
from dataclasses import dataclass
from time import perf_counter_ns

import trio

from portstorm.core import http
from portstorm.core.exchange import host_header, transacts
from portstorm.core.outcome import Outcome, Phase, classify
from portstorm.core.scenario import CloseMode, Scenario
from portstorm.engine.flows import Flow

_RECV_BYTES = 65536


@dataclass(slots=True)
class Ended:
    """How a connection's exchange went: ``failed`` None when it completed."""

    failed: Outcome | None = None
    errno: int | None = None  # for ``other``: the errno's name is kept
    transaction_ns: int = 0  # from the attempt's start to the last response byte
    status: int | None = None  # --http: the final response's status code


class Exchange:
    """One driver's post-connect phase: the requests built once (one per flow: the HTTP
    Host header names the flow's destination), one receive buffer for every connection."""

    def __init__(self, scenario: Scenario, flows: list[Flow]) -> None:
        self.transacts = transacts(scenario)
        self.close_limit_s = scenario.close_limit_s
        self.http = scenario.http_path is not None
        self.hold_s = scenario.hold_s
        self.server_closes = scenario.close is CloseMode.SERVER
        self.response_size = scenario.response_size
        self.limit_s = scenario.response_limit_s
        if scenario.http_path is not None:
            keep = scenario.hold_s > 0  # RFC 9112 section 9.3: keep-alive while held
            self.requests = [
                http.request(scenario.http_path, host_header(scenario, f.destination), keep)
                for f in flows
            ]
        else:
            self.requests = [bytes(scenario.request_size)] * len(flows)
        self._buf = bytearray(_RECV_BYTES)  # shared: the reads never await mid-copy

    async def finish(self, s: _socket.socket, flow_i: int, t_start_ns: int, end: float) -> Ended:
        """Everything after connect(), in order: the request and response (if any), the
        hold, and with --close server the wait for the server's FIN (after the close
        timeout, plus the hold the sink keeps, it counts as close_timeout). Nothing waits
        past trio time ``end``, the run's time bound."""
        ended = await self.transact(s, flow_i, t_start_ns, end) if self.transacts else Ended()
        if ended.failed is not None:
            return ended
        if self.hold_s and not self.server_closes:  # --close server: the sink holds it
            await trio.sleep(self.hold_s)
        if self.server_closes:
            wait = min(trio.current_time() + self.close_limit_s + self.hold_s, end)
            ended.failed, ended.errno = await server_close(s, wait)
        return ended

    async def transact(self, s: _socket.socket, flow_i: int, t_start_ns: int, end: float) -> Ended:
        """Write the request, read the response; by trio time ``end`` at the latest (the
        response timeout from connect, or the run's time bound): else ``timeout``."""
        ended = Ended()
        reading = _Reading(self.response_size, http.ResponseReader() if self.http else None)
        try:
            # At once first: a small request goes whole. Its answer comes from another
            # process, which has yet to run, so the socket is read once epoll says so (a
            # read of an empty socket is a syscall and an exception); with no request the
            # answer may be in already. Only what has to wait takes a cancel scope.
            request = memoryview(self.requests[flow_i])
            answer_due = bool(request) and (self.http or self.response_size > 0)
            request = request[_send_now(s, request) :]
            if request or answer_due or not self._pump(s, reading, ended):
                with trio.move_on_at(min(trio.current_time() + self.limit_s, end)) as cs:
                    await _send_all(s, request)
                    if answer_due:
                        await trio.lowlevel.wait_readable(s)
                    while not self._pump(s, reading, ended):
                        await trio.lowlevel.wait_readable(s)
                if cs.cancelled_caught:
                    ended.failed = Outcome.TIMEOUT
        except OSError as e:  # ECONNRESET, EPIPE: the peer aborted
            ended.failed = classify(Phase.EXCHANGE, e.errno or 0)
            ended.errno = e.errno
        except http.HttpProblem:  # the response broke HTTP/1.1's framing
            ended.failed = Outcome.HTTP_ERROR
        if reading.reader is not None:
            status = ended.status = reading.reader.status
            if ended.failed is None and not (status is not None and 200 <= status < 400):
                ended.failed = Outcome.HTTP_ERROR
        ended.transaction_ns = perf_counter_ns() - t_start_ns
        return ended

    def _pump(self, s: _socket.socket, reading: _Reading, ended: Ended) -> bool:
        """Read what has arrived of the response; True once it is whole, or cut short by
        EOF (``ended`` says so); False when more is due. Raises HttpProblem, OSError."""
        buf, reader = self._buf, reading.reader
        while reader is not None or reading.left > 0:
            try:
                got = s.recv_into(
                    buf, _RECV_BYTES if reader is not None else min(reading.left, _RECV_BYTES)
                )
            except BlockingIOError:
                return False
            if not got:  # EOF: the end of a body read to EOF, or before the whole response
                if reader is None or not reader.at_eof():
                    ended.failed = Outcome.RESPONSE_INCOMPLETE
                return True
            if reader is None:
                reading.left -= got
            elif reader.feed(bytes(memoryview(buf)[:got])):
                return True
        return True


@dataclass(slots=True)
class _Reading:
    """One response being read: bytes still due (raw), or its HTTP reader."""

    left: int
    reader: http.ResponseReader | None


def _send_now(s: _socket.socket, data: memoryview) -> int:
    """What of ``data`` the socket takes without waiting."""
    if not data:
        return 0
    try:
        return s.send(data)
    except BlockingIOError:
        return 0


async def _send_all(s: _socket.socket, view: memoryview) -> None:
    while view:
        try:
            view = view[s.send(view) :]
        except BlockingIOError:
            await trio.lowlevel.wait_writable(s)


async def server_close(s: _socket.socket, end: float) -> tuple[Outcome | None, int | None]:
    """--close server: read to the server's FIN (so our close() answers it and TIME_WAIT
    stays on the server's side), by trio time ``end``. (None, None) when it came;
    (CLOSE_TIMEOUT, None) when it did not; (outcome, errno) for an error while waiting."""
    with trio.move_on_at(end):
        while True:
            try:
                if not s.recv(4096):
                    return None, None
            except BlockingIOError:
                await trio.lowlevel.wait_readable(s)
            except OSError as e:
                return classify(Phase.CLOSE, e.errno or 0), e.errno
    return Outcome.CLOSE_TIMEOUT, None
