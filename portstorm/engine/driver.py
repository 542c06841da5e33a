"""The churn driver: open and close outbound TCP connections, and measure each connect.

Containing the hot loop and nothing else: no printing, no files, no /proc, no processes.
It talks to the rest of portstorm through ``Interval`` records handed to a callback once per
interval (delivery.py folds the first second's 100 ms ones); what it connects over is
flows.py, what a run needs of it load.py (a pool of worker processes, pool.py, too).

Two load shapes:
- closed loop: ``concurrency`` tasks each run attempts back to back, as fast as possible;
- open loop: attempts start on a fixed schedule (``rate`` per second) whatever the latency.
  Each latency is measured from the attempt's *intended* start, so a stall in the driver or
  the kernel shows up as latency instead of silently lowering the rate (coordinated
  omission, handled as wrk2 does). ``concurrency``, when given, caps attempts in flight;
  waiting for a slot counts as latency too.

The duration is a time bound for both: no attempt starts after it. An open loop still
behind its schedule then drops the starts still due and counts them (``not_started``, not
a failure); attempts in flight get at most the longer of the connect and close timeouts,
plus --hold and the response timeout (exchange.py), so a run ends within that of its end.

Attempts go round-robin over the run's *flows*: one per (source, destination) tuple
(core/addressing.py). Each flow's counts are kept apart (flows.FlowCounts), so result.json
can say which tuple ran out first. How a socket gets its port is the bind mode (flows.py).

Sockets are plain non-blocking stdlib sockets driven by trio.lowlevel.wait_writable():
trio's socket wrapper resolves the address on every connect(), which a churn loop cannot
afford. A non-blocking connect() returns EINPROGRESS and the result arrives as writability
plus SO_ERROR (tcp_v4_connect(), then the handshake in softirq).
"""

from __future__ import annotations

import errno
import math
import socket
import struct
from collections.abc import Callable
from time import perf_counter_ns

import trio

from portstorm.core.exchange import transacts
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import CONNECTED, FAILURES, Outcome, Phase, classify, errno_name
from portstorm.core.result import Interval
from portstorm.core.scenario import CloseMode, Scenario
from portstorm.engine.delivery import Records
from portstorm.engine.exchange import Exchange
from portstorm.engine.flows import (
    IP_LOCAL_PORT_RANGE,
    N_FAILURES,
    Flow,
    FlowCounts,
    socket_options,
)
from portstorm.engine.load import DriverReport, Share, is_empty_tail, take_sample, tick, with_sample
from portstorm.engine.sampler import Sample
from portstorm.engine.tally import Tally, interval_of
from portstorm.engine.timer import PreciseTimer, planned_starts, trio_time

_LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0}: close() sends RST (tcp_disconnect)
_FAILURE_INDEX = {o: i for i, o in enumerate(FAILURES)}
_WHOLE_LOAD = Share()  # one driver, all of the run's load
# Attempts that complete inside _begin() never wait, so a task yields to the others (the
# ticker, a stop, attempts waiting on the event loop) once it has run this long: trio runs
# every ready task once per scheduler pass, so a pass lasts up to tasks x slice. Counted in
# attempts instead, 16 tasks x 32 connects of 2 ms each (past the port-search knee) held
# the interval ticker back for a whole second.
_SLICE_NS = 500_000
_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK  # no separate fcntl()
_EINPROGRESS, _EALREADY, _EISCONN = errno.EINPROGRESS, errno.EALREADY, errno.EISCONN


class Driver:
    def __init__(
        self,
        scenario: Scenario,
        flows: list[Flow],
        on_interval: Callable[[Interval], None] | None = None,
        sample: Callable[[], Sample] | None = None,
        share: Share = _WHOLE_LOAD,
        start_ns: int | None = None,
        keep_intervals: bool = True,
    ) -> None:
        if not flows:
            raise ValueError("the driver needs at least one flow")
        self.scenario = scenario
        self.flows = flows
        self.share = share
        self._start_ns = start_ns  # perf_counter_ns() time; workers of one run share it
        self._interval_hist = LatencyHistogram()  # reused: one allocation, not one per tick
        self._sample = sample
        self._timeout, self._close_timeout = scenario.connect_timeout_s, scenario.close_limit_s
        self._close = scenario.close
        self._goes_on = scenario.exchanges or scenario.close is CloseMode.SERVER
        self._exchange = Exchange(scenario, flows) if self._goes_on else None
        self._tx_hist = LatencyHistogram() if transacts(scenario) else None
        self._http = scenario.http_path is not None
        _, self._port_range = socket_options(scenario)  # no-port: in each flow's options
        self._next_flow = share.index % len(flows)  # workers start spread over the flows
        self.counts = FlowCounts(len(flows))
        # the hot loop adds to these lists directly: no attribute lookup through counts
        self._flow_ok, self._flow_failed = self.counts.ok, self.counts.failed
        self._flow_first = self.counts.first
        self._t0 = 0
        self._tally = Tally(0)
        self._report = DriverReport()
        # a lone driver folds its ramp; a pool's worker streams raw records to the pool
        self._records = Records(self._report, on_interval, scenario.interval_s, keep_intervals)
        self._load_scope = trio.CancelScope()
        self._stopped = trio.Event()
        self._min_final_ns = int(scenario.interval_s * 1e9) // 100
        self._deadline_ns = 0  # perf_counter_ns() time: the planned end of the load
        self._drain_end = math.inf  # trio time: the planned end plus the longer timeout

    # -- control -----------------------------------------------------------------------

    @property
    def first_failure(self) -> tuple[float, str] | None:
        """(seconds into the load, outcome) of the first failed attempt so far."""
        r = self._report
        if r.first_failure_s is None or r.first_failure_outcome is None:
            return None
        return r.first_failure_s, r.first_failure_outcome

    def stop(self) -> None:
        """End the run now (Ctrl-C, SIGTERM): in-flight attempts are abandoned, not counted."""
        self._report.interrupted = True
        self._load_scope.cancel()
        self._stopped.set()

    async def run(self) -> DriverReport:
        """Drive the load for the scenario's duration, from ``start_ns`` if one was given
        (workers of one run share it, so their intervals line up), else from now."""
        sc = self.scenario
        t0_ns = self._start_ns
        if t0_ns is not None and (wait := t0_ns - perf_counter_ns()) > 0:
            with trio.move_on_after(wait / 1e9):
                await self._stopped.wait()
        self._t0 = perf_counter_ns() if t0_ns is None else t0_ns
        self._tally = Tally(self._t0)
        self._deadline_ns = deadline_ns = self._t0 + int(sc.duration_s * 1e9)
        self._drain_end = trio_time(deadline_ns) + max(self._timeout, self._close_timeout)
        self._drain_end += sc.hold_s + (sc.response_limit_s if transacts(sc) else 0.0)
        cap = sc.in_flight_cap
        if cap is not None:
            cap = self.share.part(cap)
        async with trio.open_nursery() as outer:
            step_ns = int(sc.interval_s * 1e9)
            outer.start_soon(tick, self._t0, step_ns, self._tick, self._records.whole)
            with self._load_scope:
                async with trio.open_nursery() as load:
                    if sc.rate is not None:
                        limiter = trio.CapacityLimiter(cap) if cap else None
                        load.start_soon(self._open_loop, load, sc.rate, deadline_ns, limiter)
                    else:
                        for _ in range(cap or 1):
                            load.start_soon(self._closed_worker, deadline_ns)
            outer.cancel_scope.cancel()
        tally = self._tally
        # the last tick may have fallen on the end of the load: no empty interval after it
        if (
            tally.latencies_ns
            or any(tally.failed)
            or tally.not_started
            or not is_empty_tail(
                tally.t_start_ns, perf_counter_ns(), self._deadline_ns, self._min_final_ns
            )
        ):
            sample = await take_sample(self._sample, self._report.sample_errors)
            self._flush(perf_counter_ns(), sample, None)
        self._records.end()
        end = perf_counter_ns()
        rep = self._report
        rep.elapsed_s = (end - self._t0) / 1e9
        self.counts.fill(rep)
        return rep

    # -- load shapes -------------------------------------------------------------------

    def _flow(self) -> int:
        i = self._next_flow
        self._next_flow = i + 1 if i + 1 < len(self.flows) else 0
        return i

    async def _closed_worker(self, deadline_ns: int) -> None:
        begin, finish, next_flow = self._begin, self._finish, self._flow
        slice_end = 0
        while (t := perf_counter_ns()) < deadline_ns:
            if t >= slice_end:
                await trio.lowlevel.checkpoint()
                t = perf_counter_ns()
                slice_end = t + _SLICE_NS
            flow_i = next_flow()
            s = begin(flow_i, t)
            if s is not None:
                await finish(s, flow_i, t)
                slice_end = 0  # it waited: a fresh slice

    async def _open_loop(
        self,
        nursery: trio.Nursery,
        rate: float,
        deadline_ns: int,
        limiter: trio.CapacityLimiter | None,
    ) -> None:
        # the run's schedule, dealt round-robin: worker k of n takes starts k, k + n, ...
        period_ns = 1e9 / rate
        n, k = self.share.count, self.share.index
        planned = planned_starts(period_ns, n, k, deadline_ns - self._t0)
        slot_deadline = trio_time(deadline_ns)
        begin, finish, next_flow = self._begin, self._finish, self._flow
        i = 0
        slice_end = 0
        async with PreciseTimer() as timer:
            while True:
                intended = self._t0 + int((i * n + k) * period_ns)
                if intended >= deadline_ns:
                    # The schedule covers the whole duration, even the gap after the last start.
                    now = perf_counter_ns()
                    if deadline_ns > now:
                        await timer.sleep_until(deadline_ns, now)
                    return
                now = perf_counter_ns()
                if intended > now:
                    await timer.sleep_until(intended, now)
                    slice_end = perf_counter_ns() + _SLICE_NS
                elif now >= deadline_ns:
                    # Behind at the planned end (the host cannot churn this rate): the starts
                    # still due are dropped, not made late. Making them kept a 120 s run
                    # going for 319 s, its latency all wait.
                    self._tally.not_started += planned - i
                    return
                elif now >= slice_end:  # behind schedule: still let attempts finish, ticks run
                    await trio.lowlevel.checkpoint()
                    slice_end = perf_counter_ns() + _SLICE_NS
                i += 1
                flow_i = next_flow()
                if limiter is None:
                    s = begin(flow_i, intended)
                    if s is not None:
                        nursery.start_soon(finish, s, flow_i, intended)
                    continue
                # In flight counts against the cap from the start. With no free slot the
                # schedule waits for one (slots free in FIFO order, as the starts are due);
                # that wait counts as latency, and it ends at the time bound.
                slot = object()
                try:
                    limiter.acquire_on_behalf_of_nowait(slot)
                except trio.WouldBlock:
                    with trio.move_on_at(slot_deadline) as cs:
                        await limiter.acquire_on_behalf_of(slot)
                    if cs.cancelled_caught:  # trio: a cancelled acquire took no slot
                        self._tally.not_started += planned - (i - 1)
                        return
                    slice_end = perf_counter_ns() + _SLICE_NS  # it waited: a fresh slice
                s = begin(flow_i, intended)
                if s is None:
                    limiter.release_on_behalf_of(slot)
                else:
                    nursery.start_soon(self._finish_and_release, s, flow_i, intended, limiter, slot)

    async def _finish_and_release(
        self,
        s: socket.socket,
        flow_i: int,
        t_start_ns: int,
        limiter: trio.CapacityLimiter,
        slot: object,
    ) -> None:
        try:
            await self._finish(s, flow_i, t_start_ns)
        finally:
            limiter.release_on_behalf_of(slot)

    # -- one attempt (the hot path) ----------------------------------------------------
    #
    # An attempt runs synchronously as far as it can: begin() opens, binds, connects and,
    # when the handshake is already over, closes and records, all without a task switch.
    # On loopback and over a veth the SYN, SYN-ACK and ACK are processed before connect()
    # returns (softirq on the same CPU, then the socket backlog at release_sock()), so the
    # first connect() says EINPROGRESS and a second one already finds the connection up
    # (__inet_stream_connect(): 0 once the state is past SYN_SENT). Only an attempt still in
    # progress, or one that must wait for the server's FIN (--close server), goes on in
    # finish(), which waits on the event loop. Latency runs from the attempt's start (closed
    # loop: just before socket(); open loop: its intended start) to the moment the
    # connection is seen established; bind() is inside it (in bind mode the port search
    # happens there).

    def _begin(self, flow_i: int, t_start_ns: int) -> socket.socket | None:
        """Start an attempt; None when it is over (recorded), else the socket to finish()."""
        flow = self.flows[flow_i]
        try:
            s = socket.socket(flow.family, _STREAM_NONBLOCK)
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
                return s
        if err:
            # EADDRNOTAVAIL (no free port) and friends fail inside connect() itself
            s.close()
            self._fail(flow_i, classify(Phase.CONNECT, err), err)
            return None
        latency_ns = perf_counter_ns() - t_start_ns
        if self._goes_on:
            return s  # finish() exchanges, holds or reads to the server's FIN
        if self._close is CloseMode.RST:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
        s.close()
        self._tally.latencies_ns.append(latency_ns)
        self._flow_ok[flow_i] += 1
        return None

    async def _finish(self, s: socket.socket, flow_i: int, t_start_ns: int) -> None:
        """Wait for the connection begin() started, end it by the close mode, record it."""
        try:
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

    # -- intervals ---------------------------------------------------------------------

    async def _tick(self, k: int) -> None:
        sample = await take_sample(self._sample, self._report.sample_errors)
        self._flush(perf_counter_ns(), sample, k)

    def _flush(self, end_ns: int, sample: Sample | None, k: int | None) -> None:
        tally = self._tally
        self._tally = Tally(end_ns)
        hist = self._interval_hist
        tx = self._tx_hist
        interval = interval_of(tally, end_ns, self._t0, hist, tx, self._http)
        interval = with_sample(interval, sample)
        self.counts.update_ports(sample)
        self._report.histogram.add(hist)
        if tx is not None:
            self._report.transactions.add(tx)
        self._records.add(interval, k)
