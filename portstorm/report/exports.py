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
import zlib
from pathlib import Path

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from portstorm.core.errors import UsageError
from portstorm.core.fields import FieldError
from portstorm.core.hdrblock import max_us, payload
from portstorm.core.outcome import FAILURES
from portstorm.core.result import RunResult
from portstorm.report.runcharts import KERNEL_COUNTERS

MAX_VALUE_UNIT_RATIO = 1000.0  # microseconds -> the Interval_Max column in milliseconds


def intervals_csv(r: RunResult) -> str:
    """One row per interval: counts, each outcome, latency, the sampled port space and the
    kernel counter deltas (client, then ``server_`` for the pair sandbox's sink)."""
    outcomes = [str(o) for o in FAILURES if any(str(o) in i.failed for i in r.intervals)]
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
    none: dict[str, int] = {}
    # a row per interval, built in one expression each: a day is 86,400 rows of ~40 cells
    w.writerows(
        [
            f"{i.t:.6f}", f"{i.dt:.6f}", i.attempts, i.succeeded,
            *[i.failed.get(o, 0) for o in outcomes], i.not_started,
            *["" if v is None else v for v in (i.latency_us.get("p50"), i.latency_us.get("p99"),
              i.ports_in_use, i.established, i.time_wait, i.server_time_wait, i.fds)],
            *(["" if (v := k.get(c)) is None else v for c in counters]
              if (k := i.kernel) is not None else [""] * len(counters)),
            *((["" if (v := k.get(c)) is None else v for c in counters]
               if (k := i.server_kernel or none) is not none else [""] * len(counters))
              if has_server else ()),
        ]
        for i in r.intervals
    )  # fmt: skip
    return buf.getvalue()


def _blank(v: object) -> object:
    return "" if v is None else v


def _epoch(started_at: str) -> float:
    try:
        return dt.datetime.fromisoformat(started_at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def hlog(r: RunResult) -> str:
    """The run's latency as an HdrHistogram interval log, written as hdrh's
    HistogramLogWriter.output_interval_histogram() writes a line. Files saved before
    per-interval histograms were kept give one interval: the whole run."""
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
    texts = _interval_histograms(r)
    if any(texts) or not r.histogram.count:
        # each interval's own encoding as it was stored, and its maximum read without
        # building the histogram (hdrblock.max_us): decoding 86,400 of them took 22 s
        for k, (i, text) in enumerate(zip(r.intervals, texts, strict=True)):
            if text is None:
                continue
            try:
                top = max_us(payload(text))
            except (ValueError, TypeError, zlib.error):
                raise UsageError(f"intervals[{k}].hdr: not an HdrHistogram") from None
            length = (i.t + i.dt) - i.t  # as hdrh computes it from start and end
            buf.write(f"{i.t:f},{length:f},{top // MAX_VALUE_UNIT_RATIO:f},{text}\n")
    else:
        h = HdrHistogram.decode(r.histogram.encode().encode("ascii"))
        w.output_interval_histogram(h, 0.0, r.duration_s or 1e-6, MAX_VALUE_UNIT_RATIO)
    return buf.getvalue()


def _interval_histograms(r: RunResult) -> list[str | None]:
    try:
        return r.interval_histograms()
    except FieldError as e:
        raise UsageError(f"damaged per-interval histograms: {e}") from None


def export_paths(folder: Path, stem: str = "") -> dict[str, Path]:
    return {"csv": folder / f"{stem}intervals.csv", "hlog": folder / f"{stem}latency.hlog"}


def exports(
    r: RunResult, folder: Path, stem: str, source: Path | None = None
) -> dict[str, tuple[Path, str]]:
    """``<stem>intervals.csv`` and ``<stem>latency.hlog`` for ``folder``: where each goes
    and its text (the report writes them with its other files). ``source``: the file ``r``
    was read from, named in the error when its per-interval histograms, decoded only here
    (a lazy load), are damaged."""
    out = export_paths(folder, stem)
    try:
        return {"csv": (out["csv"], intervals_csv(r)), "hlog": (out["hlog"], hlog(r))}
    except UsageError as e:
        raise UsageError(f"{source}: {e}" if source is not None else str(e)) from None
