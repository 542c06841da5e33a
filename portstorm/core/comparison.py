"""A comparison as one typed value: what ``portstorm compare --json`` saves
(``portstorm.compare/1``) and what its readers take.

Containing the frozen values and their JSON both ways, no measuring and no files:
core/compare.py computes the metrics, spreads and changes of subjects and builds a
Comparison (``comparison(subjects)``); comparefindings.py, report/page.py and cli/console.py
read its properties (``row.change("rate").significant``). ``to_json`` gives the saved form,
its keys, order and rounding as ever; ``Comparison.from_json`` reads one back through
core/fields.py's checks, each wrong field one FieldError naming it
(``subjects[1].changes.rate.significant: 'yes'; allowed: true or false or null``).

A Comparison holds its numbers as saved (medians, spreads and changes to 6 decimals, the
failure mix to 4, integers left integers), so that a fresh comparison and the same one read
back from its file show the same text everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from portstorm.core import fields, formats
from portstorm.core.fields import FieldError

LIMIT = 1e30  # far past any real metric; keeps what a saved comparison says finite


def rounded(v: float | None, digits: int = 6) -> float | None:
    return None if v is None else round(v, digits)


def _number(v: object, field: str, low: float = -LIMIT, *, null: bool = True) -> float | None:
    """A number (or null), kept as written: an integer stays an integer, as it was saved."""
    fields.number(v, field, low, LIMIT, null=null)
    return cast("float | None", v)


def _count(v: object, field: str) -> int:
    return int(fields.integer(v, field) or 0)


def _text(v: object, field: str) -> str:
    return str(fields.text(v, field))


class Metric(NamedTuple):
    """One column of a comparison (a NamedTuple: ``for key, label, unit in metrics``)."""

    key: str
    label: str
    unit: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "label": self.label, "unit": self.unit}

    @classmethod
    def from_json(cls, v: object) -> Metric:
        m = fields.mapping(v, "")
        key, label, unit = (_text(fields.member(m, k), k) for k in ("key", "label", "unit"))
        return cls(key, label, unit)


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

    def rounded(self) -> Spread:
        """As saved: to 6 decimals."""
        return Spread(rounded(self.median), rounded(self.low), rounded(self.high), self.n, self.of)

    def to_json(self) -> dict[str, Any]:
        return {"median": rounded(self.median), "low": rounded(self.low),
                "high": rounded(self.high), "n": self.n, "of": self.of}  # fmt: skip

    @classmethod
    def from_json(cls, v: object) -> Spread:
        m = fields.mapping(v, "")
        median, low, high = (_number(fields.member(m, k), k) for k in ("median", "low", "high"))
        return cls(median, low, high, _count(fields.member(m, "n"), "n"),
                   _count(fields.member(m, "of"), "of"))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    """A metric's change against the baseline's median."""

    delta: float | None
    relative: float | None  # delta / baseline
    significant: bool | None  # None: cannot tell (a single run on either side)

    def rounded(self) -> Change:
        return Change(rounded(self.delta), rounded(self.relative), self.significant)

    def to_json(self) -> dict[str, Any]:
        return {"delta": rounded(self.delta), "relative": rounded(self.relative),
                "significant": self.significant}  # fmt: skip

    @classmethod
    def from_json(cls, v: object) -> Change:
        m = fields.mapping(v, "")
        return cls(
            _number(fields.member(m, "delta"), "delta"),
            _number(fields.member(m, "relative"), "relative"),
            fields.flag(fields.member(m, "significant"), "significant", null=True),
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One subject of a comparison (a run, or a sweep cell's repeats): its metrics over its
    repeats and, for every row after the baseline, their changes against it."""

    label: str
    paths: tuple[str, ...]
    factors: Mapping[str, str]
    hosts: tuple[str, ...]
    repeats: int
    metrics: Mapping[str, Spread]
    failure_mix_pct: Mapping[str, float]  # outcome -> percent of attempts, most first
    steady_state: bool  # every repeat that ran out lasted a whole hold time longer
    changes: Mapping[str, Change] | None = None  # None: the baseline

    @property
    def is_baseline(self) -> bool:
        return self.changes is None

    def spread(self, key: str) -> Spread:
        return self.metrics[key]

    def median(self, key: str) -> float | None:
        """The metric's median as a float; None when not measured (or not compared)."""
        s = self.metrics.get(key)
        return None if s is None or s.median is None else float(s.median)

    def change(self, key: str) -> Change:
        if self.changes is None:
            raise KeyError(f"{self.label} is the baseline: it has no changes")
        return self.changes[key]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "paths": list(self.paths),
            "factors": dict(self.factors),
            "hosts": list(self.hosts),
            "repeats": self.repeats,
            "metrics": {k: v.to_json() for k, v in self.metrics.items()},
            "failure_mix_pct": {k: round(v, 4) for k, v in self.failure_mix_pct.items()},
            "steady_state": self.steady_state,
        }
        if self.changes is not None:
            out["changes"] = {k: c.to_json() for k, c in self.changes.items()}
        return out

    @classmethod
    def from_json(cls, v: object, keys: Sequence[str], baseline: bool) -> Row:
        """A saved row: ``keys`` are the metrics every row must have (and, after the
        baseline, a change for each)."""
        m = fields.mapping(v, "")
        label = _text(fields.member(m, "label"), "label")
        paths = fields.member(m, "paths")
        fields.text_list(paths, "paths")
        factors = m.get("factors")  # optional, as inputs.py has always read it
        fields.texts(factors, "factors", null=True)
        hosts = fields.member(m, "hosts")
        fields.text_list(hosts, "hosts")
        repeats = _count(fields.member(m, "repeats"), "repeats")
        metrics = _each(fields.member(m, "metrics"), "metrics", keys, Spread.from_json)
        mix = fields.mapping(fields.member(m, "failure_mix_pct"), "failure_mix_pct")
        failure_mix = {
            k: cast(float, _number(p, f"failure_mix_pct.{k}", 0.0, null=False))
            for k, p in mix.items()
        }
        steady = fields.flag(fields.member(m, "steady_state"), "steady_state")
        changes = None
        if not baseline:
            changes = _each(fields.member(m, "changes"), "changes", keys, Change.from_json)
        return cls(label, tuple(paths), dict(factors or {}), tuple(hosts), repeats, metrics,
                   failure_mix, bool(steady), changes)  # fmt: skip


def _each(
    v: object, field: str, keys: Sequence[str], read: Callable[[object], Any]
) -> dict[str, Any]:
    """An object of ``read`` values, holding at least ``keys``."""
    m = fields.mapping(v, field)
    out = {}
    for k, item in m.items():
        with fields.within(f"{field}.{k}"):
            out[k] = read(item)
    for k in keys:
        if k not in out:
            raise FieldError(f"{field}.{k}", "missing; allowed: an object")
    return out


@dataclass(frozen=True, slots=True)
class Comparison:
    """Subjects side by side: the first is the baseline every later row's changes are
    measured against; ``metrics`` is the table of columns, in order."""

    baseline: str
    rows: tuple[Row, ...]
    metrics: tuple[Metric, ...]

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every host the rows ran on, sorted."""
        return tuple(sorted({h for r in self.rows for h in r.hosts}))

    def label(self, key: str) -> str:
        """A metric's label (``p99.9`` for ``p999_us``); the key itself if not in the table."""
        return next((m.label for m in self.metrics if m.key == key), key)

    def to_json(self) -> dict[str, Any]:
        return {"format": formats.COMPARE, "baseline": self.baseline,
                "subjects": [r.to_json() for r in self.rows],
                "metrics": [m.to_json() for m in self.metrics]}  # fmt: skip

    @classmethod
    def from_json(cls, doc: object) -> Comparison:
        """A saved comparison, checked: a wrong format is a UsageError, any other wrong
        field one FieldError naming it (``subjects[0].metrics.rate.median``)."""
        d = fields.mapping(doc, "")
        formats.check_format(fields.member(d, "format"), formats.COMPARE, "comparison")
        baseline = _text(fields.member(d, "baseline"), "baseline")
        table: list[Metric] = []
        for i, m in enumerate(fields.sequence(fields.member(d, "metrics"), "metrics")):
            with fields.within(f"metrics[{i}]"):
                metric = Metric.from_json(m)
            if metric.key in (t.key for t in table):
                raise FieldError(
                    f"metrics[{i}].key", f"{fields.shown(metric.key)} again; allowed: each once"
                )
            table.append(metric)
        keys = [m.key for m in table]
        subjects = fields.sequence(fields.member(d, "subjects"), "subjects")
        if not subjects:
            raise FieldError("subjects", "an empty list; allowed: one subject or more")
        rows = []
        for i, r in enumerate(subjects):
            with fields.within(f"subjects[{i}]"):
                rows.append(Row.from_json(r, keys, baseline=i == 0))
        return cls(baseline, tuple(rows), tuple(table))

    @classmethod
    def of(cls, doc: Comparison | Mapping[str, Any]) -> Comparison:
        """``doc`` itself, or the Comparison its JSON describes (for callers holding
        ``compare()``'s dict)."""
        return doc if isinstance(doc, Comparison) else cls.from_json(doc)
