"""Derived readings of a saved run: the port-space ceiling, the latency knee, the SYN
retransmission tail, whether an open loop fell behind, the kernel's counters summed.

Containing arithmetic on RunResult only, no sentences (findings.py words them) and no
charts (report/runcharts.py draws the same readings, so the two cannot disagree). Each
reading is None or 0 when its evidence is missing, never guessed.
"""

from __future__ import annotations

import itertools
import statistics
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from portstorm.core import counters
from portstorm.core.records import Interval
from portstorm.core.result import RunResult
from portstorm.core.setup import RunSetup

EXHAUSTION = ("port_exhausted", "bind_in_use")
SYN_RTO_US = 1_000_000  # the first SYN retransmission waits 1 s (TCP_TIMEOUT_INIT, RFC 6298)
# A connect that needed retransmitted SYNs lands just after 1 s (one), 3 s (two: 1 + 2) or
# 7 s (three); a smear of slow connects between them is something else (a driver behind
# its schedule, a slow port search).
SYN_BANDS_US = ((950_000, 1_300_000), (2_900_000, 3_400_000), (6_900_000, 7_500_000))
BEHIND_SLACK = 1.05  # an open loop taking 5 % (and 0.5 s) longer than planned fell behind
KNEE_FACTOR = 3.0  # p50 this many times the early p50 ...
KNEE_MIN_US = 50  # ... and at least this much higher
KNEE_OCCUPANCY = 0.45  # ... once this share of the port space was in use
KNEE_EARLY = 0.40  # the early p50: from samples whose median connect came under this share
MODEL_AGREES = 0.10  # measured within 10 % (or 1 conn/s) of the model counts as agreeing


@dataclass(frozen=True, slots=True)
class Knee:
    """Where connect() latency jumped as the port space filled (the port search)."""

    t: float  # seconds into the load: when half the space filled, else the sample's end
    before_us: float  # median connect of readings whose median came under 40 % in use
    after_us: float  # typical p50 from the sample where it jumped on
    ports_in_use: int  # half the space (at_half), else the reading at that sample
    ceiling: int
    time_wait: int | None = None  # sockets in TIME_WAIT at that sample
    at_half: bool = False  # t is when the readings crossed half the space (interpolated)


def ceiling(r: RunResult) -> int | None:
    """The port space toward the targets: usable ports x tuples, from the model."""
    return r.model.port_space if r.model is not None else None


def samples(r: RunResult) -> list[Interval]:
    """Every reading of the run in time order: the ramp's (100 ms parts of the first
    interval, core/ramp.py), then the intervals after it. Where there is no ramp (files
    from before it, intervals of 0.2 s or less), the intervals themselves."""
    if not r.ramp:
        return list(r.intervals)
    end = r.ramp[-1].t + r.ramp[-1].dt
    return [*r.ramp, *(i for i in r.intervals if i.t + i.dt > end + 1e-3)]


def knee(r: RunResult) -> Knee | None:
    """The first sample at or above KNEE_OCCUPANCY of the port space whose p50 is
    KNEE_FACTOR times (and KNEE_MIN_US over) the early p50.

    Read from ``samples()``: the ramp exists for this. A closed loop over a veth fills
    half of a 28,232-port range within its first second, so with 1 s intervals the first
    reading was already past 40 % and there was no early p50 to compare with: the knee of
    the main job was found or not by the luck of the interval. The 100 ms readings of the
    first second give the early p50 whatever ``--interval`` is; and on a fast host, where
    the first 100 ms reading too ends past 40 %, its median connect came before that
    (_early_p50s()). The ramp refines what the intervals say and never loses it: where its
    readings find no knee (a busy machine's ramp samples that read no ports, or skewed
    early readings), the intervals alone are read too.
    """
    top = ceiling(r)
    if not top:
        return None
    found = _knee_in(samples(r), top)
    if found is None and r.ramp:
        return _knee_in(r.intervals, top)
    return found


def _knee_in(seen: Sequence[Interval], top: int) -> Knee | None:
    """knee() over these readings, in time order."""
    early = _early_p50s(seen, top)
    if not early:
        return None
    before = _median_connect(early)
    for j, i in enumerate(seen):
        p50 = i.latency_us.get("p50")
        if p50 is None or i.ports_in_use is None or i.ports_in_use < KNEE_OCCUPANCY * top:
            continue
        if p50 >= KNEE_FACTOR * before and p50 - before >= KNEE_MIN_US:
            # typical from here on: the sample that jumped may hold connects from before
            later = [float(q) for k in seen[j:] if (q := k.latency_us.get("p50")) is not None]
            crossed = _half_crossed(seen[: j + 1], top)
            if crossed is None:
                return Knee(i.t + i.dt, before, statistics.median(later), i.ports_in_use,
                            top, i.time_wait)  # fmt: skip
            return Knee(crossed, before, statistics.median(later), top // 2, top,
                        i.time_wait, at_half=True)  # fmt: skip
    return None


def _median_connect(readings: Sequence[tuple[float, int]]) -> float:
    """The median of readings' p50s, each counted as many times as it has successes: a
    reading of 150 connects slowed by a busy machine must not outvote one of 2,600. The
    ramp's 100 ms readings are uneven where a lone driver is late for its fine ticks, and
    the plain median of their p50s let the small ones decide (one way a CI run could find
    no knee with its ramp where its 1 s intervals found one)."""
    ordered = sorted(readings)  # never empty: knee() has returned before
    upto = list(itertools.accumulate(n for _, n in ordered))
    return ordered[bisect_left(upto, upto[-1] / 2)][0]


def _early_p50s(seen: Sequence[Interval], top: int) -> list[tuple[float, int]]:
    """The p50s (with their successes) of the readings whose median connect came while
    under KNEE_EARLY of the space was in use. A reading's occupancy at its median connect
    is taken at its highest the counts allow: from its start (the reading before's ports in
    use; for the first, its own less the connections it made, not below 0) each connection
    takes a port until its end's count is reached. A closed loop on a fast host fills half
    of a 10,000-port range inside the first 100 ms reading (measured: 5,123 ports in use at
    its end, 5,444 connections, p50 9 us, then 550 us): that reading ended past 40 %, but
    its median connect came at ~2,700 ports, before the port search slowed."""
    out: list[tuple[float, int]] = []
    start: int | None = None
    for j, i in enumerate(seen):
        end, p50 = i.ports_in_use, i.latency_us.get("p50")
        if j == 0 and end is not None:
            start = max(0, end - i.succeeded)
        if end is not None and p50 is not None:
            at_median = end if start is None else start + min(i.succeeded / 2, max(0, end - start))
            if at_median < KNEE_EARLY * top:
                out.append((float(p50), i.succeeded))
        start = end
    return out


def _half_crossed(seen: Sequence[Interval], top: int) -> float | None:
    """When the ports in use passed half the space, interpolated between the two readings
    around it (the knee's mechanism: the first parity half of the range full). Without it,
    the knee would be placed at the end of the first slow sample, a whole interval late
    when the crossing fell near the end of the one before (measured: "at 3.1 s" for a
    crossing at 2.1 s). None when no two readings bracket it."""
    half = top / 2
    points = [(i.t + i.dt, i.ports_in_use) for i in seen if i.ports_in_use is not None]
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        if p0 < half <= p1:
            return t0 + (t1 - t0) * (half - p0) / (p1 - p0)
    return None


def rate_after(r: RunResult, t: float) -> tuple[float, float] | None:
    """(successes per second, seconds) over the readings that began at or after ``t``:
    what the run sustained from there on. None when nothing was measured after ``t``."""
    after = [i for i in samples(r) if i.t >= t - 1e-3]
    span = sum(i.dt for i in after)
    if span <= 0:
        return None
    return sum(i.succeeded for i in after) / span, span


def syn_retransmits(r: RunResult) -> tuple[int, int]:
    """(connects in a SYN-retransmission band, just after 1, 3 or 7 s; connects at or over
    the first band's start)."""
    *bands, slow = r.histogram.counts_in([*SYN_BANDS_US, (SYN_BANDS_US[0][0], 2**62)])
    return sum(bands), slow


def fell_behind(r: RunResult) -> bool:
    """An open loop behind its schedule: starts dropped at the time bound, or (files from
    before the bound) a run that took longer than planned, its attempts waiting for it.

    The schedule ends at its last start: what the last attempts may take after it (the
    hold, then the timeouts: ``after_schedule_s``) is not lag, however long."""
    if r.not_started:
        return True
    s, planned = r.setup, r.setup.duration_s
    if not s.open_loop or planned is None:
        return False
    return r.duration_s > float(planned) * BEHIND_SLACK + 0.5 + after_schedule_s(s)


def after_schedule_s(s: RunSetup) -> float:
    """The longest an attempt started at the planned end may take, as the driver bounds
    it (engine/driver.py's drain): --hold, the longer of the connect and close timeouts,
    and the response timeout with an exchange. 0 for what a file did not say."""
    waits = [t for t in (s.connect_timeout_s, s.close_timeout_s) if t is not None]
    tail = float(s.hold_s or 0.0) + (float(max(waits)) if waits else 0.0)
    return tail + float(s.response_timeout_s or 0.0)


def counter_total(intervals: Sequence[Interval], name: str, server: bool = False) -> int | None:
    column = counters.table(intervals, "server_kernel" if server else "kernel").column(name)
    known = [v for v in column if v is not None]  # read in C: a day's rows are 86,400
    return sum(known) if known else None


def rate_before(r: RunResult, t: float) -> float | None:
    """Attempts per second over the whole intervals that ended by ``t``."""
    before = [i for i in r.intervals if i.t + i.dt <= t + 1e-3]
    span = sum(i.dt for i in before)
    if span > 0:
        return sum(i.attempts for i in before) / span
    rate = r.setup.rate
    if rate is not None:
        return float(rate)
    first = r.intervals[0] if r.intervals else None
    return first.attempts / first.dt if first is not None and first.dt > 0 else None


def agrees(measured: float, model: float) -> bool:
    return abs(measured - model) <= max(MODEL_AGREES * model, 1.0)


def listen_overflows(r: RunResult) -> int | None:
    """ListenOverflows where the listener is: the sink's namespace in the pair sandbox,
    else this namespace (a target on this host; a remote one's are not seen)."""
    return counter_total(r.intervals, "TcpExtListenOverflows", server=r.setup.pair)


def listen_drops(r: RunResult) -> int:
    """SYNs dropped by the listener: the sink's namespace in the pair sandbox, else ours."""
    drops = counter_total(r.intervals, "TcpExtListenDrops", server=True)
    return drops or counter_total(r.intervals, "TcpExtListenDrops") or 0


def syn_tail(r: RunResult) -> int:
    """Connects to call SYN retransmissions: those in the bands, when the listener dropped
    SYNs or when they are at least half of all connects over 0.95 s (else the slow ones
    are a smear, e.g. a driver behind its schedule, and naming them SYN losses would lie)."""
    n, slow = syn_retransmits(r)
    return n if n and (listen_drops(r) or n * 2 >= slow) else 0
