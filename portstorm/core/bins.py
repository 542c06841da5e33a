"""Time bins for charts: a run's intervals in at most MAX_BINS consecutive groups, so a
chart's cost follows its width in pixels, not the length of the run.

A 24-hour run at 1 s intervals has 86,400 intervals; a chart is 1,000 px wide. Each bin
holds whole consecutive intervals (the same number in each, the last one fewer) and keeps
what a chart needs from them exactly: counts summed (a bin's outcome rate is its counts
over its time: totals per bin are exact), and, for a reading or a per-interval rate, the
lowest and highest of its intervals (an envelope), so one interval's spike in a bin of 90
stays as tall as it was. A run with MAX_BINS intervals or fewer has one interval per bin:
its charts are drawn as before, interval by interval.

Containing arithmetic on Interval values only; no drawing (report/runcharts.py, natchart.py
and manycharts.py draw from these).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from portstorm.core.records import Interval

MAX_BINS = 1000  # a chart is 1,000 px wide (report/style.py): one bin a pixel at most
SHADE_MIN_SHARE = 1 / 300  # a shaded span is drawn at least this share of the axis (3 px)

T = TypeVar("T")


def groups(items: Sequence[T], max_bins: int = MAX_BINS) -> list[Sequence[T]]:
    """``items`` in consecutive groups of equal size (the last one smaller), at most
    ``max_bins`` of them; one item a group when there are no more than that."""
    if max_bins < 1:
        raise ValueError(f"max_bins {max_bins}; allowed: 1 or more")
    size = max(1, math.ceil(len(items) / max_bins))
    return [items[k : k + size] for k in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class Bin:
    """Consecutive intervals, [t, t + dt): the first one's start to the last one's end."""

    intervals: Sequence[Interval]

    def __post_init__(self) -> None:
        if not self.intervals:
            raise ValueError("a bin holds one interval or more")

    @property
    def t(self) -> float:
        return self.intervals[0].t

    @property
    def end(self) -> float:
        last = self.intervals[-1]
        return last.t + last.dt

    @property
    def dt(self) -> float:
        return self.end - self.t

    @property
    def measured_s(self) -> float:
        """The time the intervals measured (their dt summed): a rate's denominator."""
        return sum(i.dt for i in self.intervals)

    @property
    def n_failed(self) -> int:
        return sum(i.n_failed for i in self.intervals)

    def total(self, value: Callable[[Interval], int]) -> int:
        return sum(value(i) for i in self.intervals)

    def rate(self, value: Callable[[Interval], int]) -> float:
        """``value`` per second over the bin: its total over the time its intervals took."""
        span = self.measured_s
        return self.total(value) / span if span > 0 else 0.0

    def peak_rate(self, value: Callable[[Interval], int]) -> float:
        """The highest per-second ``value`` of one interval in the bin."""
        return max((value(i) / i.dt for i in self.intervals if i.dt > 0), default=0.0)

    def envelope(self, value: Callable[[Interval], float | None]) -> tuple[float, float] | None:
        """(lowest, highest) of a reading over the bin's intervals; None when none had it."""
        seen = [v for i in self.intervals if (v := value(i)) is not None]
        return (min(seen), max(seen)) if seen else None

    def peak(self, key: Callable[[Interval], float | None]) -> Interval | None:
        """The interval with the highest ``key`` (the first such); None when none had it."""
        best: Interval | None = None
        top = -math.inf
        for i in self.intervals:
            v = key(i)
            if v is not None and v > top:
                best, top = i, v
        return best


def bins(intervals: Sequence[Interval], max_bins: int = MAX_BINS) -> list[Bin]:
    return [Bin(g) for g in groups(intervals, max_bins)]


def spans(items: Sequence[Bin]) -> list[tuple[int, int]]:
    """Each bin's [start, end) in the list its intervals were grouped from (``bins``): a
    column of that list (one value an interval) sliced by these is each bin's part of it,
    summed or compared in C rather than read interval by interval."""
    out, start = [], 0
    for b in items:
        end = start + len(b.intervals)
        out.append((start, end))
        start = end
    return out


def totals(items: Sequence[Bin], column: Sequence[float]) -> list[float]:
    """Per bin, ``column`` (one value an interval of the bins' list) summed: as exact as
    Bin.total, the same additions in the same order."""
    return [sum(column[a:b]) for a, b in spans(items)]


def binned(intervals: Sequence[Interval], max_bins: int = MAX_BINS) -> bool:
    """More intervals than bins: charts draw bins, with envelopes."""
    return len(intervals) > max_bins


class Timed(Protocol):
    @property
    def t(self) -> float: ...
    @property
    def dt(self) -> float: ...
    @property
    def n_failed(self) -> int: ...


def failing_spans(
    items: Iterable[Timed], first_failure_s: float | None = None
) -> list[tuple[float, float]]:
    """[start, end) stretches of consecutive intervals (or bins) in which some attempt
    failed; none starts before the first failure (the interval holding it began earlier)."""
    spans: list[tuple[float, float]] = []
    for i in items:
        if not i.n_failed:
            continue
        if spans and abs(spans[-1][1] - i.t) < 1e-3:
            spans[-1] = (spans[-1][0], i.t + i.dt)
        else:
            spans.append((i.t, i.t + i.dt))
    if spans and first_failure_s is not None and spans[0][0] < first_failure_s < spans[0][1]:
        spans[0] = (first_failure_s, spans[0][1])
    return spans


def widened(spans: Sequence[tuple[float, float]], axis_s: float) -> list[tuple[float, float]]:
    """Spans as drawn: each at least SHADE_MIN_SHARE of the axis wide (a one-second burst
    in a day is 0.01 px; widened about its middle, it shows), overlaps joined."""
    least = axis_s * SHADE_MIN_SHARE
    out: list[tuple[float, float]] = []
    for a, b in spans:
        if b - a < least:
            mid = (a + b) / 2
            a, b = max(0.0, mid - least / 2), mid + least / 2
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out
