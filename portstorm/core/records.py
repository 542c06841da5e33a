"""What a run measured, record by record: each interval, each source/destination tuple,
and the host it ran on. The parts ``result.json`` (core/result.py) is made of.

Containing frozen values, their validation (core/fields.py) and their JSON form; no files.
Interval and TupleStats hold counts that must add up; a value of the wrong type or range is
a FieldError naming its field, so a damaged file is refused whole, never half read.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter, methodcaller
from typing import Any

from portstorm.core import fields, hdrblock
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import FAILURES
from portstorm.core.routerrecord import RouterReading

FAILURE_NAMES = frozenset(str(o) for o in FAILURES)


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


TOOL = "portstorm"


def file_header(version: str, host: HostInfo, started_at: str) -> dict[str, Any]:
    """The block result.json, intervals.jsonl and sweep.json open with: which portstorm
    wrote the file, on which host, from when (UTC ISO 8601, ``utc_iso``)."""
    return {
        "tool": {"name": TOOL, "version": version},
        "host": host.to_json(),
        "started_at": started_at,
    }


def read_header(m: Mapping[str, Any]) -> tuple[str, HostInfo]:
    """The tool version and host of a file's header (``file_header``), checked."""
    tool = fields.mapping(fields.member(m, "tool"), "tool")
    with fields.within("host"):
        host = HostInfo.from_json(fields.member(m, "host"))
    with fields.within("tool"):
        version = fields.text(fields.member(tool, "version"), "version")
    assert version is not None
    return version, host


def utc_iso(t: dt.datetime) -> str:
    """``2026-11-21T20:37:46Z``: the timestamps in portstorm's files."""
    return t.isoformat(timespec="seconds").replace("+00:00", "Z")


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
    # client sockets in ESTABLISHED toward the targets at the sample (held connections);
    # None in files from before it was sampled
    established: int | None = None
    kernel: Mapping[str, int] | None = None  # client-side counter deltas over the interval
    server_kernel: Mapping[str, int] | None = None  # pair sandbox: the sink's namespace
    ports_by_destination: Mapping[str, int] | None = None
    fds: int | None = None  # open file descriptors of the driver at the sample
    hdr: str | None = None  # this interval's latency histogram, encoded; None when empty
    # open loop: scheduled starts dropped at the time bound (not attempts, not failures)
    not_started: int = 0
    # with a request/response or --http (core/exchange.py): p50, p99 of this interval's
    # successes, timed from the attempt's start to the last response byte, and their
    # histogram (encoded; None when empty); None in runs without an exchange
    transaction_us: Mapping[str, int | None] | None = None
    transaction_hdr: str | None = None
    http_status: Mapping[str, int] | None = None  # --http: status code -> responses
    # --sandbox nat: the router's conntrack at the sample (core/routerrecord.py); None
    # without a router, and in files from before it existed
    router: RouterReading | None = None

    def __post_init__(self) -> None:
        fields.number(self.t, "t")
        fields.number(self.dt, "dt")
        fields.integer(self.attempts, "attempts")
        fields.integer(self.succeeded, "succeeded")
        _check_failed(self.failed)
        _counts(self.other_errnos, "other_errnos")
        _counts(self.latency_us, "latency_us", null_values=True)
        for name in ("time_wait", "server_time_wait", "ports_in_use", "established", "fds"):
            fields.integer(getattr(self, name), name, null=True)
        # deltas of the kernel's counters: a counter that was reset goes down
        _counts(self.kernel, "kernel", -fields.MAX_COUNT, null=True)
        _counts(self.server_kernel, "server_kernel", -fields.MAX_COUNT, null=True)
        _counts(self.ports_by_destination, "ports_by_destination", null=True)
        fields.text(self.hdr, "hdr", null=True)
        fields.integer(self.not_started, "not_started")
        _counts(self.transaction_us, "transaction_us", null=True, null_values=True)
        fields.text(self.transaction_hdr, "transaction_hdr", null=True)
        _counts(self.http_status, "http_status", null=True)
        if self.router is not None:
            fields.instance(self.router, RouterReading, "router")
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
            "established": self.established,
            "kernel": _opt(self.kernel),
            "server_kernel": _opt(self.server_kernel),
            "ports_by_destination": _opt(self.ports_by_destination),
            "fds": self.fds,
            "hdr": self.hdr,
            "not_started": self.not_started,
            "transaction_us": dict(self.transaction_us) if self.transaction_us else None,
            "transaction_hdr": self.transaction_hdr,
            "http_status": _opt(self.http_status),
            "router": self.router.to_json() if self.router is not None else None,
        }

    @classmethod
    def from_json(cls, d: object) -> Interval:
        """Every wrong shape is a FieldError naming the field (core/fields.py)."""
        m = fields.mapping(d, "")
        # checked for shape, not decoded: a day of intervals is 86,400 histograms, and
        # only the exports read them (hdrblock.py decodes them there, naming a bad one)
        hdr = m.get("hdr")
        if hdr is not None:
            check_encoding(hdr, "hdr")
        tx_hdr = m.get("transaction_hdr")
        if tx_hdr is not None:
            check_encoding(tx_hdr, "transaction_hdr")
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
            established=m.get("established"),  # absent before it was sampled: None
            kernel=fields.copied(m.get("kernel")),
            server_kernel=fields.copied(m.get("server_kernel")),
            ports_by_destination=fields.copied(m.get("ports_by_destination")),
            fds=m.get("fds"),
            hdr=hdr,
            not_started=m.get("not_started", 0),  # absent before it existed: none dropped
            # absent before request/response existed: no exchange, none measured
            transaction_us=fields.copied(m.get("transaction_us")),
            transaction_hdr=tx_hdr,
            http_status=fields.copied(m.get("http_status")),
            router=_router(m.get("router")),
        )


def _router(d: object) -> RouterReading | None:
    if d is None:
        return None
    with fields.within("router"):
        return RouterReading.from_json(d)


def check_encoding(text: object, field: str) -> None:
    """An HdrHistogram's compressed encoding by its shape (base64, its cookie and length),
    without decompressing it; or a FieldError naming ``field``."""
    if not (isinstance(text, str) and hdrblock.well_formed(text)):
        raise fields.FieldError(
            field, f"{fields.shown(text)}; allowed: an HdrHistogram in its compressed encoding"
        )


def decode_histogram(text: object, field: str) -> LatencyHistogram:
    """An HdrHistogram's compressed encoding, or a FieldError naming ``field``. Its zlib
    stream is inflated (to at most hdrblock.HISTOGRAM_CAP) before hdrh decodes it: hdrh
    inflates whatever it is given."""
    if isinstance(text, str) and hdrblock.checked_payload(text) is not None:
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
    hist, tx_hist = LatencyHistogram(), LatencyHistogram()
    status: Counter[str] | None = None
    for p in parts:
        failed.update(p.failed)
        other.update(p.other_errnos)
        if p.hdr is not None:
            hist.add(LatencyHistogram.decode(p.hdr))
        if p.transaction_hdr is not None:
            tx_hist.add(LatencyHistogram.decode(p.transaction_hdr))
        if p.http_status is not None:
            status = (status or Counter()) + Counter(p.http_status)
    transacts = any(p.transaction_us is not None for p in parts)
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
        transaction_us=percentiles(tx_hist) if transacts else None,
        transaction_hdr=tx_hist.encode() if tx_hist.count else None,
        http_status=dict(sorted(status.items())) if status is not None else None,
    )


def percentiles(hist: LatencyHistogram) -> dict[str, int | None]:
    """An interval's p50 and p99 (None when empty)."""
    return {"p50": hist.percentile(50.0), "p99": hist.percentile(99.0)}


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


def worst_tuple(tuples: Sequence[TupleStats]) -> TupleStats | None:
    """The tuple that fared worst: the highest failure ratio, then the earliest first
    failure, then the fewest successes. None without failures or with a single tuple."""
    failing = [t for t in tuples if t.failed]
    if len(tuples) < 2 or not failing:
        return None

    def badness(t: TupleStats) -> tuple[float, float, int]:
        first = t.first_failure_s if t.first_failure_s is not None else math.inf
        return t.failure_ratio, -first, -t.succeeded

    return max(failing, key=badness)


def summed_counts(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    maps = [c for c in counts if c]  # name -> count over them all, each summed in C
    total = {n: sum(map(methodcaller("get", n, 0), maps)) for n in {k: 0 for m in maps for k in m}}
    return dict(sorted(total.items(), key=itemgetter(1), reverse=True))  # Counter's order


def _round6(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def _opt(m: Mapping[str, int] | None) -> dict[str, int] | None:
    return dict(m) if m is not None else None


def _counts(
    v: object,
    field: str,
    low: int = 0,
    high: int = fields.MAX_COUNT,
    *,
    null: bool = False,
    null_values: bool = False,
) -> None:
    """fields.counts, with a quick pass first for the common case (a dict of plain ints
    in range): a day of intervals checks 2 million of them."""
    if v is None and null:
        return
    if type(v) is dict:
        values = [n for n in v.values() if n is not None] if null_values else list(v.values())
        in_range = not values or (
            set(map(type, values)) == {int} and low <= min(values) and max(values) <= high
        )
        if in_range and set(map(type, v)) <= {str}:
            return
    fields.counts(v, field, low, high, null=null, null_values=null_values)


def _check_failed(failed: Mapping[str, int]) -> None:
    unknown = sorted(set(fields.mapping(failed, "failed")) - FAILURE_NAMES)
    if unknown:
        raise fields.FieldError(
            "failed",
            f"unknown outcome name {fields.shown(unknown[0])}; allowed: "
            + ", ".join(sorted(FAILURE_NAMES)),
        )
    _counts(failed, "failed")
