"""The latency histogram's fast reading of its recorded values agrees with HdrHistogram's
own recorded iterator, value for value, and the readings built on it with percentiles."""

from __future__ import annotations

import random

import pytest

from portstorm.core.histogram import LatencyHistogram


def _iterated(h: LatencyHistogram) -> list[tuple[int, int]]:
    return [
        (int(i.value_iterated_to), int(i.count_at_value_iterated_to))
        for i in h._h.get_recorded_iterator()
    ]


@pytest.mark.parametrize("seed", range(12))
def test_recorded_values_are_what_the_hdr_iterator_yields(seed: int) -> None:
    rnd = random.Random(seed)
    h = LatencyHistogram()
    h.record_many(int(rnd.lognormvariate(5, 2.5)) for _ in range(rnd.randint(0, 4000)))
    h.record(LatencyHistogram().count)  # a 0, clamped to 1 us
    assert h.recorded() == _iterated(h)
    assert sum(n for _, n in h.recorded()) == h.count


def test_counts_in_bands_and_the_spectrum_agree_with_percentiles() -> None:
    h = LatencyHistogram()
    h.record_many([40] * 900 + [1_050_000] * 90 + [3_100_000] * 10)
    assert h.counts_in([(950_000, 1_300_000), (2_900_000, 3_400_000), (1, 100)]) == [90, 10, 900]
    spectrum = dict(h.spectrum())
    assert spectrum[0.0] == h.percentile(0.0)
    assert spectrum[100.0] == h.max
    assert spectrum[99.0] == h.percentile(99.0)


def test_an_empty_histogram_has_no_recorded_values() -> None:
    h = LatencyHistogram()
    assert h.recorded() == [] and h.spectrum() == [] and h.counts_in([(1, 10)]) == [0]


def test_values_recorded_with_their_counts_equal_the_same_values_one_by_one() -> None:
    one_by_one, counted = LatencyHistogram(), LatencyHistogram()
    values = [(0, 3), (40, 2), (95, 5), (4_000_000_000, 1)]  # 0 and over an hour: clamped
    for value, n in values:
        for _ in range(n):
            one_by_one.record(value)
    counted.record_counts(values)
    assert counted.encode() == one_by_one.encode()
    assert counted.recorded() == [(1, 3), (40, 2), (95, 5), (counted.max or 0, 1)]
