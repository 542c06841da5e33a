"""Synthetic runs for report and findings tests: a small port-space simulation, not fixed
numbers, so a test's expectation follows from the parameters it gives.

An open loop of ``rate`` attempts per second against ``ports`` ports, each held ``hold_s``
after its connection; sampled once per second like the real sampler (TIME_WAIT = ports
held, client close). Latency is ``base_us``, or ``knee_us`` once half the ports are held
(the port search), plus ``syn_tail`` connects of 1 s.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from portstorm.core.capacity import Capacity, CapacityInput, model
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.result import HostInfo, Interval, RunResult
from portstorm.core.setup import RunSetup

COUNTERS = (
    "TcpExtTW",
    "TcpExtTWRecycled",
    "TcpExtTCPTimeWaitOverflow",
    "TcpExtListenDrops",
    "TcpOutRsts",
)


def simulate(
    *,
    ports: int = 100,
    rate: int = 50,
    duration: int = 10,
    hold_s: float = 60.0,
    base_us: int = 40,
    knee_us: int | None = None,
    syn_tail: int = 0,
    sandbox: str = "pair",
    close: str = "client",
    tunings: Mapping[str, str] | None = None,
    complete: bool = True,
    capacity: bool = True,
    planned_s: float | None = None,
    slow_us: tuple[int, ...] = (),
) -> RunResult:
    held: list[float] = []  # release times
    intervals: list[Interval] = []
    total = LatencyHistogram()
    first_failure: float | None = None
    keeps = close == "client"
    for sec in range(duration):
        ok = failed = 0
        h = LatencyHistogram()
        for k in range(rate):
            t = sec + k / rate
            while held and held[0] <= t:
                heapq.heappop(held)
            if keeps and len(held) >= ports:
                failed += 1
                if first_failure is None:
                    first_failure = t
                continue
            lat = knee_us if knee_us is not None and len(held) >= ports / 2 else base_us
            h.record(lat)
            ok += 1
            if keeps:
                heapq.heappush(held, t + hold_s)
        if sec == 0:
            for v in slow_us:
                h.record(v)
                ok += 1
            for _ in range(syn_tail):
                h.record(1_000_400)
                ok += 1
        end = sec + 1.0
        in_use = sum(1 for x in held if x > end)
        kernel = dict.fromkeys(COUNTERS, 0)
        kernel["TcpExtTW"] = ok if keeps else 0
        kernel["TcpOutRsts"] = ok if close == "rst" else 0
        server = dict.fromkeys(COUNTERS, 0)
        server["TcpExtListenDrops"] = syn_tail if sec == 0 else 0
        intervals.append(
            Interval(
                t=float(sec),
                dt=1.0,
                attempts=ok + failed,
                succeeded=ok,
                failed={"port_exhausted": failed} if failed else {},
                other_errnos={},
                latency_us={"p50": h.percentile(50.0), "p99": h.percentile(99.0)},
                time_wait=in_use,
                server_time_wait=0 if sandbox == "pair" else None,
                ports_in_use=in_use,
                kernel=kernel,
                server_kernel=server if sandbox == "pair" else None,
                hdr=h.encode() if h.count else None,
            )
        )
        total.add(h)
    tun = {
        "net.ipv4.ip_local_port_range": f"40000 {40000 + ports - 1}",
        "net.ipv4.tcp_tw_reuse": "0",
        "net.ipv4.tcp_fin_timeout": "60",
        "net.ipv4.tcp_timestamps": "1",
        **(tunings or {}),
    }
    cap: Capacity | None = None
    if capacity:
        cap = model(
            CapacityInput(
                port_range=(40000, 40000 + ports - 1),
                close=close,
                tw_reuse=int(tun["net.ipv4.tcp_tw_reuse"]),
                loopback=sandbox == "loopback",
                rate=float(rate),
            )
        )
    return RunResult(
        tool_version="0.1.0",
        host=HostInfo("testbox", "6.18.0", 2),
        started_at="2026-11-21T19:00:00Z",
        duration_s=float(duration),
        complete=complete,
        setup=RunSetup(
            targets=("198.18.0.2:9000",),
            sink="builtin",
            sandbox=sandbox,
            rate=float(rate),
            duration_s=planned_s or float(duration),
            close=close,
            bind="connect",
            client_set={},
        ),
        tunings=tun,
        intervals=tuple(intervals),
        histogram=total,
        first_failure_s=first_failure,
        first_failure_outcome="port_exhausted" if first_failure is not None else None,
        model=cap,
        server_tunings=dict(tun) if sandbox == "pair" else None,
    )
