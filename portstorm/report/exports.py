"""Exports beside a report: the interval series as CSV, latency as an HdrHistogram log.

Containing file writing only. The .hlog is HdrHistogram's interval log format (version
1.2, the one HistogramLogProcessor and hdrh.log.HistogramLogReader read): one compressed
histogram per interval, values in microseconds. Its Interval_Max column is in milliseconds
(max / 1000); HistogramLogProcessor's default output ratio assumes nanoseconds, so pass
``-outputValueUnitRatio 1000`` to it for milliseconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import struct
from operator import attrgetter, methodcaller
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from portstorm.core import counters as counter_rows
from portstorm.core import fields
from portstorm.core.errors import UsageError
from portstorm.core.fields import FieldError
from portstorm.core.hdrblock import checked_payload, max_us, standard
from portstorm.core.outcome import FAILURES
from portstorm.core.result import RunResult
from portstorm.report.runcharts import KERNEL_COUNTERS

MAX_VALUE_UNIT_RATIO = 1000.0  # microseconds -> the Interval_Max column in milliseconds
CHUNK = 8192  # CSV rows made at once
SAMPLED = ("ports_in_use", "established", "time_wait", "server_time_wait", "fds")


def intervals_csv(r: RunResult) -> str:
    """One row per interval: counts, each outcome, latency, the sampled port space and the
    kernel counter deltas (client, then ``server_`` for the pair sandbox's sink)."""
    outcomes = [str(o) for o in FAILURES if str(o) in r.failed]  # each name an interval has
    counters = [name for name, _ in KERNEL_COUNTERS]
    extra = sorted({k for i in r.intervals for k in (i.kernel or {})} - set(counters))
    counters += extra
    has_server = any(i.server_kernel is not None for i in r.intervals)
    header = ["t_s", "dt_s", "attempts", "succeeded"] + [f"failed_{o}" for o in outcomes]
    header += ["not_started"]  # scheduled starts dropped at the time bound (not a failure)
    header += ["p50_us", "p99_us", "ports_in_use", "established", "time_wait"]
    header += ["server_time_wait", "fds"]
    header += counters + ([f"server_{c}" for c in counters] if has_server else [])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    # column by column, then the rows zipped from them in C: a day is 86,400 rows of ~40
    # cells, and a row at a time (a Mapping.get for each counter) took 4 s; CHUNK rows at
    # a time, so the columns held at once stay small
    sides = ("kernel", *(("server_kernel",) if has_server else ()))
    # blank where the interval read no counters, or not this one (each read once, kept)
    kernel = [counter_rows.table(r.intervals, s).column(c, absent=None)
              for s in sides for c in counters]  # fmt: skip
    for start in range(0, len(r.intervals), CHUNK):
        ivs = r.intervals[start : start + CHUNK]
        fails = list(map(attrgetter("failed"), ivs))
        lat = list(map(attrgetter("latency_us"), ivs))
        columns: list[list[object]] = [
            list(map("{:.6f}".format, map(attrgetter("t"), ivs))),
            list(map("{:.6f}".format, map(attrgetter("dt"), ivs))),
            list(map(attrgetter("attempts"), ivs)),
            list(map(attrgetter("succeeded"), ivs)),
            *[list(map(methodcaller("get", o, 0), fails)) for o in outcomes],
            list(map(attrgetter("not_started"), ivs)),
            _blanks(list(map(methodcaller("get", "p50"), lat))),
            _blanks(list(map(methodcaller("get", "p99"), lat))),
            *[_blanks(list(map(attrgetter(name), ivs))) for name in SAMPLED],
            *[_blanks(list(col[start : start + CHUNK])) for col in kernel],
        ]
        w.writerows(zip(*columns, strict=True))
    return buf.getvalue()


def _blank(v: object) -> object:
    return "" if v is None else v


def _blanks(col: list[Any]) -> list[Any]:
    """A column's cells: "" for None (not read)."""
    return col if None not in col else ["" if v is None else v for v in col]


def _epoch(started_at: str) -> float:
    try:
        return dt.datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def hlog(r: RunResult) -> str:
    """The run's latency as an HdrHistogram interval log (``hlog_bytes``), as text."""
    return hlog_bytes(r).decode("utf-8")


def hlog_bytes(r: RunResult) -> bytes:
    """The run's latency as an HdrHistogram interval log, written as hdrh's
    HistogramLogWriter.output_interval_histogram() writes a line. Files saved before
    per-interval histograms were kept give one interval: the whole run. Made as bytes,
    each interval's line from its stored one (a day's log is ~35 MB: as text, then a
    StringIO's copy, then its encoding, it was four times that at once)."""
    start = _epoch(r.started_at)
    buf = io.StringIO()
    w = HistogramLogWriter(buf)
    w.output_comment(f"[Logged with portstorm {r.tool_version}: connect latency, microseconds]")
    w.output_log_format_version()
    when = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
    # hdrh's output_start_time() mishandles its argument; this is the same line.
    w.output_comment(f"[StartTime: {start:.3f} (seconds since epoch), {when}]")
    w.output_base_time(int(start * 1000))
    w.output_legend()
    lines, raws = _interval_histograms(r)
    if any(lines) or any(raws) or not r.histogram.count:
        out = [buf.getvalue().encode("utf-8")]
        # each interval's own encoding as it was stored, and its maximum read without
        # building the histogram (hdrblock.max_us): decoding 86,400 of them took 22 s
        for k, i in enumerate(r.intervals):
            if raws:  # a block of payloads: each made the standard encoding here
                raw = raws[k]
                line = standard(raw).encode("ascii") if raw else b""
            else:
                line = lines[k]
                raw = checked_payload(line) if line else None
            if not line:
                continue
            try:
                top = max_us(raw) if raw is not None else None
            except (ValueError, TypeError, struct.error):
                top = None
            if top is None:
                raise UsageError(f"intervals[{k}].hdr: not an HdrHistogram") from None
            length = (i.t + i.dt) - i.t  # as hdrh computes it from start and end
            out.append(b"%f,%f,%f,%s\n" % (i.t, length, top // MAX_VALUE_UNIT_RATIO, line))
            if raws:  # each stored one let go once written out
                raws[k] = b""
            else:
                lines[k] = b""
        return b"".join(out)
    h = HdrHistogram.decode(r.histogram.encode().encode("ascii"))
    w.output_interval_histogram(h, 0.0, r.duration_s or 1e-6, MAX_VALUE_UNIT_RATIO)
    return buf.getvalue().encode("utf-8")


def _interval_histograms(r: RunResult) -> tuple[list[bytes], list[bytes | None]]:
    """Each interval's histogram as stored: (standard encodings, []) from the intervals or
    a block of lines, ([b""] * n, V2 payloads) from a block of payloads; b"": none."""
    block = r.interval_hdrs
    if block is None:
        lines = [b"" if i.hdr is None else i.hdr.encode("ascii", "replace") for i in r.intervals]
        return lines, []
    try:
        with fields.within("interval_hdr"):
            if block.holds_payloads:
                return [b""] * block.intervals, block.payloads()
            return block.lines(), []
    except FieldError as e:
        raise UsageError(f"damaged per-interval histograms: {e}") from None


def export_paths(folder: Path, stem: str = "") -> dict[str, Path]:
    return {"csv": folder / f"{stem}intervals.csv", "hlog": folder / f"{stem}latency.hlog"}


def exports(
    r: RunResult, folder: Path, stem: str, source: Path | None = None
) -> dict[str, tuple[Path, bytes]]:
    """``<stem>intervals.csv`` and ``<stem>latency.hlog`` for ``folder``: where each goes
    and its text (the report writes them with its other files). ``source``: the file ``r``
    was read from, named in the error when its per-interval histograms, decoded only here
    (a lazy load), are damaged."""
    out = export_paths(folder, stem)
    try:
        csv_text = intervals_csv(r).encode("utf-8")
        return {"csv": (out["csv"], csv_text), "hlog": (out["hlog"], hlog_bytes(r))}
    except UsageError as e:
        raise UsageError(f"{source}: {e}" if source is not None else str(e)) from None
