"""One attempt, the driver's hot path: open, bind, connect, close and record, as few Python
steps per connection as it can be.

Containing ``Attempts``, the per-attempt steps and the state they touch (the flows, the
interval's tally, the per-flow counts), which Driver (driver.py: the load shapes, the
intervals, the control) is built on; the closed loop's worker, where most attempts of a
churn run are made, is here too. Nothing here prints, opens files or waits on anything
but a socket.

An attempt runs synchronously as far as it can: begin() opens, binds, connects and,
when the handshake is already over, closes and records, all without a task switch.
On loopback and over a veth the SYN, SYN-ACK and ACK are processed before connect()
returns (softirq on the same CPU, then the socket backlog at release_sock()), so the
first connect() says EINPROGRESS and a second one already finds the connection up
(__inet_stream_connect(): 0 once the state is past SYN_SENT). Only an attempt still in
progress, or one that must wait for the server's FIN (--close server), goes on in
finish(), which waits on the event loop. Latency runs from the attempt's start (closed
loop: just before socket(); open loop: its intended start) to the moment the
connection is seen established; bind() is inside it (in bind mode the port search
happens there).

What a connection costs here in Python (issue 22; benchmarks/README.md has the profile):
the socket is the bare C type ``_socket.socket``, without socket.socket's Python-level
``__init__`` and ``close()`` (a bare loop: 9.5 against 6 us of user time per connection),
the closed loop for a plain connect-and-close run (no bind, no per-socket port range, no
exchange) is one function with everything it touches in locals, and the closed loop with a
raw request and response runs its attempts as state machines over one epoll of its own.
"""

from __future__ import annotations

import _socket
import errno
import select
import socket
import struct
from time import perf_counter_ns

import trio

from portstorm.core.outcome import CONNECTED, FAILURES, Outcome, Phase, classify, errno_name
from portstorm.core.scenario import CloseMode, Scenario
from portstorm.engine.exchange import Exchange
from portstorm.engine.flows import IP_LOCAL_PORT_RANGE, N_FAILURES, Flow, FlowCounts, socket_options
from portstorm.engine.load import DriverReport
from portstorm.engine.tally import Tally
from portstorm.engine.timer import trio_time

_LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0}: close() sends RST (tcp_disconnect)
_FAILURE_INDEX = {o: i for i, o in enumerate(FAILURES)}
# Attempts that complete inside _begin() never wait, so a task yields to the others (the
# ticker, a stop, attempts waiting on the event loop) once it has run this long: trio runs
# every ready task once per scheduler pass, so a pass lasts up to tasks x slice. Counted in
# attempts instead, 16 tasks x 32 connects of 2 ms each (past the port-search knee) held
# the interval ticker back for a whole second.
SLICE_NS = 500_000
# The closed loop of plain connects (_closed_plain, a churn run's) yields less often while
# no tick is near: its slice runs to the next tick, at most CALM_SLICE_NS, and is SLICE_NS
# again while a tick is being taken (the ticker announces both: load.tick's ``calm``).
# Each yield is a task switch in trio's scheduler, paid by the connections around it:
# with 16 tasks a worker (--concurrency 32 over two), a 3 s churn run made 274 epoll_wait()
# calls (trio's, once a scheduler pass) against 754, and a driver worker's user time fell
# from 7.5 to 7.0 us a connection (RST close; FIN 4.4 to 4.0; means of 4 and 6 rounds of
# churn.py --cpu 4 and 8, side by side, on a noisy host). A tick is then late by an
# attempt per task, not by a pass; a stop by up to tasks x 4 ms.
CALM_SLICE_NS = 4_000_000
_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK  # no separate fcntl()
_EINPROGRESS, _EALREADY, _EISCONN = errno.EINPROGRESS, errno.EALREADY, errno.EISCONN
_SOL_SOCKET, _SO_LINGER = socket.SOL_SOCKET, socket.SO_LINGER


class Attempts:
    """The hot path's state and steps, for one driver (driver.py's Driver is one)."""

    def __init__(self, scenario: Scenario, flows: list[Flow]) -> None:
        self.flows = flows
        self._timeout, self._close_timeout = scenario.connect_timeout_s, scenario.close_limit_s
        self._close = scenario.close
        self._goes_on = scenario.exchanges or scenario.close is CloseMode.SERVER
        self._exchange = Exchange(scenario, flows) if self._goes_on else None
        _, self._port_range = socket_options(scenario)  # no-port: in each flow's options
        self.counts = FlowCounts(len(flows))
        # the hot loop adds to these lists directly: no attribute lookup through counts
        self._flow_ok, self._flow_failed = self.counts.ok, self.counts.failed
        self._flow_first = self.counts.first
        self._next_flow = 0
        self._calm_until_ns = 0  # perf_counter_ns(): the next tick; 0 while one is taken
        self._t0 = 0
        self._tally = Tally(0)
        self._report = DriverReport()
        self._drain_end = float("inf")  # trio time: the planned end plus the longer timeout
        self._connected_ns = 0  # set by _begin() with a socket to finish: its latency, if up
        # a raw request and response, closed by the client: _closed_transactions()
        self._transactions = (
            scenario.exchanges
            and not scenario.hold_s
            and scenario.http_path is None
            and scenario.close is not CloseMode.SERVER
        )
        # connect and close, nothing else: _closed_plain() can make these attempts
        self._plain = (
            not self._goes_on
            and self._port_range is None
            and all(f.bind_addr is None for f in flows)
        )

    def _calm(self, until_ns: int) -> None:
        """The ticker's word (load.tick): no tick before ``until_ns``; 0: one is being
        taken now."""
        self._calm_until_ns = until_ns

    def _flow(self) -> int:
        i = self._next_flow
        self._next_flow = i + 1 if i + 1 < len(self.flows) else 0
        return i

    async def _closed_worker(self, deadline_ns: int) -> None:
        """One closed-loop task: attempts back to back until the time bound."""
        if self._plain:
            await self._closed_plain(deadline_ns)
            return
        begin, finish, next_flow = self._begin, self._finish, self._flow
        slice_end = 0
        while (t := perf_counter_ns()) < deadline_ns:
            if t >= slice_end:
                await trio.lowlevel.checkpoint()
                t = perf_counter_ns()
                slice_end = t + SLICE_NS
            flow_i = next_flow()
            s = begin(flow_i, t)
            if s is not None:
                await finish(s, flow_i, t, self._connected_ns)
                slice_end = 0  # it waited: a fresh slice

    async def _closed_plain(self, deadline_ns: int) -> None:
        """_closed_worker() for connect and close alone: _begin() inlined, its lookups
        hoisted; the tally's list is fetched again after each wait (a tick swaps it). Its
        slice runs to the next tick, up to CALM_SLICE_NS (above)."""
        flows = self.flows
        n = len(flows)
        families = [f.family for f in flows]
        addrs = [f.sockaddr for f in flows]
        ok, new, fail = self._flow_ok, _socket.socket, self._fail
        rst = self._close is CloseMode.RST
        now, checkpoint = perf_counter_ns, trio.lowlevel.checkpoint
        latencies = self._tally.latencies_ns.append
        slice_end = 0
        while (t := now()) < deadline_ns:
            if t >= slice_end:
                await checkpoint()
                latencies = self._tally.latencies_ns.append
                t = now()
                calm = self._calm_until_ns - t
                slice_end = t + (CALM_SLICE_NS if calm > CALM_SLICE_NS else max(calm, SLICE_NS))
            i = self._next_flow
            self._next_flow = i + 1 if i + 1 < n else 0
            try:
                s = new(families[i], _STREAM_NONBLOCK)
            except OSError as e:
                fail(i, classify(Phase.SOCKET, e.errno or 0), e.errno)
                continue
            addr = addrs[i]
            err = s.connect_ex(addr)
            if err == _EINPROGRESS:
                err = s.connect_ex(addr)
                if err == _EALREADY:  # the handshake is not over: wait for it
                    await self._finish(s, i, t)
                    latencies = self._tally.latencies_ns.append
                    slice_end = 0
                    continue
            if err:
                s.close()
                fail(i, classify(Phase.CONNECT, err), err)
                continue
            latencies(now() - t)
            if rst:
                s.setsockopt(_SOL_SOCKET, _SO_LINGER, _LINGER_ABORT)
            s.close()
            ok[i] += 1

    async def _closed_transactions(self, deadline_ns: int, slots: int) -> None:
        """The closed loop with a raw request and response (no HTTP, no hold, --close rst
        or client): ``slots`` attempts in flight as state machines over one epoll of this
        driver's own, in one task; trio sees only that epoll's fd. A trio task per attempt
        waiting per socket cost a cancel scope, three epoll_ctl() calls and a task switch
        per transaction: a bare Python loop like this one made 1.31 times the C client's
        transactions, a blocking one 0.73 (benchmarks/README.md, crr.py)."""
        ex = self._exchange
        assert ex is not None
        ep = select.epoll()
        live: dict[int, _Transaction] = {}
        rst, timeout_ns = self._close is CloseMode.RST, int(self._timeout * 1e9)
        limit_ns, buf = int(ex.limit_s * 1e9), bytearray(65536)
        slice_end = 0
        try:
            while True:
                now = perf_counter_ns()
                if now >= slice_end:  # events without end (a long request): still yield
                    await trio.lowlevel.checkpoint()
                    now = perf_counter_ns()
                    slice_end = now + SLICE_NS
                while len(live) < slots and now < deadline_ns:
                    if now >= slice_end:
                        await trio.lowlevel.checkpoint()
                        now = perf_counter_ns()
                        slice_end = now + SLICE_NS
                    flow_i = self._flow()
                    s = self._begin(flow_i, now)
                    if s is not None:
                        tx = _Transaction(s, flow_i, now, ex.requests[flow_i], ex.response_size)
                        tx.deadline = now + timeout_ns
                        if self._connected_ns:  # up already: the request goes at once
                            tx.connected(self._connected_ns, rst, limit_ns)
                        if self._connected_ns and not self._advance(tx, now, rst, limit_ns, buf):
                            s.close()
                        else:
                            live[s.fileno()] = tx
                            ep.register(s.fileno(), tx.events())
                    now = perf_counter_ns()
                if not live:
                    return
                events = ep.poll(0)
                if not events:
                    wake_at = trio_time(min(tx.deadline for tx in live.values()))
                    with trio.move_on_at(wake_at):
                        await trio.lowlevel.wait_readable(ep.fileno())
                    slice_end = perf_counter_ns() + SLICE_NS
                    events = ep.poll(0)
                now = perf_counter_ns()
                for fd, _ev in events:
                    tx = live[fd]
                    was = tx.events()
                    if not self._advance(tx, now, rst, limit_ns, buf):
                        del live[fd]
                        tx.sock.close()  # leaves the epoll set with it
                    elif tx.events() != was:
                        ep.modify(fd, tx.events())
                for fd in [fd for fd, tx in live.items() if tx.deadline <= now]:
                    tx = live.pop(fd)  # no handshake, or no whole answer, in time
                    self._fail(tx.flow_i, Outcome.TIMEOUT, None)
                    tx.sock.close()
        finally:  # a stop abandons what is in flight, uncounted
            for tx in live.values():
                tx.sock.close()
            ep.close()

    def _advance(
        self, tx: _Transaction, now: int, rst: bool, limit_ns: int, buf: bytearray
    ) -> bool:
        """One step of ``tx`` on an epoll event; False once it is over (recorded)."""
        s = tx.sock
        try:
            if not tx.latency_ns:  # the handshake was in progress
                err = s.connect_ex(self.flows[tx.flow_i].sockaddr)
                if err == _EALREADY:
                    return True
                if err and err != _EISCONN:
                    self._fail(tx.flow_i, classify(Phase.CONNECT, err), err)
                    return False
                tx.connected(now - tx.t_start_ns, rst, limit_ns)
            if tx.request:
                tx.request = tx.request[s.send(tx.request) :]
                # the answer comes from another process, yet to run: epoll says when
                return bool(tx.request) or tx.left > 0 or self._done(tx, now)
            if tx.left <= 0:
                return self._done(tx, now)
            got = s.recv_into(buf, min(tx.left, 65536))
        except BlockingIOError:
            return True
        except OSError as e:  # ECONNRESET, EPIPE: the peer aborted
            outcome = classify(Phase.EXCHANGE, e.errno or 0)
            if tx.latency_ns and outcome in CONNECTED:  # connected, so timed
                self._tally.latencies_ns.append(tx.latency_ns)
            self._fail(tx.flow_i, outcome, e.errno)
            return False
        if not got:  # EOF before the whole response
            self._tally.latencies_ns.append(tx.latency_ns)  # connected, so timed
            self._fail(tx.flow_i, Outcome.RESPONSE_INCOMPLETE, None)
            return False
        tx.left -= got
        return tx.left > 0 or self._done(tx, now)

    def _done(self, tx: _Transaction, now: int) -> bool:
        """Record ``tx``'s success (its last response byte read just now); False."""
        tally = self._tally
        tally.latencies_ns.append(tx.latency_ns)
        tally.transactions_ns.append(perf_counter_ns() - tx.t_start_ns)
        self._flow_ok[tx.flow_i] += 1
        return False

    def _begin(self, flow_i: int, t_start_ns: int) -> _socket.socket | None:
        """Start an attempt; None when it is over (recorded), else the socket to finish()."""
        flow = self.flows[flow_i]
        try:
            s = _socket.socket(flow.family, _STREAM_NONBLOCK)
        except OSError as e:
            self._fail(flow_i, classify(Phase.SOCKET, e.errno or 0), e.errno)
            return None
        if flow.bind_addr is not None:
            try:
                for option in flow.bind_options:  # IP_BIND_ADDRESS_NO_PORT, IP_FREEBIND
                    s.setsockopt(socket.SOL_IP, option, 1)
                if self._port_range is not None:
                    s.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, self._port_range)
                s.bind(flow.bind_addr)
            except OSError as e:
                # EADDRINUSE: inet_csk_get_port() found no free port for this address
                s.close()
                self._fail(flow_i, classify(Phase.BIND, e.errno or 0), e.errno)
                return None
        elif self._port_range is not None:
            s.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, self._port_range)
        err = s.connect_ex(flow.sockaddr)
        if err == _EINPROGRESS:
            err = s.connect_ex(flow.sockaddr)
            if err == _EALREADY:
                self._connected_ns = 0  # still in progress: finish() waits for it
                return s
        if err:
            # EADDRNOTAVAIL (no free port) and friends fail inside connect() itself
            s.close()
            self._fail(flow_i, classify(Phase.CONNECT, err), err)
            return None
        latency_ns = perf_counter_ns() - t_start_ns
        if self._goes_on:
            self._connected_ns = latency_ns  # finish() need not wait for the connection
            return s  # finish() exchanges, holds or reads to the server's FIN
        if self._close is CloseMode.RST:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        s.close()
        self._tally.latencies_ns.append(latency_ns)
        self._flow_ok[flow_i] += 1
        return None

    async def _finish(
        self, s: _socket.socket, flow_i: int, t_start_ns: int, latency_ns: int = 0
    ) -> None:
        """Wait for the connection begin() started (unless it is up: ``latency_ns`` then
        says when it was seen so), end it by the close mode, record it."""
        try:
            if not latency_ns:
                sockaddr = self.flows[flow_i].sockaddr
                with trio.move_on_after(self._timeout) as cs:
                    while (err := s.connect_ex(sockaddr)) == _EALREADY:
                        await trio.lowlevel.wait_writable(s)
                if cs.cancelled_caught:
                    self._fail(flow_i, Outcome.TIMEOUT, None)
                    return
                if err and err != _EISCONN:
                    self._fail(flow_i, classify(Phase.CONNECT, err), err)
                    return
                latency_ns = perf_counter_ns() - t_start_ns
            if self._close is CloseMode.RST:  # SO_LINGER acts at close() only
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
            ex = self._exchange  # request/response, HTTP, hold, --close server: exchange.py
            if ex is not None:
                ended = await ex.finish(s, flow_i, t_start_ns, self._drain_end)
                tally = self._tally
                if ended.status is not None:
                    tally.http_status[ended.status] = tally.http_status.get(ended.status, 0) + 1
                if ended.failed is not None:
                    if ended.failed in CONNECTED:  # connected, so not a connect failure,
                        tally.latencies_ns.append(latency_ns)  # and timed
                    self._fail(flow_i, ended.failed, ended.errno)
                    return
                if ended.transaction_ns:
                    tally.transactions_ns.append(ended.transaction_ns)
            self._tally.latencies_ns.append(latency_ns)
            self._flow_ok[flow_i] += 1
        finally:
            s.close()

    def _fail(self, flow_i: int, outcome: Outcome, err: int | None) -> None:
        tally = self._tally
        k = _FAILURE_INDEX[outcome]
        tally.failed[k] += 1
        self._flow_failed[flow_i * N_FAILURES + k] += 1
        if outcome is Outcome.OTHER:
            name = errno_name(err or 0)
            tally.other[name] = tally.other.get(name, 0) + 1
        if self._flow_first[flow_i] is None:
            now_s = (perf_counter_ns() - self._t0) / 1e9
            self._flow_first[flow_i] = now_s
            rep = self._report
            if rep.first_failure_s is None:
                rep.first_failure_s = now_s
                rep.first_failure_outcome = str(outcome)


class _Transaction:
    """One closed-loop attempt with a raw request and response, between epoll events."""

    __slots__ = ("deadline", "flow_i", "latency_ns", "left", "request", "sock", "t_start_ns")

    def __init__(
        self, sock: _socket.socket, flow_i: int, t_start_ns: int, request: bytes, left: int
    ) -> None:
        self.sock, self.flow_i, self.t_start_ns = sock, flow_i, t_start_ns
        self.request = memoryview(request)
        self.left = left  # response bytes still due
        self.latency_ns = 0  # connect latency, once connected
        self.deadline = 0  # perf_counter_ns(): the connect timeout, then the response's

    def connected(self, latency_ns: int, rst: bool, limit_ns: int) -> None:
        self.latency_ns = latency_ns
        self.deadline = self.t_start_ns + latency_ns + limit_ns
        if rst:  # SO_LINGER acts at close() only
            self.sock.setsockopt(_SOL_SOCKET, _SO_LINGER, _LINGER_ABORT)

    def events(self) -> int:
        """What to wait for: the handshake's end or room to send (EPOLLOUT), the answer."""
        return select.EPOLLOUT if not self.latency_ns or self.request else select.EPOLLIN
