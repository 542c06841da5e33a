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

Attempts go round-robin over the run's *flows*: one per (source, destination) tuple
(core/addressing.py). Each flow's counts are kept apart, so result.json can say which tuple
ran out first. How a socket gets its port is the bind mode (KERNEL.md, "Ports"):
- connect: plain connect(); with --source, the address is set by bind() with
  IP_BIND_ADDRESS_NO_PORT, the only way to choose a source address without bind() taking a
  port, so the port is still picked per 4-tuple by connect();
- bind: bind((source or any, 0)) then connect(): a port per source address;
- no-port: IP_BIND_ADDRESS_NO_PORT, bind((source or any, 0)), connect();
- range: IP_LOCAL_PORT_RANGE on each socket, then as connect.

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

from portstorm.core.addressing import TupleSpec
from portstorm.core.errors import EnvironmentProblem
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import FAILURES, Outcome, Phase, classify, errno_name
from portstorm.core.result import Interval
from portstorm.core.scenario import BindMode, CloseMode, Scenario
from portstorm.engine.sampler import Sample
from portstorm.engine.timer import PreciseTimer

_LINGER_ABORT = struct.pack("ii", 1, 0)  # SO_LINGER {on, 0}: close() sends RST (tcp_disconnect)
_FAILURE_INDEX = {o: i for i, o in enumerate(FAILURES)}
_N_FAILURES = len(FAILURES)
_OPEN_LOOP_YIELD_EVERY = 64  # a late open-loop scheduler still lets attempts run

# include/uapi/linux/in.h; Python's socket module does not name them on every version
IP_BIND_ADDRESS_NO_PORT = 24  # Linux 4.2: bind() defers the port choice to connect()
IP_LOCAL_PORT_RANGE = 51  # Linux 6.3: u32 (high << 16) | low, per socket


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A resolved destination: what connect() takes, and how to name it."""

    family: int
    sockaddr: tuple[str, int] | tuple[str, int, int, int]
    label: str


@dataclass(frozen=True, slots=True)
class Flow:
    """One tuple as the hot loop needs it: what to bind (if anything), where to connect."""

    family: int
    bind_addr: tuple[str, int] | None  # (source or wildcard, 0)
    sockaddr: tuple[str, int] | tuple[str, int, int, int]
    source: str  # the source address, or the kernel's choice by route
    destination: str


def make_flows(
    specs: list[TupleSpec],
    endpoints: dict[tuple[str, int], Endpoint],
    mode: BindMode,
    route_source: Callable[[Endpoint], str],
) -> list[Flow]:
    """TupleSpecs (by address) -> Flows for ``mode``; see the module header for what each binds."""
    flows = []
    for spec in specs:
        ep = endpoints[(spec.dst_host, spec.dst_port)]
        wildcard = "::" if ep.family == socket.AF_INET6 else "0.0.0.0"
        bind_addr: tuple[str, int] | None = None
        if spec.source is not None:
            bind_addr = (spec.source, 0)
        elif mode in (BindMode.BIND, BindMode.NO_PORT):
            bind_addr = (wildcard, 0)
        source = spec.source if spec.source is not None else route_source(ep)
        flows.append(Flow(ep.family, bind_addr, ep.sockaddr, source, ep.label))
    return flows


def socket_options(scenario: Scenario) -> tuple[bool, bytes | None]:
    """(set IP_BIND_ADDRESS_NO_PORT?, IP_LOCAL_PORT_RANGE value or None) for every socket.

    The range is a u32 (high << 16 | low), passed as bytes: above 2**31 it is no C int.
    """
    mode = scenario.bind
    no_port = mode is BindMode.NO_PORT or (mode is not BindMode.BIND and bool(scenario.sources))
    port_range = None
    if mode is BindMode.RANGE:
        assert scenario.socket_port_range is not None
        low, high = scenario.socket_port_range
        port_range = struct.pack("=I", (high << 16) | low)
    return no_port, port_range


def check_socket_options(no_port: bool, port_range: bytes | None, kernel: str) -> None:
    """Refuse before the run when this kernel lacks an option the bind mode needs."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        for wanted, opt, value, what in (
            (no_port, IP_BIND_ADDRESS_NO_PORT, 1, "IP_BIND_ADDRESS_NO_PORT (Linux 4.2+)"),
            (port_range is not None, IP_LOCAL_PORT_RANGE, port_range or b"",
             "IP_LOCAL_PORT_RANGE (Linux 6.3+)"),
        ):  # fmt: skip
            if not wanted:
                continue
            try:
                probe.setsockopt(socket.SOL_IP, opt, value)
            except OSError as e:
                raise EnvironmentProblem(
                    f"this bind mode needs {what}, which kernel {kernel} refuses "
                    f"({e.strerror}): use --bind connect or bind"
                ) from None
    finally:
        probe.close()


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
    # per flow, in the order of Driver.flows
    flow_succeeded: list[int] = field(default_factory=list)
    flow_failed: list[dict[str, int]] = field(default_factory=list)
    flow_first_failure_s: list[float | None] = field(default_factory=list)
    flow_ports_last: list[int | None] = field(default_factory=list)
    flow_ports_peak: list[int | None] = field(default_factory=list)


class Driver:
    def __init__(
        self,
        scenario: Scenario,
        flows: list[Flow],
        on_interval: Callable[[Interval], None] | None = None,
        sample: Callable[[], Sample] | None = None,
    ) -> None:
        if not flows:
            raise ValueError("the driver needs at least one flow")
        self.scenario = scenario
        self.flows = flows
        self._on_interval = on_interval
        self._sample = sample
        self._timeout = scenario.connect_timeout_s
        self._close = scenario.close
        self._no_port, self._port_range = socket_options(scenario)
        self._next_flow = 0
        n = len(flows)
        self._flow_ok = [0] * n
        self._flow_failed = [0] * (n * _N_FAILURES)  # [flow * _N_FAILURES + outcome index]
        self._flow_first: list[float | None] = [None] * n
        self._flow_ports_last: list[int | None] = [None] * n
        self._flow_ports_peak: list[int | None] = [None] * n
        self._t0 = 0
        self._tally = _Tally(0)
        self._report = DriverReport()
        self._load_scope = trio.CancelScope()
        self._min_final_ns = int(scenario.interval_s * 1e9) // 100

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
        rep = self._report
        rep.elapsed_s = (end - self._t0) / 1e9
        rep.flow_succeeded = list(self._flow_ok)
        rep.flow_failed = [
            {
                str(FAILURES[j]): n
                for j in range(_N_FAILURES)
                if (n := self._flow_failed[i * _N_FAILURES + j])
            }
            for i in range(len(self.flows))
        ]
        rep.flow_first_failure_s = list(self._flow_first)
        rep.flow_ports_last = list(self._flow_ports_last)
        rep.flow_ports_peak = list(self._flow_ports_peak)
        return rep

    # -- load shapes -------------------------------------------------------------------

    def _flow(self) -> int:
        i = self._next_flow
        self._next_flow = i + 1 if i + 1 < len(self.flows) else 0
        return i

    async def _closed_worker(self, deadline_ns: int) -> None:
        while perf_counter_ns() < deadline_ns:
            await self._attempt(self._flow(), 0)

    async def _open_loop(
        self,
        nursery: trio.Nursery,
        rate: float,
        deadline_ns: int,
        limiter: trio.CapacityLimiter | None,
    ) -> None:
        period_ns = 1e9 / rate
        i = 0
        async with PreciseTimer() as timer:
            while True:
                intended = self._t0 + int(i * period_ns)
                if intended >= deadline_ns:
                    # The schedule covers the whole duration, even the gap after the last start.
                    now = perf_counter_ns()
                    if deadline_ns > now:
                        await timer.sleep_until(deadline_ns, now)
                    return
                now = perf_counter_ns()
                if intended > now:
                    await timer.sleep_until(intended, now)
                elif i % _OPEN_LOOP_YIELD_EVERY == 0:
                    await trio.lowlevel.checkpoint()
                if limiter is None:
                    nursery.start_soon(self._attempt, self._flow(), intended)
                else:
                    nursery.start_soon(self._limited_attempt, self._flow(), intended, limiter)
                i += 1

    async def _limited_attempt(
        self, flow: int, intended_ns: int, limiter: trio.CapacityLimiter
    ) -> None:
        async with limiter:
            await self._attempt(flow, intended_ns)

    # -- one attempt (the hot path) ----------------------------------------------------

    async def _attempt(self, flow_i: int, t_start_ns: int) -> None:
        """Open, bind if the mode says so, connect, end the connection by the close mode;
        record what happened.

        ``t_start_ns`` 0 means "now" (closed loop); otherwise the intended start. The
        latency includes bind(): in bind mode the port search happens there.
        """
        flow = self.flows[flow_i]
        try:
            s = socket.socket(flow.family, socket.SOCK_STREAM)
        except OSError as e:
            self._fail(flow_i, classify(Phase.SOCKET, e.errno or 0), e.errno)
            await trio.lowlevel.checkpoint()
            return
        try:
            s.setblocking(False)
            if not t_start_ns:
                t_start_ns = perf_counter_ns()
            if flow.bind_addr is not None:
                try:
                    if self._no_port:
                        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                    if self._port_range is not None:
                        s.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, self._port_range)
                    s.bind(flow.bind_addr)
                except OSError as e:
                    # EADDRINUSE: inet_csk_get_port() found no free port for this address
                    self._fail(flow_i, classify(Phase.BIND, e.errno or 0), e.errno)
                    await trio.lowlevel.checkpoint()
                    return
            elif self._port_range is not None:
                s.setsockopt(socket.SOL_IP, IP_LOCAL_PORT_RANGE, self._port_range)
            try:
                s.connect(flow.sockaddr)
            except BlockingIOError:
                with trio.move_on_after(self._timeout) as cs:
                    await trio.lowlevel.wait_writable(s)
                if cs.cancelled_caught:
                    self._fail(flow_i, Outcome.TIMEOUT, None)
                    return
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self._fail(flow_i, classify(Phase.CONNECT, err), err)
                    return
            except OSError as e:
                # EADDRNOTAVAIL and friends fail inside connect() itself: no await happened
                # yet, so yield here or a failing closed loop would starve every other task.
                self._fail(flow_i, classify(Phase.CONNECT, e.errno or 0), e.errno)
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
                            self._fail(flow_i, classify(Phase.CLOSE, e.errno or 0), e.errno)
                            return
                if cs.cancelled_caught:
                    self._fail(flow_i, Outcome.TIMEOUT, None)
                    return
            tally = self._tally
            tally.succeeded += 1
            tally.hist.record(latency_ns // 1000)
            self._flow_ok[flow_i] += 1
        finally:
            s.close()

    def _fail(self, flow_i: int, outcome: Outcome, err: int | None) -> None:
        tally = self._tally
        k = _FAILURE_INDEX[outcome]
        tally.failed[k] += 1
        self._flow_failed[flow_i * _N_FAILURES + k] += 1
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
            hdr=hist.encode() if hist.count else None,
        )
        if sample is not None and sample.ports_by_flow is not None:
            last, peak = self._flow_ports_last, self._flow_ports_peak
            for i, n in enumerate(sample.ports_by_flow):
                last[i] = n
                p = peak[i]
                peak[i] = n if p is None or n > p else p
        self._report.histogram.add(hist)
        self._report.intervals.append(interval)
        if self._on_interval is not None:
            self._on_interval(interval)
