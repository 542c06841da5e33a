"""The churn driver: open and close outbound TCP connections, and measure each connect.

Containing the hot loop and nothing else: no printing, no files, no /proc. It talks to
the rest of portstorm through ``Interval`` records handed to a callback once per interval.

Two load shapes:
- closed loop: ``concurrency`` tasks each run attempts back to back, as fast as possible;
- open loop: attempts start on a fixed schedule (``rate`` per second) whatever the latency.
  Each latency is measured from the attempt's *intended* start, so a stall in the driver or
  the kernel shows up as latency instead of silently lowering the rate (coordinated
  omission, handled as wrk2 does). ``concurrency``, when given, caps attempts in flight;
  waiting for a slot counts as latency too.

Sockets are plain non-blocking stdlib sockets driven by trio.lowlevel.wait_writable():
trio's socket wrapper resolves the address on every connect(), which a churn loop cannot
afford. A non-blocking connect() returns EINPROGRESS and the result arrives as writability
plus SO_ERROR (tcp_v4_connect(), then the handshake in softirq).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter_ns

import trio

from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import FAILURES, Outcome, Phase, classify, errno_name
from portstorm.core.result import Interval
from portstorm.core.scenario import CloseMode, Scenario
from portstorm.engine.sampler import Sample

_LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0}: close() sends RST (tcp_disconnect)
_FAILURE_INDEX = {o: i for i, o in enumerate(FAILURES)}
_OPEN_LOOP_YIELD_EVERY = 64  # a late open-loop scheduler still lets attempts run


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A resolved destination: what connect() takes, and how to name it."""

    family: int
    sockaddr: tuple[str, int] | tuple[str, int, int, int]
    label: str


class _Tally:
    """What completed since the last interval boundary (swapped out at each tick)."""

    __slots__ = ("failed", "hist", "other", "succeeded", "t_start_ns")

    def __init__(self, t_start_ns: int) -> None:
        self.t_start_ns = t_start_ns
        self.succeeded = 0
        self.failed = [0] * len(FAILURES)
        self.other: dict[str, int] = {}
        self.hist = LatencyHistogram()


@dataclass
class DriverReport:
    intervals: list[Interval] = field(default_factory=list)
    histogram: LatencyHistogram = field(default_factory=LatencyHistogram)
    first_failure_s: float | None = None
    first_failure_outcome: str | None = None
    elapsed_s: float = 0.0
    interrupted: bool = False
    sample_errors: list[str] = field(default_factory=list)


class Driver:
    def __init__(
        self,
        scenario: Scenario,
        endpoints: list[Endpoint],
        on_interval: Callable[[Interval], None] | None = None,
        sample: Callable[[], Sample] | None = None,
    ) -> None:
        if not endpoints:
            raise ValueError("the driver needs at least one endpoint")
        self.scenario = scenario
        self.endpoints = endpoints
        self._on_interval = on_interval
        self._sample = sample
        self._timeout = scenario.connect_timeout_s
        self._close = scenario.close
        self._next_ep = 0
        self._t0 = 0
        self._tally = _Tally(0)
        self._report = DriverReport()
        self._load_scope = trio.CancelScope()
        self._min_final_ns = int(scenario.interval_s * 1e9) // 100

    # -- control -----------------------------------------------------------------------

    def stop(self) -> None:
        """End the run now (Ctrl-C, SIGTERM): in-flight attempts are abandoned, not counted."""
        self._report.interrupted = True
        self._load_scope.cancel()

    async def run(self) -> DriverReport:
        sc = self.scenario
        self._t0 = perf_counter_ns()
        self._tally = _Tally(self._t0)
        deadline_ns = self._t0 + int(sc.duration_s * 1e9)
        async with trio.open_nursery() as outer:
            outer.start_soon(self._ticker)
            with self._load_scope:
                async with trio.open_nursery() as load:
                    if sc.rate is not None:
                        cap = sc.in_flight_cap
                        limiter = trio.CapacityLimiter(cap) if cap else None
                        load.start_soon(self._open_loop, load, sc.rate, deadline_ns, limiter)
                    else:
                        for _ in range(sc.in_flight_cap or 1):
                            load.start_soon(self._closed_worker, deadline_ns)
            outer.cancel_scope.cancel()
        tally = self._tally
        # The last tick may have fallen on the end of the load: do not emit an empty sliver.
        if (
            tally.succeeded
            or any(tally.failed)
            or perf_counter_ns() - tally.t_start_ns > self._min_final_ns
        ):
            sample = await self._take_sample()
            self._flush(perf_counter_ns(), sample)
        end = perf_counter_ns()
        self._report.elapsed_s = (end - self._t0) / 1e9
        return self._report

    # -- load shapes -------------------------------------------------------------------

    def _endpoint(self) -> Endpoint:
        eps = self.endpoints
        ep = eps[self._next_ep % len(eps)]
        self._next_ep += 1
        return ep

    async def _closed_worker(self, deadline_ns: int) -> None:
        while perf_counter_ns() < deadline_ns:
            await self._attempt(self._endpoint(), 0)

    async def _open_loop(
        self,
        nursery: trio.Nursery,
        rate: float,
        deadline_ns: int,
        limiter: trio.CapacityLimiter | None,
    ) -> None:
        period_ns = 1e9 / rate
        i = 0
        while True:
            intended = self._t0 + int(i * period_ns)
            if intended >= deadline_ns:
                # The schedule covers the whole duration, even the gap after the last start.
                wait = deadline_ns - perf_counter_ns()
                if wait > 0:
                    await trio.sleep(wait / 1e9)
                return
            wait = intended - perf_counter_ns()
            if wait > 0:
                await trio.sleep(wait / 1e9)
            elif i % _OPEN_LOOP_YIELD_EVERY == 0:
                await trio.lowlevel.checkpoint()
            if limiter is None:
                nursery.start_soon(self._attempt, self._endpoint(), intended)
            else:
                nursery.start_soon(self._limited_attempt, self._endpoint(), intended, limiter)
            i += 1

    async def _limited_attempt(
        self, ep: Endpoint, intended_ns: int, limiter: trio.CapacityLimiter
    ) -> None:
        async with limiter:
            await self._attempt(ep, intended_ns)

    # -- one attempt (the hot path) ----------------------------------------------------

    async def _attempt(self, ep: Endpoint, t_start_ns: int) -> None:
        """Open, connect, end the connection by the close mode; record what happened.

        ``t_start_ns`` 0 means "now" (closed loop); otherwise the intended start.
        """
        try:
            s = socket.socket(ep.family, socket.SOCK_STREAM)
        except OSError as e:
            self._fail(classify(Phase.SOCKET, e.errno or 0), e.errno)
            await trio.lowlevel.checkpoint()
            return
        try:
            s.setblocking(False)
            if not t_start_ns:
                t_start_ns = perf_counter_ns()
            try:
                s.connect(ep.sockaddr)
            except BlockingIOError:
                with trio.move_on_after(self._timeout) as cs:
                    await trio.lowlevel.wait_writable(s)
                if cs.cancelled_caught:
                    self._fail(Outcome.TIMEOUT, None)
                    return
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._fail(classify(Phase.CONNECT, err), err)
                    return
            except OSError as e:
                # EADDRNOTAVAIL and friends fail inside connect() itself: no await happened
                # yet, so yield here or a failing closed loop would starve every other task.
                self._fail(classify(Phase.CONNECT, e.errno or 0), e.errno)
                await trio.lowlevel.checkpoint()
                return
            else:
                await trio.lowlevel.checkpoint()
            latency_ns = perf_counter_ns() - t_start_ns

            close = self._close
            if close is CloseMode.RST:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
            elif close is CloseMode.SERVER:
                # The server sends the first FIN; read to EOF so our close() answers it and
                # TIME_WAIT stays on the server side.
                with trio.move_on_after(self._timeout) as cs:
                    while True:
                        try:
                            if not s.recv(4096):
                                break
                        except BlockingIOError:
                            await trio.lowlevel.wait_readable(s)
                        except OSError as e:
                            self._fail(classify(Phase.CLOSE, e.errno or 0), e.errno)
                            return
                if cs.cancelled_caught:
                    self._fail(Outcome.TIMEOUT, None)
                    return
            tally = self._tally
            tally.succeeded += 1
            tally.hist.record(latency_ns // 1000)
        finally:
            s.close()

    def _fail(self, outcome: Outcome, err: int | None) -> None:
        tally = self._tally
        tally.failed[_FAILURE_INDEX[outcome]] += 1
        if outcome is Outcome.OTHER:
            name = errno_name(err or 0)
            tally.other[name] = tally.other.get(name, 0) + 1
        rep = self._report
        if rep.first_failure_s is None:
            rep.first_failure_s = (perf_counter_ns() - self._t0) / 1e9
            rep.first_failure_outcome = str(outcome)

    # -- intervals ---------------------------------------------------------------------

    async def _ticker(self) -> None:
        step_ns = int(self.scenario.interval_s * 1e9)
        k = 1
        while True:
            wait = self._t0 + k * step_ns - perf_counter_ns()
            if wait > 0:
                await trio.sleep(wait / 1e9)
            sample = await self._take_sample()
            self._flush(perf_counter_ns(), sample)
            k += 1

    async def _take_sample(self) -> Sample | None:
        """Read the port space in a worker thread: /proc and netlink reads block.

        Not abandoned on cancel: a sample takes milliseconds, and an abandoned one would
        still be using the sampler when the next begins. A failed sample leaves that
        interval's readings null (and is counted); it never ends the run.
        """
        if self._sample is None:
            return None
        try:
            return await trio.to_thread.run_sync(self._sample)
        except (OSError, ValueError) as e:
            self._report.sample_errors.append(f"{type(e).__name__}: {e}")
            return None

    def _flush(self, end_ns: int, sample: Sample | None) -> None:
        tally = self._tally
        self._tally = _Tally(end_ns)
        failed = {str(FAILURES[i]): n for i, n in enumerate(tally.failed) if n}
        hist = tally.hist
        interval = Interval(
            t=(tally.t_start_ns - self._t0) / 1e9,
            dt=(end_ns - tally.t_start_ns) / 1e9,
            attempts=tally.succeeded + sum(failed.values()),
            succeeded=tally.succeeded,
            failed=failed,
            other_errnos=tally.other,
            latency_us={"p50": hist.percentile(50.0), "p99": hist.percentile(99.0)},
            time_wait=sample.time_wait if sample else None,
            server_time_wait=sample.server_time_wait if sample else None,
            ports_in_use=sample.ports_in_use if sample else None,
            ports_by_destination=sample.ports_by_destination if sample else None,
            kernel=sample.kernel if sample else None,
            server_kernel=sample.server_kernel if sample else None,
            fds=sample.fds if sample else None,
        )
        self._report.histogram.add(hist)
        self._report.intervals.append(interval)
        if self._on_interval is not None:
            self._on_interval(interval)
