"""The saved result of a run: frozen values, and the versioned ``result.json`` format.

Containing no networking: only the dataclasses, their validation, and JSON load/save.
Reports and comparisons read these files, never live state.

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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def to_json(self) -> dict[str, Any]:
        return {"hostname": self.hostname, "kernel": self.kernel, "cpus": self.cpus}


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

    def __post_init__(self) -> None:
        _check_failed(self.failed)
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
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Interval:
        return cls(
            t=float(d["t"]),
            dt=float(d["dt"]),
            attempts=int(d["attempts"]),
            succeeded=int(d["succeeded"]),
            failed={str(k): int(v) for k, v in d["failed"].items()},
            other_errnos={str(k): int(v) for k, v in d.get("other_errnos", {}).items()},
            latency_us=dict(d["latency_us"]),
            time_wait=d.get("time_wait"),
            server_time_wait=d.get("server_time_wait"),
            ports_in_use=d.get("ports_in_use"),
            kernel=d.get("kernel"),
            server_kernel=d.get("server_kernel"),
            ports_by_destination=d.get("ports_by_destination"),
            fds=d.get("fds"),
            hdr=d.get("hdr"),
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
        _check_failed(self.failed)
        if self.succeeded < 0:
            raise ValueError(f"tuple {self.source} -> {self.destination}: negative successes")

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
    def from_json(cls, d: Mapping[str, Any]) -> TupleStats:
        stats = cls(
            source=str(d["source"]),
            destination=str(d["destination"]),
            succeeded=int(d["succeeded"]),
            failed={str(k): int(v) for k, v in d["failed"].items()},
            first_failure_s=d.get("first_failure_s"),
            ports_in_use=d.get("ports_in_use"),
            ports_in_use_peak=d.get("ports_in_use_peak"),
        )
        if "attempts" in d and int(d["attempts"]) != stats.attempts:
            raise ValueError(
                f"tuple {stats.source} -> {stats.destination}: attempts {d['attempts']} != "
                f"succeeded + failed {stats.attempts}"
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
    unknown = set(failed) - _FAILURE_NAMES
    if unknown:
        raise ValueError(
            f"unknown outcome names {sorted(unknown)}: allowed {sorted(_FAILURE_NAMES)}"
        )
    if any(v < 0 for v in failed.values()):
        raise ValueError(f"negative failure count in {dict(failed)}")


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
        if not (self.duration_s >= 0 and math.isfinite(self.duration_s)):
            raise ValueError(f"duration_s {self.duration_s} must be a finite number >= 0")
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
        check_format(d.get("format"))
        host = d["host"]
        events = d.get("events") or {}
        return cls(
            tool_version=str(d["tool"]["version"]),
            host=HostInfo(str(host["hostname"]), str(host["kernel"]), int(host["cpus"])),
            started_at=str(d["started_at"]),
            duration_s=float(d["duration_s"]),
            complete=bool(d["complete"]),
            scenario=dict(d["scenario"]),
            tunings={str(k): str(v) for k, v in d["tunings"].items()},
            intervals=tuple(Interval.from_json(i) for i in d["intervals"]),
            histogram=LatencyHistogram.decode(d["latency_us"]["hdr"]),
            first_failure_s=events.get("first_failure_s"),
            first_failure_outcome=events.get("first_failure_outcome"),
            capacity=d.get("capacity"),
            notes=tuple(d.get("notes", ())),
            server_tunings=d.get("server_tunings"),
            tuples=tuple(TupleStats.from_json(t) for t in d.get("tuples") or ()),
        )


def _summed(counts: Iterable[Mapping[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counts:
        total.update(c)
    return dict(total.most_common())


def check_format(fmt: object, expected: str = FORMAT, kind: str = "result") -> None:
    """``fmt`` must be ``expected``'s name at a version this portstorm reads (or older)."""
    exp_name, _, exp_ver = expected.partition("/")
    if not isinstance(fmt, str) or "/" not in fmt:
        raise UsageError(f"not a portstorm {kind}: format is {fmt!r}, expected {expected!r}")
    name, _, ver = fmt.partition("/")
    if name != exp_name or not ver.isdigit():
        raise UsageError(f"not a portstorm {kind}: format is {fmt!r}, expected {expected!r}")
    if int(ver) > int(exp_ver):
        raise UsageError(
            f"{kind} format {fmt!r} is newer than this portstorm reads (up to {expected!r}): "
            "upgrade portstorm"
        )


def read_json_object(path: Path, expected: str) -> dict[str, Any]:
    """A JSON file whose top level is an object; every way it can be wrong is one
    UsageError line naming the file (``expected`` says what it should have been)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected {expected}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: cannot read: {e}") from None
    if not text.strip():
        raise UsageError(f"{path}: file is empty, expected {expected}")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"{path}: not valid JSON (truncated?): {e.msg} at line {e.lineno}"
        ) from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: not {expected}: top level is not an object")
    return doc


def save_json_atomic(path: Path, doc: Mapping[str, Any]) -> None:
    """Write JSON so that a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


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
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{path}: damaged portstorm result ({type(e).__name__}: {e})") from None
