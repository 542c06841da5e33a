"""A literal run in the shape a user measured with the README's main job (closed loop,
pair sandbox, default port range, 1 s intervals), with and without its ramp (core/ramp.py):
~2,600 connects per 100 ms at p50 30 us until half the range (the first parity half,
~14,116 ports) is in TIME_WAIT, then ~200/s at p50 8 ms; the first 1 s interval ends at
14,157 of 28,232 ports in use, past the 40 % the knee's early readings must be under.
"""

from __future__ import annotations

from portstorm.core.capacity import CapacityInput, model
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.ramp import fold
from portstorm.core.result import HostInfo, Interval, RunResult
from portstorm.core.setup import RunSetup

RANGE = (32768, 60999)  # the kernel's default ip_local_port_range: 28,232 ports


def part(
    t: float,
    dt: float,
    lat_us: list[int],
    ports: int | None,
    *,
    failed: dict[str, int] | None = None,
    kernel: dict[str, int] | None = None,
    fds: int | None = None,
    not_started: int = 0,
) -> Interval:
    """One reading: these connect latencies, ``ports`` in use (and in TIME_WAIT) at its end."""
    h = LatencyHistogram()
    h.record_many(lat_us)
    failed = failed or {}
    return Interval(
        t=t,
        dt=dt,
        attempts=len(lat_us) + sum(failed.values()),
        succeeded=len(lat_us),
        failed=failed,
        other_errnos={"EPERM": failed["other"]} if "other" in failed else {},
        latency_us={"p50": h.percentile(50.0), "p99": h.percentile(99.0)},
        time_wait=ports,
        ports_in_use=ports,
        kernel=kernel,
        fds=fds,
        hdr=h.encode() if h.count else None,
        not_started=not_started,
    )


def users_run(with_ramp: bool) -> RunResult:
    """10 s closed loop: ~2,600 connects per 100 ms at p50 30 us until half the range
    (the first parity half, ~14,116 ports) is in TIME_WAIT, then ~200/s at p50 8 ms. The
    first 1 s interval ends at 14,157 of 28,232 ports in use."""
    ports = 0
    ramp: list[Interval] = []
    for k, (n, lat) in enumerate([(2600, 30)] * 5 + [(1077, 30)] + [(20, 8000)] * 4):
        ports += n
        ramp.append(part(k / 10, 0.1, [lat] * n, ports))
    assert ports == 14_157
    intervals = [fold(ramp)]
    for s in range(1, 10):
        ports += 200
        intervals.append(part(float(s), 1.0, [8000] * 200, ports))
    total = LatencyHistogram()
    for i in intervals:
        assert i.hdr is not None
        total.add(LatencyHistogram.decode(i.hdr))
    return RunResult(
        tool_version="0.1.0",
        host=HostInfo("testbox", "6.18.0", 2),
        started_at="2026-12-01T11:00:00Z",
        duration_s=10.0,
        complete=True,
        setup=RunSetup(
            targets=("198.18.0.2:9000",),
            sink="builtin",
            sandbox="pair",
            concurrency=1,
            duration_s=10.0,
            close="client",
            bind="connect",
            interval_s=1.0,
        ),
        tunings={"net.ipv4.ip_local_port_range": f"{RANGE[0]} {RANGE[1]}"},
        intervals=tuple(intervals),
        histogram=total,
        model=model(CapacityInput(port_range=RANGE, close="client", tw_reuse=2)),
        ramp=tuple(ramp) if with_ramp else (),
    )
