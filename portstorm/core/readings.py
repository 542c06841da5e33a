"""What ``portstorm compare`` reads of a run, and a result.json read for that alone.

Containing the ``Compared`` protocol (what core/compare.py, the --fail-if measures of
core/thresholds.py and the labels of core/inputs.py read of a run: RunResult has it all),
``RunReadings`` (the same from a file, with five readings an interval instead of an
Interval each) and its loading; no printing, no files (inputs.py reads them).

Why: a day's result is 86,400 intervals; making and checking an Interval for each (with
its kernel counters as rows) was ~1.5 s a file, three quarters of a compare of two days.
Compare needs of them only ``t``, ``dt``, ``succeeded``, ``time_wait`` and
``ports_in_use`` (and the totals they sum to). The file is still checked as hostile
input, every interval field with the column checks core/intervalcheck.py makes (types,
ranges, outcome names, attempts = succeeded + failed), so a file compare accepts is one
report accepts; what is not made is the objects. Where any check fails, ``from_doc``
gives None and the caller reads the file the whole way (result_from_doc), which names
the field. Not checked here (the whole way checks them): the ramp against the first
interval, the tuples table's sums against the intervals', and the names in an interval's
``kernel_read`` / ``server_kernel_read``.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple, Protocol

from portstorm.core import fields, runcolumns, runform, turnover
from portstorm.core.capacity import Capacity
from portstorm.core.hdrblock import HdrBlock
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.intervalcheck import ints_ok, maps_ok, seconds_ok, texts_ok
from portstorm.core.outcome import CONNECTED
from portstorm.core.records import (
    FAILURE_NAMES,
    HostInfo,
    Interval,
    TupleStats,
    summed_counts,
)
from portstorm.core.routerrecord import RouterReading
from portstorm.core.setup import RunSetup
from portstorm.core.thresholds import Verdict
from portstorm.core.toplevel import read_top_level

_COUNTS = ("time_wait", "server_time_wait", "ports_in_use", "established", "fds")
_MAPS = ("ports_by_destination", "transaction_us", "http_status")


class Reading(turnover.Span, Protocol):
    """What compare reads of an interval (an Interval has it): turnover's t, dt and
    succeeded, and the two port-space readings."""

    @property
    def time_wait(self) -> int | None: ...
    @property
    def ports_in_use(self) -> int | None: ...


class Compared(Protocol):
    """What compare, its --fail-if measures and its labels read of a run (RunResult)."""

    @property
    def host(self) -> HostInfo: ...
    @property
    def setup(self) -> RunSetup: ...
    @property
    def tunings(self) -> Mapping[str, str]: ...
    @property
    def histogram(self) -> LatencyHistogram: ...
    @property
    def transactions(self) -> LatencyHistogram | None: ...
    @property
    def model(self) -> Capacity | None: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def first_failure_s(self) -> float | None: ...
    @property
    def intervals(self) -> Sequence[Reading]: ...
    @property
    def attempts(self) -> int: ...
    @property
    def succeeded(self) -> int: ...
    @property
    def failed(self) -> dict[str, int]: ...
    @property
    def rate(self) -> float: ...
    def turnover(self) -> tuple[int, float] | None: ...
    def sustained_after_exhaustion(self) -> float | None: ...


class IntervalReading(NamedTuple):
    """An interval's five readings; its columns were checked before it was made."""

    t: float
    dt: float
    succeeded: int
    time_wait: int | None
    ports_in_use: int | None


def load_span(setup: RunSetup, complete: bool, duration_s: float) -> float:
    """What a run's rate is over: its wall time, except a complete held open loop's, whose
    starts end at its planned end while the run goes on holding the last of them."""
    s = setup
    if s.hold_s and s.open_loop and s.duration_s is not None and complete:
        return min(float(s.duration_s), duration_s)
    return duration_s


@dataclass(frozen=True, slots=True)
class RunReadings:
    """A run as compare reads it; made by ``from_doc`` from a checked file only."""

    host: HostInfo
    setup: RunSetup
    tunings: Mapping[str, str]
    duration_s: float
    complete: bool
    histogram: LatencyHistogram
    transactions: LatencyHistogram | None
    model: Capacity | None
    first_failure_s: float | None
    first_failure_outcome: str | None
    intervals: tuple[IntervalReading, ...]
    attempts: int
    succeeded: int
    failures: Mapping[str, int]  # outcome -> count, most frequent first (summed_counts)

    @property
    def failed(self) -> dict[str, int]:
        return dict(self.failures)

    @property
    def rate(self) -> float:
        span = load_span(self.setup, self.complete, self.duration_s)
        return self.succeeded / span if span > 0 else 0.0

    def turnover(self) -> tuple[int, float] | None:
        return turnover.turnover(self.intervals, self.setup, self.model, self.complete,
                                 self.first_failure_s, self.first_failure_outcome)  # fmt: skip

    def sustained_after_exhaustion(self) -> float | None:
        return turnover.sustained(self.intervals, self.setup, self.model, self.complete,
                                  self.first_failure_s, self.first_failure_outcome)  # fmt: skip


def _counts(col: Sequence[Any], low: int = 0) -> bool:
    """Every value an int in [low, MAX_COUNT] or None (intervalcheck's check, without a
    copy of the column when, as nearly always, it holds no None)."""
    kinds = set(map(type, col))
    if kinds == {int}:
        return bool(low <= min(col) and max(col) <= fields.MAX_COUNT)
    return kinds <= {int, type(None)} and ints_ok([v for v in col if v is not None], low)


class _Objects:
    """The interval objects' columns, each fetched once; a name no object holds is a
    column of its default without a pass over them (most are absent in version 2)."""

    def __init__(self, items: Sequence[dict[str, Any]]) -> None:
        self.items = items
        self.held: set[Any] = set().union(*items)  # every object's names, in C
        self.got: dict[str, list[Any]] = {}

    def __call__(self, name: str, default: object = None) -> list[Any]:
        if name not in self.got:
            if name in self.held:
                got = list(map(dict.get, self.items, repeat(name), repeat(default)))
            else:
                got = [default] * len(self.items)
            self.got[name] = got
        return self.got[name]

    def absent(self, name: str) -> bool:
        return name not in self.held


def _intervals_ok(m: Mapping[str, Any], col: _Objects, version: int) -> list[Any] | None:
    """Every interval field checked column by column as core/intervalcheck.py checks them
    (and, from version 2, ``interval_counters``, ``interval_columns`` and the histogram
    blocks); the ``dt`` column (version 2: from the next start where left out), or None."""
    items = col.items
    dts = col("dt")
    if version >= 2:
        runform.names_from_json(m.get("interval_counters"))
        cols = runform.Columns(m.get("interval_columns"), len(items))
        for side, group in cols.sides.items():
            low = 0 if side == runform.BY_DEST else -fields.MAX_COUNT
            if not all(_counts(c, low) for c in group.values()):
                return None
        if cols.fds is not None and not _counts(cols.fds):
            return None
        for key in runform.BLOCKS:
            if m.get(key) is not None:
                with fields.within(key):
                    block = HdrBlock.from_json(m[key])
                if block.intervals != len(items):
                    return None
        dts = runcolumns.interval_dts(items, runform.DIGITS)
    failed = col("failed")
    ok = (
        seconds_ok(col("t"))
        and seconds_ok(dts)
        and all(ints_ok(col(n, 0)) for n in ("attempts", "succeeded", "not_started"))
        and all(col.absent(n) or _counts(col(n)) for n in _COUNTS)
        and maps_ok(failed)
        and set().union(*failed) <= FAILURE_NAMES
        and (col.absent("other_errnos") or maps_ok(col("other_errnos", {})))
        and maps_ok(col("latency_us"), nulls=True)
        and all(
            col.absent(n) or maps_ok(col(n), -fields.MAX_COUNT, maybe=True) for n in runform.SIDES
        )
        and all(col.absent(n) or maps_ok(col(n), maybe=True) for n in _MAPS)
        and all(col.absent(n) or texts_ok(col(n)) for n in ("hdr", "transaction_hdr"))
        and col("attempts")
        == list(map(operator.add, col("succeeded"), map(sum, map(dict.values, failed))))
    )
    if not ok:
        return None
    if not col.absent("router"):
        with fields.within("router"):
            for d in col("router"):
                if d is not None:
                    RouterReading.from_json(d)
    return dts


def from_doc(d: Mapping[str, Any]) -> RunReadings | None:
    """A parsed result.json as compare reads it; None when a check fails (the caller reads
    it the whole way, which names the field). FieldError, KeyError, TypeError and
    ValueError can come out of the top level's readers too: the caller does the same."""
    top = read_top_level(d)  # as RunResult.from_json reads it
    m, version, events = top.m, top.version, top.events
    histogram, transactions = top.histogram, top.transactions
    fields.text(fields.member(m, "started_at"), "started_at")
    fields.mapping(top.scenario.get("sink_stats"), "scenario.sink_stats", null=True)
    cap = m.get("capacity")
    runform.listed(m, "ramp", Interval.from_json)
    runform.listed(m, "tuples", TupleStats.from_json)
    runform.listed(m, "thresholds", Verdict.from_json)
    for name in ("server_tunings", "router_tunings"):
        fields.texts(fields.copied(m.get(name)), name, null=True)
    tunings = fields.copied(fields.member(m, "tunings"))
    fields.texts(tunings, "tunings")
    fields.text_list(fields.copied(m.get("notes", [])), "notes")
    duration = fields.as_float(fields.member(m, "duration_s"))
    fields.number(duration, "duration_s")
    complete = fields.member(m, "complete")
    fields.flag(complete, "complete")
    first_s = fields.as_float(events.get("first_failure_s"))
    fields.number(first_s, "events.first_failure_s", null=True)
    first_o = events.get("first_failure_outcome")
    if first_o is not None and first_o not in FAILURE_NAMES:
        return None
    items = fields.sequence(fields.member(m, "intervals"), "intervals")
    if not set(map(type, items)) <= {dict}:
        return None
    col = _Objects(items)
    dts = _intervals_ok(m, col, version)
    if dts is None:
        return None
    succeeded = col("succeeded")
    failures = summed_counts(col("failed"))
    ok_count = sum(succeeded)
    connected = ok_count + sum(failures.get(o, 0) for o in CONNECTED)
    if histogram.count != connected or (
        transactions is not None and transactions.count != ok_count
    ):
        return None  # the whole way says which holds what
    readings = tuple(
        map(IntervalReading, map(float, col("t")), map(float, dts), succeeded,
            col("time_wait"), col("ports_in_use"))
    )  # fmt: skip
    return RunReadings(
        host=top.host,
        setup=top.setup,
        tunings=tunings,
        duration_s=duration,
        complete=complete,
        histogram=histogram,
        transactions=transactions,
        model=Capacity.from_json(cap) if cap is not None else None,
        first_failure_s=first_s,
        first_failure_outcome=first_o,
        intervals=readings,
        attempts=sum(col("attempts")),
        succeeded=ok_count,
        failures=failures,
    )
