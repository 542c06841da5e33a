"""Key metrics of runs, their medians and spread over repeats, and changes against a baseline.

Containing no files and no printing: callers load runs (RunResults, or what compare alone
reads of them: core/readings.py) and give them here, grouped
into *subjects* (one run, or a sweep cell's repeats); ``comparison(subjects)`` gives the typed
Comparison of core/comparison.py (``compare()`` its JSON), which cli/console.py prints.

Significance: a change against the first subject counts only when both sides were repeated
(n >= 2 each) and the medians differ by more than either side's spread (max - min over its
repeats) and by more than 2 % of the baseline. With a single run on either side there is no
spread to judge by, and the change is marked unknown rather than guessed.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from typing_extensions import TypeVar

from portstorm.core.binding import binding
from portstorm.core.comparison import Change as Change
from portstorm.core.comparison import Comparison, Metric, Row
from portstorm.core.comparison import Spread as Spread
from portstorm.core.readings import Compared
from portstorm.core.result import RunResult

# a Subject's runs: whole RunResults (what a report draws), by default; compare alone
# reads core/readings.py's RunReadings, which have what Compared names
R = TypeVar("R", bound=Compared, default=RunResult, covariant=True)

# key, label, unit
METRICS: tuple[Metric, ...] = (
    Metric("rate", "rate", "conn/s"),
    Metric("after_exhaustion", "after exhaustion", "conn/s"),
    Metric("first_failure_s", "first failure", "s"),
    Metric("p50_us", "p50", "us"),
    Metric("p99_us", "p99", "us"),
    Metric("p999_us", "p99.9", "us"),
    Metric("failed_pct", "failed", "%"),
    Metric("peak_time_wait", "peak TIME_WAIT", "sockets"),
    Metric("model_rate", "model sustainable", "conn/s"),
)
MIN_RELATIVE_CHANGE = 0.02


def run_metrics(r: Compared) -> dict[str, float | None]:
    lat = r.histogram.summary()
    tws = [i.time_wait for i in r.intervals if i.time_wait is not None]
    # the ceiling the run meets first: a NAT pool in the path, or the client's own ports
    model = binding(r.model).sustainable_rate if r.model is not None else None
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


def steady_state_seen(r: Compared) -> bool:
    """Did this run, having run out of ports, last a whole hold period longer?"""
    return r.turnover() is not None


def _f(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) else None


def spread(values: Sequence[float | None]) -> Spread:
    known = [v for v in values if v is not None]
    if not known or len(known) * 2 < len(values):
        # e.g. first failure: most repeats never failed, so "none" is the typical answer
        return Spread(None, None, None, len(known), len(values))
    return Spread(statistics.median(known), min(known), max(known), len(known), len(values))


@dataclass(frozen=True)
class Subject(Generic[R]):
    """What is compared: one run, or the repeats of a sweep cell."""

    label: str
    runs: tuple[R, ...]
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


def comparison(subjects: Sequence[Subject[Compared]]) -> Comparison:
    """Every subject's metrics and, from the second on, each metric's change against the
    first: the typed value whose ``to_json()`` is ``portstorm compare --json``."""
    if not subjects:
        raise ValueError("nothing to compare")
    base = subjects[0].metrics
    rows = []
    for i, s in enumerate(subjects):
        m = s.metrics
        changes = {k: change(base[k], m[k]).rounded() for k, _l, _u in METRICS} if i else None
        rows.append(
            Row(
                label=s.label,
                paths=tuple(s.paths),
                factors=dict(s.factors),
                hosts=tuple(s.hosts),
                repeats=len(s.runs),
                metrics={k: v.rounded() for k, v in m.items()},
                failure_mix_pct={k: round(v, 4) for k, v in s.failure_mix.items()},
                # every repeat that ran out lasted a whole hold time longer (RunResult.turnover)
                steady_state=all(steady_state_seen(r) for r in s.runs if r.first_failure_s),
                changes=changes,
            )
        )
    return Comparison(subjects[0].label, tuple(rows), METRICS)


def compare(subjects: Sequence[Subject[Compared]]) -> dict[str, Any]:
    """The JSON form of ``portstorm compare --json`` (``comparison(subjects).to_json()``)."""
    return comparison(subjects).to_json()


def _facts(r: Compared) -> dict[str, str]:
    s = r.setup
    out = {"sandbox": str(s.sandbox), "close": str(s.close), "bind": str(s.bind)}
    out |= {"rate": str(s.rate), "concurrency": str(s.concurrency)}
    out["targets"] = ",".join(s.targets)
    out["sources"] = str(len(s.sources))
    out.update({k.removeprefix("net.ipv4.").removeprefix("net."): v for k, v in r.tunings.items()})
    out["host"] = r.host.hostname
    out["kernel"] = r.host.kernel
    return out


def distinguishing_labels(runs: Sequence[Compared]) -> list[str] | None:
    """Name each run by what differs between them (tunings, load, host), e.g.
    ``tcp_tw_reuse=1 sandbox=loopback``; None when nothing does."""
    facts = [_facts(r) for r in runs]
    keys = sorted({k for f in facts for k in f})
    differing = [k for k in keys if len({f.get(k) for f in facts}) > 1]
    if not differing:
        return None
    return [" ".join(f"{k}={f.get(k, '-')}" for k in differing) for f in facts]
