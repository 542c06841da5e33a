"""The churn driver: open and close outbound TCP connections, and measure each connect.

Containing the load shapes and the intervals (one attempt, the hot path, is attempts.py),
nothing else: no printing, no files, no /proc, no processes. It talks to the rest of
portstorm through ``Interval`` records handed to a callback once per interval
(delivery.py folds the first second's 100 ms ones); what it connects over is flows.py,
what a run needs of it load.py (a pool of worker processes, pool.py, too).

Two load shapes:
- closed loop: ``concurrency`` tasks each run attempts back to back, as fast as possible
  (with a raw request and response: one task keeping ``concurrency`` in flight, attempts.py);
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

Sockets are plain non-blocking C sockets (``_socket.socket``) driven by
trio.lowlevel.wait_writable(): trio's socket wrapper resolves the address on every
connect(), which a churn loop cannot afford; one attempt is attempts.py. A non-blocking
connect() returns EINPROGRESS and the result arrives as writability plus SO_ERROR
(tcp_v4_connect(), then the handshake in softirq).
"""

from __future__ import annotations

import _socket
import math
from collections.abc import Callable
from time import perf_counter_ns

import trio

from portstorm.core.exchange import transacts
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.result import Interval
from portstorm.core.scenario import Scenario
from portstorm.engine.attempts import SLICE_NS, Attempts
from portstorm.engine.delivery import Records
from portstorm.engine.flows import Flow
from portstorm.engine.load import DriverReport, Share, is_empty_tail, take_sample, tick, with_sample
from portstorm.engine.sampler import Sample
from portstorm.engine.tally import Tally, interval_of
from portstorm.engine.timer import PreciseTimer, planned_starts, trio_time

_WHOLE_LOAD = Share()  # one driver, all of the run's load


class Driver(Attempts):
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
        super().__init__(scenario, flows)
        self.scenario = scenario
        self.share = share
        self._start_ns = start_ns  # perf_counter_ns() time; workers of one run share it
        self._interval_hist = LatencyHistogram()  # reused: one allocation, not one per tick
        self._sample = sample
        self._tx_hist = LatencyHistogram() if transacts(scenario) else None
        self._http = scenario.http_path is not None
        self._next_flow = share.index % len(flows)  # workers start spread over the flows
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
            outer.start_soon(tick, self._t0, step_ns, self._tick, self._records.whole, self._calm)
            with self._load_scope:
                async with trio.open_nursery() as load:
                    if sc.rate is not None:
                        limiter = trio.CapacityLimiter(cap) if cap else None
                        load.start_soon(self._open_loop, load, sc.rate, deadline_ns, limiter)
                    elif self._transactions:
                        load.start_soon(self._closed_transactions, deadline_ns, cap or 1)
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
                    slice_end = perf_counter_ns() + SLICE_NS
                elif now >= deadline_ns:
                    # Behind at the planned end (the host cannot churn this rate): the starts
                    # still due are dropped, not made late. Making them kept a 120 s run
                    # going for 319 s, its latency all wait.
                    self._tally.not_started += planned - i
                    return
                elif now >= slice_end:  # behind schedule: still let attempts finish, ticks run
                    await trio.lowlevel.checkpoint()
                    slice_end = perf_counter_ns() + SLICE_NS
                i += 1
                flow_i = next_flow()
                if limiter is None:
                    s = begin(flow_i, intended)
                    if s is not None:
                        nursery.start_soon(finish, s, flow_i, intended, self._connected_ns)
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
                    slice_end = perf_counter_ns() + SLICE_NS  # it waited: a fresh slice
                s = begin(flow_i, intended)
                if s is None:
                    limiter.release_on_behalf_of(slot)
                else:
                    nursery.start_soon(
                        self._finish_and_release,
                        s,
                        flow_i,
                        intended,
                        limiter,
                        slot,
                        self._connected_ns,
                    )

    async def _finish_and_release(
        self,
        s: _socket.socket,
        flow_i: int,
        t_start_ns: int,
        limiter: trio.CapacityLimiter,
        slot: object,
        latency_ns: int,
    ) -> None:
        try:
            await self._finish(s, flow_i, t_start_ns, latency_ns)
        finally:
            limiter.release_on_behalf_of(slot)

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
