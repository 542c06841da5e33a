"""The saved result of a run: ``RunResult``, and the versioned ``result.json`` format.

Containing the value, its validation, its JSON form and its loading; the parts are in
records.py (intervals, tuples, host), runform.py (intervals in the file), setup.py and
capacity.py; files are read through reading.py. The constructors check the type and
range of every field (core/fields.py), so a file with one wrong value is refused with that
field's name (``intervals[3].latency_us.p50``) and never half read.

Format history (keep old versions loading, as pyperf's _bench.py does):
- ``portstorm.run/1`` (2026-11): first version. ``capacity`` and the per-interval sampler
  fields (``time_wait``, ``server_time_wait``, ``ports_in_use``, ``kernel``) may be null when
  the run did not measure them; they are never filled with invented values. ``scenario``
  (RunSetup) and ``capacity`` (Capacity) come back typed; ``scenario``'s ``sink_stats``
  (the built-in sink's counts, a measurement) is RunResult.sink_stats. Added within
  version 1 (files without them load, with the default said after each):
  ``tuples`` (per source/destination accounting: an empty table); each interval's own
  latency histogram ``hdr`` (HdrHistogram's compressed encoding: the exports hold the whole
  run as one interval); ``events.sustained_after_exhaustion`` counted over whole hold
  periods when the run lasted one past its first failure (it is derived: readers recompute
  it); ``not_started`` per interval and in ``totals`` (an open loop's scheduled starts
  dropped at the time bound, neither attempts nor failures: 0); ``ramp`` (the first
  interval's 100 ms parts, core/ramp.py, in the shape of ``intervals``: none, the knee is
  looked for in the intervals); the ``close_timeout`` outcome (connected, then the server
  did not close in time; timed, so ``latency_us.hdr`` holds them too) with
  ``scenario.close_timeout_s`` and ``scenario.loopback`` (derived from ``sandbox``);
  ``established`` per interval (client sockets in ESTABLISHED toward the targets: null);
  ``scenario.ipv6`` (false: those runs were IPv4); ``transaction_us`` (the successes' time
  to the last response byte) with per interval ``transaction_us`` {p50, p99} and its
  ``transaction_hdr``, ``http_status`` per interval and in ``totals``, the outcomes
  ``response_incomplete`` and ``http_error`` (connected, so timed) and the scenario's
  ``request_size``, ``response_size``, ``response_timeout_s``, ``http_path``, ``http_host``
  and ``hold_s`` (no exchange, nothing held); for --sandbox nat, ``capacity.nat`` (the NAT
  pool's ceiling, core/natmodel.py), the top-level ``router_tunings`` (the router's
  sysctls read back), per interval ``router`` (its conntrack, core/routerrecord.py) and the
  scenario's ``nat_ports``, ``nat_flags``, ``clients`` and ``router_set`` (no NAT), and
  later ``nat_rule`` (``masquerade`` or ``snat``, which made ``nat_ports``: unknown);
  ``thresholds``, the ``--fail-if`` verdicts (core/thresholds.py: none).
- ``portstorm.run/2`` (2026-12): compact intervals, so a day of 1 s intervals is not 80 MB
  (issue 22). Each keeps DESIGN.md's names, less what it does not hold (core/runform.py
  says what and how it reads back, ``interval_counters`` included); ``hdr`` and
  ``transaction_hdr`` move to the blocks ``interval_hdr`` and ``interval_transaction_hdr``
  (core/hdrblock.py, read only when used); one interval a line (``result_text``). ``ramp``
  keeps version 1's shape. Version 1 files load as before; nothing they held is lost.
  Since 2026-12-02 the blocks hold the histograms' V2 payloads compressed together
  (``encoding`` says which: core/hdrblock.py), 0.72 of their room as lines on a real
  run; blocks of lines, as first written, read the same.
- ``portstorm.run/3`` (2026-12-03): a day of distinct histograms in under 25 MB (issue
  22: 32.3 MB as version 2). Of DESIGN.md's five ``kernel`` counters, those that never
  changed in the run are in no interval's object (``interval_counters`` lists them: each
  reads back 0); one that changed once is in every object, zero or not. The histogram
  blocks are bzip2'd (core/hdrblock.py). Versions 1 and 2 load as before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import Any

from portstorm.core import fields, formats, runcolumns, runform, turnover
from portstorm.core.capacity import Capacity
from portstorm.core.errors import UsageError
from portstorm.core.formats import check_format
from portstorm.core.hdrblock import HdrBlock
from portstorm.core.histogram import LatencyHistogram
from portstorm.core.outcome import CONNECTED
from portstorm.core.ramp import check_ramp
from portstorm.core.reading import read_json_object
from portstorm.core.readings import load_span
from portstorm.core.records import (
    FAILURE_NAMES,
    HostInfo,
    Interval,
    TupleStats,
    decode_histogram,
    file_header,
    merge_intervals,
    summed_counts,
    utc_iso,
    worst_tuple,
)
from portstorm.core.setup import MEASURED, RunSetup
from portstorm.core.thresholds import Verdict
from portstorm.core.toplevel import read_top_level

# the parts, importable from here as the format's names (engine/ and cli/ do)
__all__ = [
    "FORMAT", "Capacity", "HostInfo", "Interval", "RunResult", "RunSetup", "TupleStats",
    "check_format", "decode_histogram", "load_result", "merge_intervals", "read_json_object",
    "result_from_doc", "result_text", "utc_iso",
]  # fmt: skip

FORMAT = formats.RUN


@dataclass(frozen=True, slots=True)
class RunResult:
    """One run, everything it measured. Totals are derived from the intervals."""

    tool_version: str
    host: HostInfo
    started_at: str  # UTC ISO 8601
    duration_s: float  # wall time of the load, measured
    complete: bool
    setup: RunSetup  # result.json's "scenario"
    tunings: Mapping[str, str]
    intervals: tuple[Interval, ...]
    histogram: LatencyHistogram
    first_failure_s: float | None = None
    first_failure_outcome: str | None = None
    model: Capacity | None = None  # result.json's "capacity": the port-space model
    notes: tuple[str, ...] = field(default_factory=tuple)
    server_tunings: Mapping[str, str] | None = None  # pair sandbox: the sink's namespace
    tuples: tuple[TupleStats, ...] = ()  # per (source, destination); empty in early files
    sink_stats: Mapping[str, int | str] | None = None  # the built-in sink's own counts
    # the first interval's parts, in time order (core/ramp.py); empty in early files
    ramp: tuple[Interval, ...] = ()
    # a run with a request/response or --http: its successes' transactions, from the
    # attempt's start to the last response byte; None without (and in earlier files)
    transactions: LatencyHistogram | None = None
    # --sandbox nat: the router's sysctls as read back (core/nat.py); None elsewhere, earlier
    router_tunings: Mapping[str, str] | None = None
    thresholds: tuple[Verdict, ...] = ()  # --fail-if: each threshold's verdict, as given
    # run/2 read lazily: the intervals' histograms, encoded (interval_histograms())
    interval_hdrs: HdrBlock | None = None
    interval_transaction_hdrs: HdrBlock | None = None
    # (attempts, succeeded, failed) over the intervals, summed once: a day's are 86,400
    _sums: Any = field(default=None, repr=False, compare=False)  # set by __post_init__

    def __post_init__(self) -> None:
        ivs = self.intervals
        sums = (
            sum(map(attrgetter("attempts"), ivs)),
            sum(map(attrgetter("succeeded"), ivs)),
            summed_counts(map(attrgetter("failed"), ivs)),
        )
        object.__setattr__(self, "_sums", sums)
        # named as in result.json: these checks are what a damaged file is told
        fields.text(self.tool_version, "tool.version")
        fields.instance(self.host, HostInfo, "host")
        fields.text(self.started_at, "started_at")  # shown as it is; exports parse it or not
        fields.number(self.duration_s, "duration_s")
        fields.flag(self.complete, "complete")
        fields.instance(self.setup, RunSetup, "scenario")
        fields.texts(self.tunings, "tunings")
        fields.texts(self.server_tunings, "server_tunings", null=True)
        fields.texts(self.router_tunings, "router_tunings", null=True)
        if not all(map(isinstance, ivs, repeat(Interval))):  # which one, named
            for i, iv in enumerate(self.intervals):
                fields.instance(iv, Interval, f"intervals[{i}]")
        fields.instance(self.histogram, LatencyHistogram, "latency_us.hdr")
        fields.number(self.first_failure_s, "events.first_failure_s", null=True)
        if self.first_failure_outcome is not None and self.first_failure_outcome not in (
            FAILURE_NAMES
        ):
            raise fields.FieldError(
                "events.first_failure_outcome",
                f"{fields.shown(self.first_failure_outcome)}; allowed: null or "
                + ", ".join(sorted(FAILURE_NAMES)),
            )
        if self.model is not None:
            fields.instance(self.model, Capacity, "capacity")
        fields.mapping(self.sink_stats, "scenario.sink_stats", null=True)
        fields.text_list(self.notes, "notes")
        for i, tu in enumerate(self.tuples):
            fields.instance(tu, TupleStats, f"tuples[{i}]")
        check_ramp(self.ramp, self.intervals)
        runform.check_blocks(self.intervals, self.interval_hdrs, self.interval_transaction_hdrs)
        for i, v in enumerate(self.thresholds):
            fields.instance(v, Verdict, f"thresholds[{i}]")
        if self.transactions is not None:
            fields.instance(self.transactions, LatencyHistogram, "transaction_us.hdr")
            if self.transactions.count != self.succeeded:  # one per success, exactly
                raise ValueError(
                    f"transaction histogram holds {self.transactions.count} values but "
                    f"{self.succeeded} succeeded"
                )
        # every connection made is timed: the successes and those that then timed out
        # waiting for the server's close (close_timeout)
        connected = self.succeeded + sum(self.failed.get(o, 0) for o in CONNECTED)
        if self.histogram.count != connected:
            raise ValueError(
                f"histogram holds {self.histogram.count} values but {connected} connected"
            )
        if self.tuples:
            by_tuple = (sum(t.attempts for t in self.tuples), sum(t.succeeded for t in self.tuples))
            if by_tuple != (self.attempts, self.succeeded):
                raise ValueError(
                    f"the tuples table counts {by_tuple[0]} attempts and {by_tuple[1]} successes, "
                    f"the intervals {self.attempts} and {self.succeeded}"
                )

    def worst_tuple(self) -> TupleStats | None:
        """The tuple that fared worst (records.worst_tuple); None with one, or no failure."""
        return worst_tuple(self.tuples)

    @property
    def attempts(self) -> int:
        return int(self._sums[0])

    @property
    def succeeded(self) -> int:
        return int(self._sums[1])

    @property
    def failed(self) -> dict[str, int]:
        """Outcome -> count over the run, most frequent first."""
        return dict(self._sums[2])

    @property
    def other_errnos(self) -> dict[str, int]:
        return summed_counts(i.other_errnos for i in self.intervals)

    @property
    def http_status(self) -> dict[str, int] | None:
        """--http: status code -> responses over the run, by code; None without HTTP."""
        known = [i.http_status for i in self.intervals if i.http_status is not None]
        return dict(sorted(summed_counts(known).items())) if known else None

    @property
    def not_started(self) -> int:
        """Open loop: scheduled starts the driver, behind its schedule, dropped at the end."""
        return sum(i.not_started for i in self.intervals)

    @property
    def load_span_s(self) -> float:
        """What the rate is over: the run's wall time, except a complete held open loop's,
        whose starts end at its planned end (the driver's time bound) while the run goes
        on holding the last of them (--hold, then the timeouts at most): its schedule."""
        return load_span(self.setup, self.complete, self.duration_s)

    @property
    def rate(self) -> float:
        """Successful connections per second over the load's span (``load_span_s``)."""
        span = self.load_span_s
        return self.succeeded / span if span > 0 else 0.0

    def turnover(self) -> tuple[int, float] | None:
        """Successes over at least one whole hold period after the first failure:
        (count, seconds); core/turnover.py says how they are counted."""
        return turnover.turnover(self.intervals, self.setup, self.model, self.complete,
                                 self.first_failure_s, self.first_failure_outcome)  # fmt: skip

    def sustained_after_exhaustion(self) -> float | None:
        """Successes per second once the ports had run out: over whole hold periods
        (``turnover()``) when the run lasted that long, else over the whole intervals that
        began at or after the first failure (a run shorter than the hold time sees no port
        come back, and says so); for a held run, both seen a hold later."""
        return turnover.sustained(self.intervals, self.setup, self.model, self.complete,
                                  self.first_failure_s, self.first_failure_outcome)  # fmt: skip

    def interval_histograms(self, transactions: bool = False) -> list[str | None]:
        """Each interval's histogram (or its transactions'), encoded; None: it has none."""
        block = self.interval_transaction_hdrs if transactions else self.interval_hdrs
        if block is None:
            return [i.transaction_hdr if transactions else i.hdr for i in self.intervals]
        name = "interval_transaction_hdr" if transactions else "interval_hdr"
        with fields.within(name):
            return block.texts()

    def with_interval_histograms(self) -> RunResult:
        """This run with each Interval's ``hdr`` and ``transaction_hdr`` in it (what
        merge_intervals adds), where a lazily read file keeps them in its blocks."""
        if self.interval_hdrs is None and self.interval_transaction_hdrs is None:
            return self
        hdrs, txs = self.interval_histograms(), self.interval_histograms(transactions=True)
        filled = runform.filled(self.intervals, hdrs, txs)
        return dataclasses.replace(self, intervals=filled, interval_hdrs=None,
                                   interval_transaction_hdrs=None)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        lat: dict[str, Any] = dict(self.histogram.summary())
        lat["hdr"] = self.histogram.encode()
        scenario = self.setup.to_json()
        if self.sink_stats is not None:
            scenario[MEASURED] = dict(self.sink_stats)
        return {
            "format": FORMAT,
            **file_header(self.tool_version, self.host, self.started_at),
            "duration_s": round(self.duration_s, 6),
            "complete": self.complete,
            "scenario": scenario,
            "tunings": dict(self.tunings),
            "server_tunings": None if self.server_tunings is None else dict(self.server_tunings),
            "router_tunings": None if self.router_tunings is None else dict(self.router_tunings),
            "capacity": self.model.to_json() if self.model is not None else None,
            "totals": {
                "attempts": self.attempts,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "other_errnos": self.other_errnos,
                "rate": round(self.rate, 3),
                "not_started": self.not_started,
                **({"http_status": self.http_status} if self.http_status is not None else {}),
            },
            "latency_us": lat,
            **({"transaction_us": _hist_json(self.transactions)} if self.transactions else {}),
            "events": {
                "first_failure_s": _rounded(self.first_failure_s, 6),
                "first_failure_outcome": self.first_failure_outcome,
                "sustained_after_exhaustion": _rounded(self.sustained_after_exhaustion(), 3),
            },
            "notes": list(self.notes),
            "tuples": [t.to_json() for t in self.tuples],
            **runform.intervals_doc(
                self.intervals,
                self.interval_histograms(),
                self.interval_histograms(transactions=True),
            ),
            "ramp": [i.to_json() for i in self.ramp],
            "thresholds": [v.to_json() for v in self.thresholds],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any], lazy: bool = False) -> RunResult:
        """Every wrong shape is a FieldError naming the field (``intervals[3].t``). The
        totals, the latency percentiles and ``sustained_after_exhaustion`` are derived, and
        recomputed. ``lazy``: run/2's per-interval histograms stay in their blocks."""
        top = read_top_level(d)  # format, header, setup, events, the run's histograms
        m, scenario, events = top.m, top.scenario, top.events
        cap = m.get("capacity")
        intervals, hdrs, tx_hdrs = runform.read_intervals(m, top.version)
        # each absent (or null) in files older than it
        ramp = runform.listed(m, "ramp", Interval.from_json)
        tuples = runform.listed(m, "tuples", TupleStats.from_json)
        verdicts = runform.listed(m, "thresholds", Verdict.from_json)
        loaded = cls(
            tool_version=top.tool_version,
            host=top.host,
            started_at=fields.member(m, "started_at"),
            duration_s=fields.as_float(fields.member(m, "duration_s")),
            complete=fields.member(m, "complete"),
            setup=top.setup,
            tunings=fields.copied(fields.member(m, "tunings")),
            intervals=intervals,
            histogram=top.histogram,
            first_failure_s=fields.as_float(events.get("first_failure_s")),
            first_failure_outcome=events.get("first_failure_outcome"),
            model=Capacity.from_json(cap) if cap is not None else None,
            notes=fields.copied(m.get("notes", [])),
            server_tunings=fields.copied(m.get("server_tunings")),
            router_tunings=fields.copied(m.get("router_tunings")),  # absent before NAT
            tuples=tuples,
            sink_stats=fields.copied(scenario.get(MEASURED)),
            ramp=ramp,
            transactions=top.transactions,
            thresholds=verdicts,
            interval_hdrs=hdrs,
            interval_transaction_hdrs=tx_hdrs,
        )
        return loaded if lazy else loaded.with_interval_histograms()


def load_result(path: Path, lazy: bool = False) -> RunResult:
    """Read a result.json (``lazy``: RunResult.from_json); each fault, one UsageError line."""
    with runcolumns.gc_paused():  # a day's file parses into millions of objects
        doc = read_json_object(path, "a portstorm result.json")
    return result_from_doc(path, doc, lazy)


def result_from_doc(path: Path, doc: Mapping[str, Any], lazy: bool = False) -> RunResult:
    try:
        check_format(doc.get("format"))
    except UsageError as e:
        raise UsageError(f"{path}: {e}") from None
    try:
        with runcolumns.gc_paused():  # no cycles among what a load makes
            return RunResult.from_json(doc, lazy)
    except fields.FieldError as e:
        raise UsageError(f"{path}: damaged portstorm result: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"{path}: damaged portstorm result ({type(e).__name__}: {e})") from None


def result_text(r: RunResult) -> str:
    """result.json's text, as a run writes it (runform.file_text)."""
    with runcolumns.gc_paused():  # a day's 86,400 objects, none in a cycle
        return runform.file_text(r.to_json())


def _hist_json(hist: LatencyHistogram) -> dict[str, Any]:
    """``latency_us``'s shape: p50, p90, p99, p999, max, and the histogram (hdr)."""
    return {**hist.summary(), "hdr": hist.encode()}


def _rounded(v: float | None, digits: int) -> float | None:
    return None if v is None else round(v, digits)
