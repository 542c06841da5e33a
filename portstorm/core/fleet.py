"""Many hosts' runs merged exactly: ``FleetMember`` rows and the ``Fleet`` they make.

Containing the pure merge (``merge``): per-host rows kept, counts added, histograms decoded
and added (HdrHistogram's add is exact: the merged p99 is the p99 of every connection of
every host, never an average of percentiles, which cannot be merged), intervals aligned
on wall-clock time and summed, and the hosts that differ from the rest named (``OUTLIER_RULE``).
No files: fleetfile.py reads the members through core/result.py's loader and writes
fleet.json; the report draws it (report/fleetreport.py).

The fleet as one run: ``Fleet.merged`` is a RunResult whose intervals and histogram are
the sums, so everything that reads a run (compare, the charts, the thresholds) reads a
fleet too. Its host is ``fleet of N``, its tunings those all hosts share (a sysctl that
differs reads ``mixed: ...``), its model none (each host has its own ceiling).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from portstorm.core.errors import UsageError
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.records import HostInfo, Interval, merge_intervals, utc_iso
from portstorm.core.result import RunResult

# A result differs from the fleet when it is both this far from the median, relative to
# the median, and more than 3 median absolute deviations from it (robust to one odd host
# among three; the relative floor keeps run-to-run noise from being named).
RELATIVE = {"rate": 0.10, "after_exhaustion": 0.10, "p99_us": 0.50}
MADS = 3.0
OUTLIER_RULE = (
    "a host is named when a sysctl of its tunings differs from the value most hosts have; "
    "when its first failure's outcome (or none) differs from most hosts'; or when its rate, "
    "rate after exhaustion (each beyond 10 %) or p99 connect latency (beyond 50 %) is that "
    "far from the fleet's median and more than 3 median absolute deviations from it "
    "(results need at least 3 hosts)"
)


@dataclass(frozen=True, slots=True)
class FleetMember:
    """One host's run: its name (the folder it was fetched to) and its result."""

    name: str
    result: RunResult
    path: str = ""  # the member's result.json, as given

    @property
    def start_s(self) -> float:
        """Where its intervals are counted from, Unix seconds: the agreed --start-at
        (the ticks are laid from it, fleetstart.py), else its started_at."""
        s = self.result.setup
        return _epoch(s.start_at if s.start_at else self.result.started_at, self.name)

    @property
    def after_exhaustion(self) -> float | None:
        return self.result.sustained_after_exhaustion()

    @property
    def p99_us(self) -> int | None:
        return self.result.histogram.percentile(99.0)

    @property
    def first_failure(self) -> str:
        """Its first failure's outcome, or ``never``."""
        return self.result.first_failure_outcome or "never"


@dataclass(frozen=True, slots=True)
class Outlier:
    name: str
    why: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Missing:
    """A host that was asked for and gave no result (unreachable, failed): named."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Fleet:
    members: tuple[FleetMember, ...]
    merged: RunResult
    aligned_on: str  # "start_at" (every member had one) or "started_at"
    outliers: tuple[Outlier, ...] = ()
    missing: tuple[Missing, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def start_spread_s(self) -> float | None:
        """Between the earliest and the latest measured load start (--start-at runs)."""
        began = [m.result.setup.load_started_at for m in self.members]
        if not all(began):
            return None
        times = [_epoch(str(b), m.name) for b, m in zip(began, self.members, strict=True)]
        return max(times) - min(times)

    def by_rate_after_exhaustion(self) -> list[FleetMember]:
        """The per-host table's order: the hosts whose ports never ran out first (by rate),
        then the others by rate after exhaustion, highest first."""

        def key(m: FleetMember) -> tuple[int, float]:
            a = m.after_exhaustion
            return (0, -m.result.rate) if a is None else (1, -a)

        return sorted(self.members, key=key)


def _epoch(text: str, name: str) -> float:
    try:
        when = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise UsageError(f"fleet member {name}: {text!r} is not a UTC ISO 8601 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def merge(members: Sequence[FleetMember], missing: Sequence[Missing] = ()) -> Fleet:
    """The fleet of ``members`` (at least one); UsageError when they cannot be merged
    (different --interval: their intervals would not line up)."""
    if not members:
        raise UsageError("merge: no run to merge (each DIR must hold a result.json)")
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UsageError(f"merge: two members are named {dup!r}: give each host its own folder")
    steps = {m.result.setup.interval_s for m in members}
    if len(steps) != 1 or None in steps:
        shown = ", ".join(f"{m.name} {m.result.setup.interval_s}" for m in members)
        raise UsageError(f"merge: the runs' --interval differ ({shown}); merge runs of one")
    step = float(next(iter(steps)) or 1.0)
    aligned_on = "start_at" if all(m.result.setup.start_at for m in members) else "started_at"
    base = min(m.start_s for m in members)
    intervals = _aligned(members, base, step)
    hist = LatencyHistogram()
    for m in members:
        hist.add(m.result.histogram)
    tx: LatencyHistogram | None = None
    if all(m.result.transactions is not None for m in members):
        tx = LatencyHistogram()
        for m in members:
            assert m.result.transactions is not None
            tx.add(m.result.transactions)
    first = [
        (m.start_s - base + m.result.first_failure_s, m.result.first_failure_outcome)
        for m in members
        if m.result.first_failure_s is not None
    ]
    ff = min(first, key=lambda p: p[0]) if first else (None, None)
    span = max(m.start_s - base + m.result.duration_s for m in members)
    notes = [f"merged from {len(members)} host(s): {', '.join(names)}"]
    if aligned_on == "started_at":
        notes.append(
            "aligned on each run's started_at, which precedes its load by the time the "
            "sandbox took to prepare (up to a second or so): run with --start-at to align "
            "the hosts' seconds exactly"
        )
    notes += [f"missing: {x.name} ({x.reason})" for x in missing]
    first_setup = members[0].result.setup
    rates = [m.result.setup.rate for m in members]
    setup = dataclasses.replace(
        first_setup,
        rate=sum(r for r in rates if r is not None) if all(r is not None for r in rates) else None,
        workers=sum(m.result.setup.workers or 0 for m in members) or None,
        targets=tuple(dict.fromkeys(t for m in members for t in m.result.setup.targets)),
        load_started_at=None,
        clock_offset_s=None,
        clock_source=None,
    )
    merged = RunResult(
        tool_version=members[0].result.tool_version,
        host=_fleet_host(members),
        started_at=utc_iso(dt.datetime.fromtimestamp(base, dt.UTC)),
        duration_s=span,
        complete=all(m.result.complete for m in members) and not missing,
        setup=setup,
        tunings=_shared(m.result.tunings for m in members),
        intervals=tuple(intervals),
        histogram=hist,
        first_failure_s=ff[0],
        first_failure_outcome=ff[1],
        notes=tuple(notes),
        transactions=tx,
    )
    return Fleet(tuple(members), merged, aligned_on, tuple(outliers(members)), tuple(missing),
                 tuple(notes))  # fmt: skip


def _fleet_host(members: Sequence[FleetMember]) -> HostInfo:
    kernels = sorted({m.result.host.kernel for m in members})
    kernel = kernels[0] if len(kernels) == 1 else "mixed: " + ", ".join(kernels)
    cpus = sum(m.result.host.cpus for m in members)
    return HostInfo(hostname=f"fleet of {len(members)}", kernel=kernel, cpus=cpus)


def _shared(tunings: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """The sysctls every host had at one value; those that differ as ``mixed: a | b``."""
    maps = list(tunings)
    out: dict[str, str] = {}
    for name in sorted({k for t in maps for k in t}):
        values = sorted({t.get(name, "(absent)") for t in maps})
        out[name] = values[0] if len(values) == 1 else "mixed: " + " | ".join(values)
    return out


def _aligned(members: Sequence[FleetMember], base: float, step: float) -> list[Interval]:
    """Every host's intervals on one wall-clock grid of ``step`` seconds from ``base``,
    those on the same grid point added (merge_intervals: counts and histograms exact);
    the port-space readings summed where every part has one."""
    slots: dict[int, list[Interval]] = {}
    for m in members:
        offset = m.start_s - base
        for iv in m.result.intervals:
            moved = dataclasses.replace(iv, t=offset + iv.t)
            slots.setdefault(round(moved.t / step), []).append(moved)
    out = []
    for k in sorted(slots):
        parts = slots[k]
        merged = merge_intervals(parts)
        readings: dict[str, int | None] = {
            name: sum(getattr(p, name) for p in parts)
            if all(getattr(p, name) is not None for p in parts)
            else None
            for name in ("time_wait", "server_time_wait", "ports_in_use", "established")
        }
        kernel: Counter[str] | None = None
        if all(p.kernel is not None for p in parts):
            kernel = Counter()
            for p in parts:
                assert p.kernel is not None
                kernel.update(p.kernel)
        out.append(
            dataclasses.replace(
                merged,
                time_wait=readings["time_wait"],
                server_time_wait=readings["server_time_wait"],
                ports_in_use=readings["ports_in_use"],
                established=readings["established"],
                kernel=dict(kernel) if kernel is not None else None,
            )
        )
    return out


def outliers(members: Sequence[FleetMember]) -> list[Outlier]:
    """The hosts that differ from the rest, by ``OUTLIER_RULE``."""
    why: dict[str, list[str]] = {m.name: [] for m in members}
    if len(members) >= 2:
        for name in sorted({k for m in members for k in m.result.tunings}):
            values = [m.result.tunings.get(name) for m in members]
            common, n = Counter(values).most_common(1)[0]
            if n * 2 > len(members):  # a value most hosts share
                for m, v in zip(members, values, strict=True):
                    if v != common:
                        why[m.name].append(f"{name} = {v} (most hosts: {common})")
        outcomes = [m.first_failure for m in members]
        common_ff, n = Counter(outcomes).most_common(1)[0]
        if n * 2 > len(members):
            for m in members:
                if m.first_failure != common_ff:
                    why[m.name].append(f"first failure {m.first_failure} (most hosts: {common_ff})")
    if len(members) >= 3:
        for metric, rel in RELATIVE.items():
            found = [_metric(m, metric) for m in members]
            known = [v for v in found if v is not None]
            if len(known) < 3:
                continue
            med = statistics.median(known)
            mad = statistics.median(abs(v - med) for v in known)
            for m, x in zip(members, found, strict=True):
                if x is None:
                    continue
                off = abs(x - med)
                if off > rel * abs(med) and off > MADS * mad:
                    why[m.name].append(f"{metric} {x:.6g} (fleet median {med:.6g})")
    return [Outlier(m.name, tuple(why[m.name])) for m in members if why[m.name]]


def _metric(m: FleetMember, metric: str) -> float | None:
    if metric == "rate":
        return m.result.rate
    if metric == "after_exhaustion":
        return m.after_exhaustion
    p99 = m.p99_us
    return None if p99 is None else float(p99)
