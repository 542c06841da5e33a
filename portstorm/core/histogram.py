"""Connect-latency histograms: one HdrHistogram wrapper used by every part of portstorm.

Containing no I/O. Values are microseconds. The histogram itself is stored (HdrHistogram's
standard compressed base64 encoding, readable by HdrHistogram's own tools) so runs can be
merged and compared later; percentiles are derived from it, never stored alone.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: any connect slower than this is clamped, not lost
SIGNIFICANT_FIGURES = 3

PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}


class LatencyHistogram:
    """A microsecond histogram with exact merge and a stable text encoding."""

    __slots__ = ("_h",)

    def __init__(self, _h: Any = None) -> None:
        self._h = _h if _h is not None else HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)

    def record(self, value_us: int) -> None:
        # HdrHistogram drops values outside its range; clamp so the count stays exact.
        if value_us < LOWEST_US:
            value_us = LOWEST_US
        elif value_us > HIGHEST_US:
            value_us = HIGHEST_US
        self._h.record_value(value_us)

    def record_many(self, values_us: Iterable[int]) -> None:
        """Record every value, the same as ``record`` on each, at a fraction of the cost:
        connect latencies repeat (microseconds), so each distinct value is recorded once
        with its count. The driver buffers an interval's latencies and records them here,
        off its hot path."""
        self.record_counts(Counter(values_us).items())

    def record_counts(self, counts: Iterable[tuple[int, int]]) -> None:
        """Record each (value, count): ``count`` times the value, as ``record`` would."""
        h = self._h
        for value, n in counts:
            if value < LOWEST_US:
                value = LOWEST_US
            elif value > HIGHEST_US:
                value = HIGHEST_US
            h.record_value(value, n)

    def add(self, other: LatencyHistogram) -> None:
        self._h.add(other._h)

    def reset(self) -> None:
        self._h.reset()

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile(self, p: float) -> int | None:
        """The value at percentile ``p`` (0..100), or None for an empty histogram."""
        if self.count == 0:
            return None
        return int(self._h.get_value_at_percentile(p))

    @property
    def max(self) -> int | None:
        return int(self._h.get_max_value()) if self.count else None

    def summary(self) -> dict[str, int | None]:
        out: dict[str, int | None] = {k: self.percentile(p) for k, p in PERCENTILES.items()}
        out["max"] = self.max
        return out

    def counts_in(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        """Recorded values in each [low_us, high_us] (to the histogram's precision), in one
        pass over the recorded values."""
        counts = [0] * len(ranges)
        for v, n in self.recorded():
            for k, (low, high) in enumerate(ranges):
                if low <= v <= high:
                    counts[k] += n
        return counts

    def recorded(self) -> list[tuple[int, int]]:
        """(value, count) for every recorded value, in order: what HdrHistogram's recorded
        iterator yields (each value as the highest equivalent of its bucket), at a fraction
        of its cost. The iterator steps through all ~45,000 buckets of this range in Python,
        object by object (0.3 s per call for a report's latency chart, of which there are
        three per report); a slice of the counts array is one C call, and only the buckets
        that hold something are converted."""
        h = self._h
        nonzero = [(i, c) for i, c in enumerate(h.counts[: h.counts_len]) if c]
        return [
            (int(h.get_highest_equivalent_value(h.get_value_from_index(i))), int(c))
            for i, c in nonzero
        ]

    def spectrum(self, nines: float = 4.0, step: float = 0.05) -> list[tuple[float, int]]:
        """(percentile, value) from 0 out to ``nines`` nines (4: 99.99 %), evenly spaced on
        HdrHistogram's 1/(1-p) axis, plus the maximum at 100 %. Empty for no values.
        One pass over the recorded values (a percentile lookup each would walk them all)."""
        total = self.count
        if total == 0:
            return []
        n = round(nines / step)
        targets = [100.0 * (1.0 - 10.0 ** (-k * step)) for k in range(n + 1)]
        out: list[tuple[float, int]] = []
        # the same rule as HdrHistogram's get_value_at_percentile(): the first value whose
        # cumulative count reaches round(p % of all), reported as its highest equivalent
        wanted = [max(1, int(p * total / 100.0 + 0.5)) for p in targets]
        seen, k = 0, 0
        for v, count in self.recorded():
            seen += count
            while k < len(targets) and seen >= wanted[k]:
                out.append(
                    (
                        targets[k],
                        int(self._h.get_highest_equivalent_value(v))
                        if k
                        else int(self._h.get_lowest_equivalent_value(v)),
                    )
                )
                k += 1
        out.append((100.0, int(self._h.get_max_value())))
        return out

    def encode(self) -> str:
        return str(self._h.encode().decode("ascii"))

    @classmethod
    def decode(cls, text: str) -> LatencyHistogram:
        return cls(HdrHistogram.decode(text.encode("ascii")))
