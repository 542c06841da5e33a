"""Key metrics of runs, their medians and spread over repeats, and changes against a baseline.

Containing no files and no printing: callers load RunResults and give them here, grouped
into *subjects* (one run, or a sweep cell's repeats); cli/console.py prints what comes back.

Significance: a change against the first subject counts only when both sides were repeated
(n >= 2 each) and the medians differ by more than either side's spread (max - min over its
repeats) and by more than 2 % of the baseline. With a single run on either side there is no
spread to judge by, and the change is marked unknown rather than guessed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portstorm.core import formats
from portstorm.core.result import RunResult

# key, label, unit
METRICS: tuple[tuple[str, str, str], ...] = (
    ("rate", "rate", "conn/s"),
    ("after_exhaustion", "after exhaustion", "conn/s"),
    ("first_failure_s", "first failure", "s"),
    ("p50_us", "p50", "us"),
    ("p99_us", "p99", "us"),
    ("p999_us", "p99.9", "us"),
    ("failed_pct", "failed", "%"),
    ("peak_time_wait", "peak TIME_WAIT", "sockets"),
    ("model_rate", "model sustainable", "conn/s"),
)
MIN_RELATIVE_CHANGE = 0.02


def run_metrics(r: RunResult) -> dict[str, float | None]:
    lat = r.histogram.summary()
    tws = [i.time_wait for i in r.intervals if i.time_wait is not None]
    model = r.model.sustainable_rate if r.model is not None else None
    return {
        "rate": r.rate,
        "after_exhaustion": r.sustained_after_exhaustion(),
        "first_failure_s": r.first_failure_s,
        "p50_us": _f(lat.get("p50")),
        "p99_us": _f(lat.get("p99")),
        "p999_us": _f(lat.get("p999")),
        "failed_pct": 100.0 * (r.attempts - r.succeeded) / r.attempts if r.attempts else None,
        "peak_time_wait": float(max(tws)) if tws else None,
        "model_rate": float(model) if model is not None else None,
    }


def steady_state_seen(r: RunResult) -> bool:
    """Did this run, having run out of ports, last a whole hold period longer?"""
    return r.turnover() is not None


def _f(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) else None


@dataclass(frozen=True, slots=True)
class Spread:
    """One metric over n repeats: median, lowest, highest (None: not measured in most)."""

    median: float | None
    low: float | None
    high: float | None
    n: int  # repeats that measured it
    of: int  # repeats in all

    @property
    def width(self) -> float:
        return (self.high - self.low) if self.high is not None and self.low is not None else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"median": _r(self.median), "low": _r(self.low), "high": _r(self.high),
                "n": self.n, "of": self.of}  # fmt: skip


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def spread(values: Sequence[float | None]) -> Spread:
    known = [v for v in values if v is not None]
    if not known or len(known) * 2 < len(values):
        # e.g. first failure: most repeats never failed, so "none" is the typical answer
        return Spread(None, None, None, len(known), len(values))
    return Spread(statistics.median(known), min(known), max(known), len(known), len(values))


@dataclass(frozen=True)
class Subject:
    """What is compared: one run, or the repeats of a sweep cell."""

    label: str
    runs: tuple[RunResult, ...]
    paths: tuple[str, ...] = ()
    factors: Mapping[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Spread]:
        per_run = [run_metrics(r) for r in self.runs]
        return {k: spread([m[k] for m in per_run]) for k, _l, _u in METRICS}

    @property
    def failure_mix(self) -> dict[str, float]:
        """Outcome -> percent of attempts, over every repeat."""
        attempts = sum(r.attempts for r in self.runs)
        total: dict[str, int] = {}
        for r in self.runs:
            for k, v in r.failed.items():
                total[k] = total.get(k, 0) + v
        return {k: 100.0 * v / attempts for k, v in sorted(total.items(), key=lambda kv: -kv[1])}

    @property
    def hosts(self) -> list[str]:
        return sorted({f"{r.host.hostname} (Linux {r.host.kernel})" for r in self.runs})


@dataclass(frozen=True, slots=True)
class Change:
    delta: float | None  # against the baseline's median
    relative: float | None  # delta / baseline
    significant: bool | None  # None: cannot tell (a single run on either side)


def change(base: Spread, other: Spread) -> Change:
    if base.median is None or other.median is None:
        return Change(None, None, None)
    delta = other.median - base.median
    relative = delta / abs(base.median) if base.median else None
    if base.n < 2 or other.n < 2:
        return Change(delta, relative, None)
    beyond_spread = abs(delta) > max(base.width, other.width)
    beyond_floor = (
        abs(delta) > MIN_RELATIVE_CHANGE * abs(base.median) if base.median else delta != 0
    )
    return Change(delta, relative, beyond_spread and beyond_floor)


def compare(subjects: Sequence[Subject]) -> dict[str, Any]:
    """Every subject's metrics and, from the second on, each metric's change against the
    first. The JSON form of ``portstorm compare --json``."""
    if not subjects:
        raise ValueError("nothing to compare")
    base = subjects[0].metrics
    out = []
    for i, s in enumerate(subjects):
        m = s.metrics
        row: dict[str, Any] = {
            "label": s.label,
            "paths": list(s.paths),
            "factors": dict(s.factors),
            "hosts": s.hosts,
            "repeats": len(s.runs),
            "metrics": {k: v.to_json() for k, v in m.items()},
            "failure_mix_pct": {k: round(v, 4) for k, v in s.failure_mix.items()},
            # every repeat that ran out lasted a whole hold time longer (RunResult.turnover)
            "steady_state": all(steady_state_seen(r) for r in s.runs if r.first_failure_s),
        }
        if i:
            row["changes"] = {}
            for k, _label, _unit in METRICS:
                c = change(base[k], m[k])
                row["changes"][k] = {"delta": _r(c.delta), "relative": _r(c.relative),
                                     "significant": c.significant}  # fmt: skip
        out.append(row)
    return {"format": formats.COMPARE, "baseline": subjects[0].label, "subjects": out,
            "metrics": [{"key": k, "label": lab, "unit": u} for k, lab, u in METRICS]}  # fmt: skip


def _facts(r: RunResult) -> dict[str, str]:
    s = r.setup
    out = {"sandbox": str(s.sandbox), "close": str(s.close), "bind": str(s.bind)}
    out |= {"rate": str(s.rate), "concurrency": str(s.concurrency)}
    out["targets"] = ",".join(s.targets)
    out["sources"] = str(len(s.sources))
    out.update({k.removeprefix("net.ipv4.").removeprefix("net."): v for k, v in r.tunings.items()})
    out["host"] = r.host.hostname
    out["kernel"] = r.host.kernel
    return out


def distinguishing_labels(runs: Sequence[RunResult]) -> list[str] | None:
    """Name each run by what differs between them (tunings, load, host), e.g.
    ``tcp_tw_reuse=1 sandbox=loopback``; None when nothing does."""
    facts = [_facts(r) for r in runs]
    keys = sorted({k for f in facts for k in f})
    differing = [k for k in keys if len({f.get(k) for f in facts}) > 1]
    if not differing:
        return None
    return [" ".join(f"{k}={f.get(k, '-')}" for k in differing) for f in facts]
