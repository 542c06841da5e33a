"""The saved result of a run: frozen values, and the versioned ``result.json`` format.

Containing no networking: only the dataclasses, their validation, and JSON load/save.
Reports and comparisons read these files, never live state. The constructors check the
type and range of every field (core/fields.py), so a file with one wrong value is refused
with that field's name (``intervals[3].latency_us.p50``) and never half read.

Format history (keep old versions loading, as pyperf's _bench.py does):
- ``portstorm.run/1`` (2026-11): first version. ``capacity`` and the per-interval sampler
  fields (``time_wait``, ``server_time_wait``, ``ports_in_use``, ``kernel``) may be null when
  the run did not measure them; they are never filled with invented values. ``tuples`` (per
  source/destination accounting) was added within version 1 and is absent from the first
  files: they load with an empty table. Each interval's own latency histogram (``hdr``,
  HdrHistogram's compressed encoding, for the interval log export) was added within version
  1 too; files without it load, and their exports hold the whole run as one interval.
  ``events.sustained_after_exhaustion`` is counted over whole hold periods when the run
  lasted one past its first failure (earlier files stored the plain rate after it; the
  figure is derived, and readers recompute it from the intervals).
  ``not_started`` (per interval, and summed in ``totals``: an open loop's scheduled starts
  dropped at the time bound, neither attempts nor failures) was added within version 1;
  files without it load with 0 (their runs made every start, late).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portstorm.core import fields, files
from portstorm.core.capacity import TIME_WAIT_S
from portstorm.core.errors import UsageError
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import FAILURES

FORMAT = "portstorm.run/1"
FORMAT_NAME, _, _v = FORMAT.partition("/")
FORMAT_VERSION = int(_v)
_FAILURE_NAMES = frozenset(str(o) for o in FAILURES)
TW_EXPIRY_SLACK_S = 5.0  # TIME_WAIT ends 60 to 65 s after it began (timer wheel, KERNEL.md)


@dataclass(frozen=True, slots=True)
class HostInfo:
    hostname: str
    kernel: str
    cpus: int

    def __post_init__(self) -> None:
        fields.text(self.hostname, "hostname")
        fields.text(self.kernel, "kernel")
        fields.integer(self.cpus, "cpus", 1, fields.MAX_CPUS)

    def to_json(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "kernel": self.kernel, "cpus": self.cpus}

    @classmethod
    def from_json(cls, d: object) -> HostInfo:
        m = fields.mapping(d, "")
        return cls(*(fields.member(m, k) for k in ("hostname", "kernel", "cpus")))


@dataclass(frozen=True, slots=True)
class Interval:
    """What completed during [t, t + dt) seconds after the start of the load."""

    t: float
    dt: float
    attempts: int
    succeeded: int
    failed: Mapping[str, int]  # outcome name -> count, only non-zero entries
    other_errnos: Mapping[str, int]  # errno name -> count, for the ``other`` outcome
    latency_us: Mapping[str, int | None]  # p50, p99 of this interval's successful connects
    time_wait: int | None = None
    server_time_wait: int | None = None
    ports_in_use: int | None = None
    kernel: Mapping[str, int] | None = None  # client-side counter deltas over the interval
    server_kernel: Mapping[str, int] | None = None  # pair sandbox: the sink's namespace
    ports_by_destination: Mapping[str, int] | None = None
    fds: int | None = None  # open file descriptors of the driver at the sample
    hdr: str | None = None  # this interval's latency histogram, encoded; None when empty
    # open loop: scheduled starts dropped at the time bound (not attempts, not failures)
    not_started: int = 0

    def __post_init__(self) -> None:
        fields.number(self.t, "t")
        fields.number(self.dt, "dt")
        fields.integer(self.attempts, "attempts")
        fields.integer(self.succeeded, "succeeded")
        _check_failed(self.failed)
        fields.counts(self.other_errnos, "other_errnos")
        fields.counts(self.latency_us, "latency_us", null_values=True)
        for name in ("time_wait", "server_time_wait", "ports_in_use", "fds"):
            fields.integer(getattr(self, name), name, null=True)
        # deltas of the kernel's counters: a counter that was reset goes down
        fields.counts(self.kernel, "kernel", -fields.MAX_COUNT, null=True)
        fields.counts(self.server_kernel, "server_kernel", -fields.MAX_COUNT, null=True)
        fields.counts(self.ports_by_destination, "ports_by_destination", null=True)
        fields.text(self.hdr, "hdr", null=True)
        fields.integer(self.not_started, "not_started")
        if self.attempts != self.succeeded + sum(self.failed.values()):
            raise ValueError(
                f"interval at t={self.t}: attempts {self.attempts} != succeeded "
                f"{self.succeeded} + failed {sum(self.failed.values())}"
            )
        if self.dt < 0 or self.t < 0:
            raise ValueError(f"interval t={self.t} dt={self.dt}: times must be >= 0")

    @property
    def n_failed(self) -> int:
        return sum(self.failed.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 6),
            "dt": round(self.dt, 6),
            "attempts": self.attempts,
            "succeeded": self.succeeded,
            "failed": dict(self.failed),
            "other_errnos": dict(self.other_errnos),
            "latency_us": dict(self.latency_us),
            "time_wait": self.time_wait,
            "server_time_wait": self.server_time_wait,
            "ports_in_use": self.ports_in_use,
            "kernel": _opt(self.kernel),
            "server_kernel": _opt(self.server_kernel),
            "ports_by_destination": _opt(self.ports_by_destination),
            "fds": self.fds,
            "hdr": self.hdr,
            "not_started": self.not_started,
        }

    @classmethod
    def from_json(cls, d: object) -> Interval:
        """Every wrong shape is a FieldError naming the field (core/fields.py)."""
        m = fields.mapping(d, "")
        hdr = m.get("hdr")
        if hdr is not None:
            decode_histogram(hdr, "hdr")  # decoded by the exports: a bad one fails here
        return cls(
            t=fields.as_float(fields.member(m, "t")),
            dt=fields.as_float(fields.member(m, "dt")),
            attempts=fields.member(m, "attempts"),
            succeeded=fields.member(m, "succeeded"),
            failed=fields.copied(fields.member(m, "failed")),
            other_errnos=fields.copied(m.get("other_errnos", {})),
            latency_us=fields.copied(fields.member(m, "latency_us")),
            time_wait=m.get("time_wait"),
            server_time_wait=m.get("server_time_wait"),
            ports_in_use=m.get("ports_in_use"),
            kernel=fields.copied(m.get("kernel")),
            server_kernel=fields.copied(m.get("server_kernel")),
            ports_by_destination=fields.copied(m.get("ports_by_destination")),
            fds=m.get("fds"),
            hdr=hdr,
            not_started=m.get("not_started", 0),  # absent before it existed: none dropped
        )


def decode_histogram(text: object, field: str) -> LatencyHistogram:
    """An HdrHistogram's compressed encoding, or a FieldError naming ``field``."""
    if isinstance(text, str):
        try:
            return LatencyHistogram.decode(text)
        except Exception:  # hdrh raises its own classes, binascii's, zlib's, struct's, ...
            pass
    raise fields.FieldError(
        field, f"{fields.shown(text)}; allowed: an HdrHistogram in its compressed encoding"
    )


def merge_intervals(parts: Iterable[Interval]) -> Interval:
    """One interval from the parts several driver workers measured over the same stretch:
    counts and histograms added (exact), the span covering every part. Port-space readings
    are left null: they belong to the run, not to a worker, and are added by the caller."""
    parts = list(parts)
    if not parts:
        raise ValueError("no interval parts to merge")
    start = min(p.t for p in parts)
    end = max(p.t + p.dt for p in parts)
    failed: Counter[str] = Counter()
    other: Counter[str] = Counter()
    hist = LatencyHistogram()
    for p in parts:
        failed.update(p.failed)
        other.update(p.other_errnos)
        if p.hdr is not None:
            hist.add(LatencyHistogram.decode(p.hdr))
    succeeded = sum(p.succeeded for p in parts)
    return Interval(
        t=start,
        dt=end - start,
        attempts=sum(p.attempts for p in parts),
        succeeded=succeeded,
        failed={str(o): failed[str(o)] for o in FAILURES if failed[str(o)]},
        other_errnos=dict(other),
        latency_us={"p50": hist.percentile(50.0), "p99": hist.percentile(99.0)},
        hdr=hist.encode() if hist.count else None,
        not_started=sum(p.not_started for p in parts),
    )


@dataclass(frozen=True, slots=True)
class TupleStats:
    """One (source IP, destination IP, destination port) over the whole run."""

    source: str  # the address bound, or the kernel's choice by route
    destination: str  # "IP:PORT"
    succeeded: int
    failed: Mapping[str, int]  # outcome name -> count, only non-zero entries
    first_failure_s: float | None = None
    ports_in_use: int | None = None  # at the last sample
    ports_in_use_peak: int | None = None  # highest at any sample

    def __post_init__(self) -> None:
        fields.text(self.source, "source")
        fields.text(self.destination, "destination")
        fields.integer(self.succeeded, "succeeded")
        _check_failed(self.failed)
        fields.number(self.first_failure_s, "first_failure_s", null=True)
        fields.integer(self.ports_in_use, "ports_in_use", null=True)
        fields.integer(self.ports_in_use_peak, "ports_in_use_peak", null=True)

    @property
    def attempts(self) -> int:
        return self.succeeded + sum(self.failed.values())

    @property
    def failure_ratio(self) -> float:
        return sum(self.failed.values()) / self.attempts if self.attempts else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "destination": self.destination,
            "attempts": self.attempts,
            "succeeded": self.succeeded,
            "failed": dict(self.failed),
            "first_failure_s": _round6(self.first_failure_s),
            "ports_in_use": self.ports_in_use,
            "ports_in_use_peak": self.ports_in_use_peak,
        }

    @classmethod
    def from_json(cls, d: object) -> TupleStats:
        m = fields.mapping(d, "")
        stats = cls(
            source=fields.member(m, "source"),
            destination=fields.member(m, "destination"),
            succeeded=fields.member(m, "succeeded"),
            failed=fields.copied(fields.member(m, "failed")),
            first_failure_s=fields.as_float(m.get("first_failure_s")),
            ports_in_use=m.get("ports_in_use"),
            ports_in_use_peak=m.get("ports_in_use_peak"),
        )
        if "attempts" in m and fields.integer(m["attempts"], "attempts") != stats.attempts:
            raise fields.FieldError(
                "attempts",
                f"{m['attempts']} for {stats.source} -> {stats.destination}; allowed: "
                f"succeeded + failed = {stats.attempts}",
            )
        return stats


def utc_iso(t: dt.datetime) -> str:
    """``2026-11-21T20:37:46Z``: the timestamps in portstorm's files."""
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


def _round6(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def _round3(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _opt(m: Mapping[str, int] | None) -> dict[str, int] | None:
    return dict(m) if m is not None else None


def _check_failed(failed: Mapping[str, int]) -> None:
    unknown = sorted(set(fields.mapping(failed, "failed")) - _FAILURE_NAMES)
    if unknown:
        raise fields.FieldError(
            "failed",
            f"unknown outcome name {fields.shown(unknown[0])}; allowed: "
            + ", ".join(sorted(_FAILURE_NAMES)),
        )
    fields.counts(failed, "failed")


def _instance(v: object, cls: type, field: str) -> None:
    if not isinstance(v, cls):
        raise fields.FieldError(field, f"{fields.shown(v)}; allowed: a {cls.__name__}")


# scenario keys that portstorm reads back, by type (others are kept, never read); each may
# be absent, and but for the two lists null: a run leaves out what does not apply
_SCENARIO_TEXTS = ("sink", "sandbox", "mode", "close", "bind", "port_range")
_SCENARIO_LISTS = ("targets", "sources")
_SCENARIO_MAPS = ("set", "server_set")
_SCENARIO_INTS = ("concurrency", "workers", "sink_workers", "sink_ports", "sink_addresses")
_SCENARIO_NUMBERS = ("duration_s", "rate", "interval_s", "connect_timeout_s")


def _check_scenario(sc: Mapping[str, Any]) -> None:
    fields.mapping(sc, "scenario")
    with fields.within("scenario"):
        for k in _SCENARIO_TEXTS:
            fields.text(sc.get(k), k, null=True)
        for k in _SCENARIO_LISTS:
            fields.text_list(sc.get(k, []), k)
        for k in _SCENARIO_MAPS:
            fields.texts(sc.get(k), k, null=True)
        for k in _SCENARIO_INTS:
            fields.integer(sc.get(k), k, null=True)
        for k in _SCENARIO_NUMBERS:
            fields.number(sc.get(k), k, null=True, high=fields.MAX_COUNT)
        fields.flag(sc.get("change_host_sysctls"), "change_host_sysctls", null=True)


def _check_capacity(cap: Mapping[str, Any] | None) -> None:
    """The port-space model's figures (Capacity.to_json): the ones a report shows are
    required, the two that may be null (no port limit, no exhaustion) too."""
    if cap is None:
        return
    fields.mapping(cap, "capacity")
    with fields.within("capacity"):
        fields.integer(fields.member(cap, "usable_ports"), "usable_ports", 0, 65536)
        fields.integer(fields.member(cap, "tuples"), "tuples")
        fields.number(fields.member(cap, "hold_s"), "hold_s")
        for k in ("sustainable_rate", "predicted_exhaustion_s"):
            fields.number(fields.member(cap, k), k, null=True, high=fields.MAX_COUNT)
        for k in ("reuse_applies", "tw_cap_applies"):
            fields.flag(cap.get(k), k, null=True)
        fields.text_list(fields.member(cap, "why"), "why")


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run, everything it measured. Totals are derived from the intervals."""

    tool_version: str
    host: HostInfo
    started_at: str  # UTC ISO 8601
    duration_s: float  # wall time of the load, measured
    complete: bool
    scenario: Mapping[str, Any]
    tunings: Mapping[str, str]
    intervals: tuple[Interval, ...]
    histogram: LatencyHistogram
    first_failure_s: float | None = None
    first_failure_outcome: str | None = None
    capacity: Mapping[str, Any] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    server_tunings: Mapping[str, str] | None = None  # pair sandbox: the sink's namespace
    tuples: tuple[TupleStats, ...] = ()  # per (source, destination); empty in early files

    def __post_init__(self) -> None:
        # named as in result.json: these checks are what a damaged file is told
        fields.text(self.tool_version, "tool.version")
        _instance(self.host, HostInfo, "host")
        fields.text(self.started_at, "started_at")  # shown as it is; exports parse it or not
        fields.number(self.duration_s, "duration_s")
        fields.flag(self.complete, "complete")
        _check_scenario(self.scenario)
        fields.texts(self.tunings, "tunings")
        fields.texts(self.server_tunings, "server_tunings", null=True)
        for i, iv in enumerate(self.intervals):
            _instance(iv, Interval, f"intervals[{i}]")
        _instance(self.histogram, LatencyHistogram, "latency_us.hdr")
        fields.number(self.first_failure_s, "events.first_failure_s", null=True)
        if self.first_failure_outcome is not None and self.first_failure_outcome not in (
            _FAILURE_NAMES
        ):
            raise fields.FieldError(
                "events.first_failure_outcome",
                f"{fields.shown(self.first_failure_outcome)}; allowed: null or "
                + ", ".join(sorted(_FAILURE_NAMES)),
            )
        _check_capacity(self.capacity)
        fields.text_list(self.notes, "notes")
        for i, tu in enumerate(self.tuples):
            _instance(tu, TupleStats, f"tuples[{i}]")
        if self.histogram.count != self.succeeded:
            raise ValueError(
                f"histogram holds {self.histogram.count} values but {self.succeeded} succeeded"
            )
        if self.tuples:
            by_tuple = (sum(t.attempts for t in self.tuples), sum(t.succeeded for t in self.tuples))
            if by_tuple != (self.attempts, self.succeeded):
                raise ValueError(
                    f"the tuples table counts {by_tuple[0]} attempts and {by_tuple[1]} successes, "
                    f"the intervals {self.attempts} and {self.succeeded}"
                )

    def worst_tuple(self) -> TupleStats | None:
        """The tuple that fared worst: the highest failure ratio, then the earliest first
        failure, then the fewest successes. None without failures or with a single tuple."""
        failing = [t for t in self.tuples if t.failed]
        if len(self.tuples) < 2 or not failing:
            return None
        return max(
            failing,
            key=lambda t: (
                t.failure_ratio,
                -(t.first_failure_s if t.first_failure_s is not None else math.inf),
                -t.succeeded,
            ),
        )

    @property
    def attempts(self) -> int:
        return sum(i.attempts for i in self.intervals)

    @property
    def succeeded(self) -> int:
        return sum(i.succeeded for i in self.intervals)

    @property
    def failed(self) -> dict[str, int]:
        """Outcome -> count over the run, most frequent first."""
        return _summed(i.failed for i in self.intervals)

    @property
    def other_errnos(self) -> dict[str, int]:
        return _summed(i.other_errnos for i in self.intervals)

    @property
    def not_started(self) -> int:
        """Open loop: scheduled starts the driver, behind its schedule, dropped at the end."""
        return sum(i.not_started for i in self.intervals)

    @property
    def rate(self) -> float:
        """Successful connections per second over the whole run."""
        return self.succeeded / self.duration_s if self.duration_s > 0 else 0.0

    def turnover(self) -> tuple[int, float] | None:
        """Successes over at least one whole hold period after the first failure:
        (count, seconds).

        Once the ports have run out, an open loop gets each port back one hold time after
        it was taken, all at once if they were all taken at once: the steady rate is a
        per-period average (ports / hold), not what any one second shows. So count over k
        whole periods from the first interval after the failure, plus a few seconds for
        TIME_WAIT's timer (it fires late, never early: KERNEL.md). None without a failure,
        without the model's hold time, or when the run ended within one period after it.
        """
        hold = (self.capacity or {}).get("hold_s")
        ff = self.first_failure_s
        if ff is None or not hold or hold <= 0:
            return None
        hold = float(hold)
        slack = TW_EXPIRY_SLACK_S if hold >= TIME_WAIT_S else 0.0
        after = [i for i in self.intervals if i.t >= ff - 1e-9]
        if not after:
            return None
        t0, end = after[0].t, after[-1].t + after[-1].dt
        periods = math.floor((end - t0 - slack) / hold + 1e-9)
        if periods < 1:
            return None
        stop = t0 + periods * hold + slack
        counted = [i for i in after if i.t + i.dt <= stop + 1e-6]
        covered = counted[-1].t + counted[-1].dt - t0 if counted else 0.0
        if slack:
            # TIME_WAIT expiry: ports return in bursts, one hold time apart; the counted
            # intervals hold whole bursts (the slack only lets late timers in), so the
            # time base is the periods themselves. Interval ends wobble by milliseconds.
            periods = round((covered - slack) / hold)
            return (sum(i.succeeded for i in counted), periods * hold) if periods >= 1 else None
        # reuse after a delay: ports return continuously; the counted intervals' own time
        # (their ends need not fall on period boundaries: 0.1 s periods in 1 s intervals)
        if covered < hold - 1e-9:
            return None
        return sum(i.succeeded for i in counted), covered

    def sustained_after_exhaustion(self) -> float | None:
        """Successes per second once the ports had run out: over whole hold periods
        (``turnover()``) when the run lasted that long, else over the whole intervals that
        began at or after the first failure (a run shorter than the hold time sees no port
        come back, and says so)."""
        if self.first_failure_s is None:
            return None
        turnover = self.turnover()
        if turnover is not None:
            return turnover[0] / turnover[1]
        after = [i for i in self.intervals if i.t >= self.first_failure_s]
        span = sum(i.dt for i in after)
        return sum(i.succeeded for i in after) / span if span > 0 else None

    def to_json(self) -> dict[str, Any]:
        lat: dict[str, Any] = dict(self.histogram.summary())
        lat["hdr"] = self.histogram.encode()
        return {
            "format": FORMAT,
            "tool": {"name": "portstorm", "version": self.tool_version},
            "host": self.host.to_json(),
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 6),
            "complete": self.complete,
            "scenario": dict(self.scenario),
            "tunings": dict(self.tunings),
            "server_tunings": dict(self.server_tunings)
            if self.server_tunings is not None
            else None,
            "capacity": dict(self.capacity) if self.capacity is not None else None,
            "totals": {
                "attempts": self.attempts,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "other_errnos": self.other_errnos,
                "rate": round(self.rate, 3),
                "not_started": self.not_started,
            },
            "latency_us": lat,
            "events": {
                "first_failure_s": (
                    round(self.first_failure_s, 6) if self.first_failure_s is not None else None
                ),
                "first_failure_outcome": self.first_failure_outcome,
                "sustained_after_exhaustion": _round3(self.sustained_after_exhaustion()),
            },
            "notes": list(self.notes),
            "tuples": [t.to_json() for t in self.tuples],
            "intervals": [i.to_json() for i in self.intervals],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RunResult:
        """Every wrong shape is a FieldError naming the field (``intervals[3].t``). The
        totals, the latency percentiles and ``sustained_after_exhaustion`` are derived, and
        recomputed rather than read."""
        check_format(d.get("format"))
        m = fields.mapping(d, "")
        tool = fields.mapping(fields.member(m, "tool"), "tool")
        with fields.within("host"):
            host = HostInfo.from_json(fields.member(m, "host"))
        events = fields.mapping(m.get("events"), "events", null=True)
        latency = fields.mapping(fields.member(m, "latency_us"), "latency_us")
        intervals = []
        for i, item in enumerate(fields.sequence(fields.member(m, "intervals"), "intervals")):
            with fields.within(f"intervals[{i}]"):
                intervals.append(Interval.from_json(item))
        tuples = []
        rows = m.get("tuples")  # absent (or null) in files older than the table
        for i, item in enumerate(fields.sequence([] if rows is None else rows, "tuples")):
            with fields.within(f"tuples[{i}]"):
                tuples.append(TupleStats.from_json(item))
        with fields.within("tool"):
            version = fields.member(tool, "version")
        with fields.within("latency_us"):
            histogram = decode_histogram(fields.member(latency, "hdr"), "hdr")
        return cls(
            tool_version=version,
            host=host,
            started_at=fields.member(m, "started_at"),
            duration_s=fields.as_float(fields.member(m, "duration_s")),
            complete=fields.member(m, "complete"),
            scenario=fields.copied(fields.member(m, "scenario")),
            tunings=fields.copied(fields.member(m, "tunings")),
            intervals=tuple(intervals),
            histogram=histogram,
            first_failure_s=fields.as_float(events.get("first_failure_s")),
            first_failure_outcome=events.get("first_failure_outcome"),
            capacity=fields.copied(m.get("capacity")),
            notes=fields.copied(m.get("notes", [])),
            server_tunings=fields.copied(m.get("server_tunings")),
            tuples=tuple(tuples),
        )


def _summed(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(total.most_common())


def check_format(fmt: object, expected: str = FORMAT, kind: str = "result") -> None:
    """``fmt`` must be ``expected``'s name at a version this portstorm reads (or older)."""
    exp_name, _, exp_ver = expected.partition("/")
    shown = fields.shown(fmt)  # short whatever it is: a crafted file may nest a list 1,000 deep
    if not isinstance(fmt, str) or "/" not in fmt:
        raise UsageError(f"not a portstorm {kind}: format is {shown}, expected {expected!r}")
    name, _, ver = fmt.partition("/")
    if name != exp_name or not ver.isdigit() or len(ver) > 9:
        raise UsageError(f"not a portstorm {kind}: format is {shown}, expected {expected!r}")
    if int(ver) > int(exp_ver):
        raise UsageError(
            f"{kind} format {shown} is newer than this portstorm reads (up to {expected!r}): "
            "upgrade portstorm"
        )


def read_json_object(path: Path, expected: str) -> dict[str, Any]:
    """A JSON file whose top level is an object; every way it can be wrong is one
    UsageError line naming the file (``expected`` says what it should have been). Only a
    regular file of at most files.READ_CAP bytes is read."""
    text = files.read_text(path, expected)
    if not text.strip():
        raise UsageError(f"{path}: file is empty, expected {expected}")
    doc = parse_json(path, text)
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: not {expected}: top level is not an object")
    return doc


def parse_json(path: Path, text: str, where: str = "") -> Any:
    """json.loads, with every way it fails as one UsageError line: bad syntax, nesting
    deeper than the parser's recursion limit, an integer past Python's 4,300-digit limit."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{path}: not valid JSON{where} (truncated?): {e.msg} at line {e.lineno}"
        ) from None
    except RecursionError:
        raise UsageError(f"{path}: JSON{where} nested too deeply to be a portstorm file") from None
    except ValueError as e:  # int_max_str_digits: "Exceeds the limit (4300 digits) ..."
        raise UsageError(f"{path}: not valid JSON{where}: {str(e).split(';')[0]}") from None


def save_json_atomic(path: Path, doc: Mapping[str, Any]) -> None:
    """Write JSON whole or not at all, never through a planted link (core/files.py)."""
    with files.Folder.open(path.parent, what="folder") as folder:
        folder.write_json(path.name, doc)


def load_result(path: Path) -> RunResult:
    """Read a result.json; every way it can be wrong is one UsageError line."""
    return result_from_doc(path, read_json_object(path, "a portstorm result.json"))


def result_from_doc(path: Path, doc: Mapping[str, Any]) -> RunResult:
    try:
        check_format(doc.get("format"))
    except UsageError as e:
        raise UsageError(f"{path}: {e}") from None
    try:
        return RunResult.from_json(doc)
    except fields.FieldError as e:
        raise UsageError(f"{path}: damaged portstorm result: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{path}: damaged portstorm result ({type(e).__name__}: {e})") from None
