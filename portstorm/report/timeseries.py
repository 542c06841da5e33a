"""Drawing a run's series over time, interval by interval or, for a long run, bin by bin
(core/bins.py): failure shading, stacked outcome rates as steps, and a reading's envelope.

Containing drawing helpers only, no chart of its own (runcharts.py and natchart.py use
them). One artist per series, whatever the number of intervals: a bar per interval made a
24-hour report draw 86,400 rectangles per outcome. In a binned run a reading is drawn as
its bins' middle line with a band from the lowest to the highest interval of each bin, so
a one-interval spike reaches as high as it did.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, cast

from portstorm.core.bins import Bin, binned, bins, failing_spans, spans, widened
from portstorm.core.records import Interval
from portstorm.core.result import RunResult
from portstorm.report.style import VERMILLION, line

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Reading = Callable[[Interval], float | None]
Middle = Callable[[Bin, Sequence[float | None]], float | None]  # a bin's line, from its readings


def run_bins(intervals: Sequence[Interval]) -> list[Bin]:
    """The bins a chart draws: one interval each up to MAX_BINS intervals."""
    return bins(intervals)


def failure_spans(
    intervals: Sequence[Interval], first_failure_s: float | None = None
) -> list[tuple[float, float]]:
    """[start, end) stretches of consecutive intervals (bins, in a long run) in which some
    attempt failed; none starts before the first failure. Worked out once a run: a run
    report shades them in seven panels."""
    if _SPANS and _SPANS[0][0] is intervals and _SPANS[0][1] == first_failure_s:
        return list(_SPANS[0][2])
    items = run_bins(intervals) if binned(intervals) else intervals
    got = failing_spans(items, first_failure_s)
    _SPANS[:] = [(intervals, first_failure_s, tuple(got))]
    return got


# the last run's failure spans: (its intervals, its first failure, the spans)
_SPANS: list[tuple[Sequence[Interval], float | None, tuple[tuple[float, float], ...]]] = []


def shade_failures(ax: Axes, r: RunResult, label: bool = True) -> None:
    """The stretches with failures, shaded; each at least a few pixels wide."""
    ivs = r.intervals  # each interval's end, t + dt, added in C (seven panels a report)
    ends = map(operator.add, map(attrgetter("t"), ivs), map(attrgetter("dt"), ivs))
    axis = max(r.duration_s, max(ends, default=0.0))
    spans = widened(failure_spans(r.intervals, r.first_failure_s), axis)
    for k, (a, b) in enumerate(spans):
        ax.axvspan(a, b, color=VERMILLION, alpha=0.10, lw=0,
                   label="intervals with failures" if label and k == 0 else None)  # fmt: skip


def step_edges(items: Sequence[Bin]) -> tuple[list[float], list[int]]:
    """The edges of a step series over ``items`` and, for each step, the index of its
    item or -1 for a gap between two (drawn at 0): intervals that do not follow on."""
    edges: list[float] = []
    which: list[int] = []
    for k, b in enumerate(items):
        if edges and b.t - edges[-1] > 1e-3:
            which.append(-1)
            edges.append(b.t)
        elif not edges:
            edges.append(b.t)
        which.append(k)
        edges.append(max(b.end, edges[-1]))
    return edges, which


def stacked_steps(
    ax: Axes,
    items: Sequence[Bin],
    layers: Sequence[tuple[str, Sequence[float], str]],
) -> list[float]:
    """Rates per step stacked from the bottom up, (label, value per item, colour): one
    filled step artist per layer. The tops, per step."""
    edges, which = step_edges(items)
    bottom = [0.0] * len(which)
    for label, values, colour in layers:
        ys = [values[k] if k >= 0 else 0.0 for k in which]
        top = [b + y for b, y in zip(bottom, ys, strict=True)]
        ax.stairs(top, edges, baseline=bottom, fill=True, color=colour, label=label,
                  lw=0, zorder=2)  # fmt: skip
        bottom = top
    return bottom


def envelope(
    ax: Axes,
    items: Sequence[Bin],
    value: Reading | Sequence[float | None],
    colour: str,
    dash: str,
    label: str,
    middle: Middle | None = None,
    markers: bool = True,
) -> list[float]:
    """A reading at each item's end: as a line when each item is one interval (dots on
    the samples, ``markers``), else the bins' ``middle`` (their median reading by default)
    as a line over a band from each bin's lowest to its highest interval. NaN where an
    item has no reading, so the line breaks there. Every value drawn (for the axis).
    ``value``: a reading of an interval, or the readings as a column (one value an
    interval of the bins, in order: a chart's series read in C)."""
    xs = [b.end for b in items]
    col = [value(i) for b in items for i in b.intervals] if callable(value) else value
    if not any(len(b.intervals) > 1 for b in items):
        ys = [_nan(v) for v in col]
        line(ax, list(zip(xs, ys, strict=True)), colour, dash, label, markers=markers)
        return [y for y in ys if not math.isnan(y)]
    mid = middle or median_of
    lows, highs, mids = [], [], []
    for b, (start, end) in zip(items, spans(items), strict=True):
        values = col[start:end]  # a bin's readings: min and max in C
        seen = _known(values)
        lows.append(min(seen) if seen else math.nan)
        highs.append(max(seen) if seen else math.nan)
        mids.append(_nan(mid(b, values)) if seen else math.nan)
    ax.fill_between(xs, lows, highs, color=colour, alpha=0.25, lw=0, zorder=2)
    # the band's top as a thin line too: a bin with one interval's spike is a pixel wide,
    # and a pale pixel-wide band would not be seen
    ax.plot(xs, highs, color=colour, lw=0.8, alpha=0.8, zorder=3)
    line(ax, list(zip(xs, mids, strict=True)), colour, dash, label, markers=False)
    return [v for v in (*lows, *highs) if not math.isnan(v)]


def median_of(b: Bin, values: Sequence[float | None]) -> float | None:
    """The median of a bin's readings (``values``, one an interval, None: not read)."""
    seen = sorted(_known(values))
    if not seen:
        return None
    mid = len(seen) // 2
    return seen[mid] if len(seen) % 2 else (seen[mid - 1] + seen[mid]) / 2


def rate_of(b: Bin, values: Sequence[float | None]) -> float | None:
    """A bin's middle for a per-interval rate: its total over its time (exact)."""
    if None not in values:  # the same sums, in C
        dts = list(map(attrgetter("dt"), b.intervals))
        span = sum(dts)
        return sum(map(operator.mul, dts, _known(values))) / span if span > 0 else None
    pairs = [(i.dt, v) for i, v in zip(b.intervals, values, strict=True) if v is not None]
    span = sum(dt for dt, _ in pairs)
    return sum(dt * v for dt, v in pairs) / span if span > 0 else None


def _known(values: Sequence[float | None]) -> Sequence[float]:
    """The readings of ``values`` that were read: ``values`` itself when all were (C's
    ``in``; a day's bins are 86,400 readings a series)."""
    if None not in values:
        return cast("Sequence[float]", values)
    return [v for v in values if v is not None]


def _nan(v: float | None) -> float:
    return math.nan if v is None else float(v)
